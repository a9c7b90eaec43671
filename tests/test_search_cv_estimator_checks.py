"""scikit-learn's own estimator checks on TuneSearchCV (every fit is a real Tune experiment)."""

from __future__ import annotations

import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.utils.estimator_checks import (
    check_estimator,
    check_estimators_pickle,
)

from hpt_ray import TuneSearchCV

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("ray_local")]


def _reraise_interrupts(*, exception=None, **_):
    """check_estimator records any Exception as a failed check and goes on. A pytest-timeout or
    Ctrl-C that lands while Ray waits (CoreWorker.wait) comes out as a SystemError whose cause is
    the real interruption: Ray's check_signals turns only KeyboardInterrupt and SystemExit into
    a status and leaves anything else set, and CPython then raises SystemError('... returned a
    result with an exception set'). Re-raise the interruption instead of a bogus check failure."""
    cause = exception
    while cause is not None:
        if not isinstance(cause, Exception):  # pytest-timeout's Failed, KeyboardInterrupt
            raise cause
        cause = cause.__cause__ or cause.__context__


# About 65 searches. As a user calls it (no storage_path, FIFO), each runs its trials as Ray tasks;
# two checks after it run the same estimator on the Tune path.
@pytest.mark.timeout(1800)
def test_check_estimator_passes():
    search = TuneSearchCV(LogisticRegression(), {"C": [0.1, 1.0]}, searcher="grid", cv=2)
    results = check_estimator(search, on_fail=None, callback=_reraise_interrupts)
    failed = [f"{r['check_name']}: {r['exception']!r}" for r in results if r["status"] == "failed"]
    assert not failed, "\n".join(failed)
    # Only the array-API checks are skipped (no array_api_strict / SCIPY_ARRAY_API here).
    skipped = {r["check_name"] for r in results if r["status"] == "skipped"}
    assert skipped <= {
        "check_array_api_input",
        "check_array_api_mixed_inputs",
        "check_array_api_same_namespace",
    }
    assert sum(r["status"] == "passed" for r in results) >= 50


# One check on the Tune path (check_classifiers_train there runs ~10 experiments, 38 s of the
# suite; every check runs on the task path above, and test_search_cv*.py drive the Tune path).
@pytest.mark.parametrize("check", [check_estimators_pickle])
def test_checks_pass_on_the_tune_path(check, tmp_path):
    # A storage_path keeps each fit's experiment, so its trials run in a Ray Tune experiment.
    search = TuneSearchCV(
        LogisticRegression(), {"C": [0.1, 1.0]}, searcher="grid", cv=2, storage_path=str(tmp_path)
    )
    check(type(search).__name__, search)
    assert any(tmp_path.iterdir())  # the Tune path ran (and kept its experiments)
