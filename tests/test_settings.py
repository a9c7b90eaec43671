"""hpt_ray.settings: each group of tune_model's keywords is validated in one place, naming the
keyword (issue #12 item 6). No Ray runtime: these fail before anything starts."""

from __future__ import annotations

import pytest

import hpt_ray
from hpt_ray.settings import RunSettings, SearchSettings, TrialSettings


@pytest.mark.parametrize(
    ("group", "kwargs", "needle"),
    [
        (SearchSettings, {"searcher": "gp_ei"}, "unknown searcher 'gp_ei'"),
        (SearchSettings, {"searcher": 3}, "searcher must be a name"),
        (SearchSettings, {"num_samples": 0}, "num_samples must be a positive integer"),
        (SearchSettings, {"num_samples": True}, "num_samples must be a positive integer"),
        (SearchSettings, {"max_concurrent": 0}, "max_concurrent must be a positive integer"),
        (SearchSettings, {"time_budget_s": -1}, "time_budget_s must be a positive number"),
        (SearchSettings, {"seed": 1.5}, "seed must be an integer"),
        (SearchSettings, {"searcher_options": [1]}, "searcher_options must be a mapping"),
        (TrialSettings, {"epochs": 0}, "epochs must be a positive integer"),
        (TrialSettings, {"max_stages": "3"}, "max_stages must be a positive integer"),
        (TrialSettings, {"resources_per_trial": 2}, "resources_per_trial must be a mapping"),
        (TrialSettings, {"trainer_options": "amp"}, "trainer_options must be a mapping"),
        (RunSettings, {"max_failures": -1}, "max_failures must be an integer >= 0"),
        (RunSettings, {"fail_fast": True, "max_failures": 2}, "fail_fast stops"),
        (RunSettings, {"verbose": -1}, "verbose must be 0, 1 or 2"),
        (RunSettings, {"resume": "yes"}, "resume must be True or False"),
        (RunSettings, {"retry_errored": True}, "with resume=True"),
        (RunSettings, {"name": "a/b"}, "name must be a directory name"),
    ],
)
def test_each_group_names_the_bad_keyword(group, kwargs, needle):
    with pytest.raises((ValueError, TypeError)) as info:
        group(**kwargs)
    assert needle in str(info.value)


def test_defaults_are_valid_and_frozen():
    search, trial, run = SearchSettings(), TrialSettings(), RunSettings()
    assert (search.searcher, search.num_samples, trial.max_stages, run.verbose) == (
        "optuna-tpe",
        20,
        10,
        1,
    )
    with pytest.raises(AttributeError):
        search.num_samples = 3  # type: ignore[misc]


def test_tune_model_validates_the_groups_before_anything(tmp_path):
    # The run's directory is never made: the settings fail first.
    with pytest.raises(ValueError, match="retry_errored"):
        hpt_ray.tune_model(
            lambda config: None,
            {"x": 1},
            metric="loss",
            mode="min",
            retry_errored=True,
            storage_path=tmp_path,
        )
    assert not any(tmp_path.iterdir())
