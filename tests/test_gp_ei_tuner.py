"""gp-ei inside a real Ray Tuner, with ASHA stopping trials early and 2 trials in flight."""

from __future__ import annotations

from pathlib import Path

import pytest
from asha_runs import HOPELESS, check_asha_cut, run_asha

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("ray_local")]


def test_gp_ei_with_asha_and_two_concurrent_trials(tmp_path: Path) -> None:
    # ASHA hands gp-ei the last, early result of each trial it cut (see GPEISearcher); the run
    # goes on with those observations and 2 trials pending at each suggestion.
    result = run_asha("gp-ei", tmp_path)
    best = check_asha_cut(result)
    assert result.best_config is not None
    assert result.best_config["lr"] == pytest.approx(best["config/lr"])
    assert 1e-5 <= result.best_config["lr"] <= 3e-2
    assert result.best_config["lr"] != HOPELESS["lr"]
