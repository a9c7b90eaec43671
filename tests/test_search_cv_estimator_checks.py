"""scikit-learn's own estimator checks on TuneSearchCV (every fit is a real Tune experiment)."""

from __future__ import annotations

import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.utils.estimator_checks import check_estimator

from hpt_ray import TuneSearchCV

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("ray_local")]


def test_check_estimator_passes(tmp_path):
    search = TuneSearchCV(
        LogisticRegression(), {"C": [0.1, 1.0]}, searcher="grid", cv=2, storage_path=str(tmp_path)
    )
    results = check_estimator(search, on_fail=None)
    failed = [
        f"{r['check_name']}: {r['exception']!r}" for r in results if r["status"] == "failed"
    ]
    assert not failed, "\n".join(failed)
    # Only the array-API checks are skipped (no array_api_strict / SCIPY_ARRAY_API here).
    skipped = {r["check_name"] for r in results if r["status"] == "skipped"}
    assert skipped <= {
        "check_array_api_input",
        "check_array_api_mixed_inputs",
        "check_array_api_same_namespace",
    }
    assert sum(r["status"] == "passed" for r in results) >= 50
