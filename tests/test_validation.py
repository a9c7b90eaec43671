"""User input is checked one way (``searchers.validation``): every bad input fails before Ray
starts, as an `InvalidParameterError` naming the parameter, what it got and the fix."""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.stats
from ray import tune
from sklearn.linear_model import ElasticNet
from sklearn.svm import SVC

import searchers
from hpt_ray import InvalidParameterError, TuneSearchCV, tune_model
from hpt_ray.experiment import ExperimentError
from hpt_ray.schedulers import make_scheduler
from searchers.validation import (
    BOOL,
    NONE,
    Interval,
    Options,
    check,
    check_keys,
    did_you_mean,
)
from trainables.torch_trainable import mlp

CASES = [
    # (id, model, space, kwargs, regex the message must match)
    ("empty-choice", SVC(), {"C": tune.choice([])}, {}, r"'C'.*"),
    ("empty-list", SVC(), {"C": []}, {}, r"'C'.*at least one"),
    ("lower>=upper", SVC(), {"C": tune.uniform(10.0, 1.0)}, {}, r"'C'"),
    ("int-lower>=upper", SVC(), {"degree": tune.randint(5, 5)}, {}, r"'degree'"),
    (
        "unknown-param",
        SVC(),
        {"CC": tune.uniform(0.1, 1.0)},
        {},
        r"no parameter 'CC'; did you mean 'C'",
    ),
    (
        "grid-wrong-searcher",
        SVC(),
        {"C": tune.grid_search([0.1, 1.0])},
        {"searcher": "optuna-tpe"},
        r"'C'.*searcher='grid'",
    ),
    ("unbounded-scipy", SVC(), {"C": scipy.stats.expon(scale=10)}, {}, r"'C'.*expon"),
    ("unknown-searcher", SVC(), {"C": [0.1, 1.0]}, {"searcher": "bogus"}, r"bogus.*optuna-tpe"),
    ("unknown-scheduler", SVC(), {"C": [0.1, 1.0]}, {"scheduler": "bogus"}, r"scheduler.*asha"),
    ("bad-mode", SVC(), {"C": [0.1, 1.0]}, {"mode": "maximize"}, r"mode"),
    ("bad-data-name", SVC(), {"C": [0.1, 1.0]}, {"data": "mnist"}, r"mnist"),
    ("bad-num-samples", SVC(), {"C": [0.1, 1.0]}, {"num_samples": 0}, r"num_samples"),
    ("bad-resources", SVC(), {"C": [0.1, 1.0]}, {"resources_per_trial": {"cpu": -1}}, r"cpu"),
    ("torch-epochs-domain", mlp, {"lr": [0.1], "epochs": tune.randint(1, 5)}, {}, r"epochs"),
    ("bad-model", 42, {"C": [0.1, 1.0]}, {}, r"model"),
]


@pytest.mark.parametrize(
    ("model", "space", "kwargs", "pattern"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_bad_input_fails_before_any_trial(tmp_path, model, space, kwargs, pattern):
    kwargs = {"data": "iris", "num_samples": 2, "storage_path": tmp_path, "name": "exp", **kwargs}
    with pytest.raises(InvalidParameterError, match=pattern):
        tune_model(model, space, **kwargs)
    # Nothing was started: the experiment directory (written before the Tuner starts) does
    # not exist.
    assert not (tmp_path / "exp").exists()


def test_elasticnet_space_is_accepted(tmp_path):
    # The positive control for the cases above: the same path with a valid space gets past
    # validation.
    from hpt_ray.plan import plan_experiment
    from hpt_ray.settings import SearchSettings, TrialSettings

    plan = plan_experiment(
        ElasticNet(),
        {"alpha": tune.loguniform(1e-3, 1.0)},
        data="diabetes",
        metric=None,
        mode=None,
        search=SearchSettings(searcher="random", scheduler="fifo", num_samples=2, seed=0),
        trial=TrialSettings(epochs=1, max_stages=1, cv=3, scoring="r2"),
    )
    assert plan.metric == "mean_test_score"
    assert plan.mode == "max"


# -- the module's constraints ------------------------------------------------------------------


def test_the_error_is_a_value_error_and_a_type_error():
    assert issubclass(InvalidParameterError, ValueError)
    assert issubclass(InvalidParameterError, TypeError)
    # A bad experiment file is bad user input: the CLI catches both as one.
    assert issubclass(ExperimentError, InvalidParameterError)


@pytest.mark.parametrize("value", [True, False, 1.0, "3", None, math.nan])
def test_an_integer_interval_refuses_bool_float_str_none(value):
    with pytest.raises(InvalidParameterError, match=r"^epochs must be a positive integer, got "):
        check("epochs", value, Interval(int, 1, None))


def test_interval_ends():
    closed = Interval(float, 0, 1)
    assert check("p", 0, closed) == 0
    assert check("p", 1.0, closed) == 1.0
    right = Interval(float, 0, 1, closed="right")
    with pytest.raises(InvalidParameterError, match=r"p must be a number in \(0, 1\], got 0 "):
        check("p", 0, right)
    assert check("p", 1, right) == 1
    neither = Interval(float, 1, None, closed="neither")
    with pytest.raises(InvalidParameterError, match=r"eta must be a number > 1, got 1 \(int\)"):
        check("eta", 1, neither)
    assert check("eta", 1.5, neither) == 1.5
    with pytest.raises(InvalidParameterError, match=r"a finite number >= 0, got inf"):
        check("cpu", math.inf, Interval(float, 0, math.inf, closed="left"))
    assert check("n", np.int64(3), Interval(int, 1, 3)) == 3
    with pytest.raises(InvalidParameterError, match=r"n must be an integer in \[1, 3\], got 4"):
        check("n", 4, Interval(int, 1, 3))


def test_none_and_bool_constraints():
    assert check("seed", None, Interval(int, None, None), NONE) is None
    assert check("seed", None, Interval(int, None, None), None) is None
    with pytest.raises(
        InvalidParameterError, match=r"resume must be True or False, got 1 \(int\)"
    ):
        check("resume", 1, BOOL)


def test_options_say_the_closest_name():
    with pytest.raises(
        InvalidParameterError,
        match=r"^scheduler must be one of 'asha', 'hyperband', 'median', 'fifo', "
        r"got 'ahsa' \(str\); did you mean 'asha'\?$",
    ):
        check("scheduler", "ahsa", Options(("asha", "hyperband", "median", "fifo")))
    assert check("scheduler", "ASHA", Options(("asha", "fifo"), ignore_case=True)) == "ASHA"
    with pytest.raises(
        InvalidParameterError, match=r"mode must be 'min' or 'max', got 3 \(int\)$"
    ):
        check("mode", 3, Options(("min", "max")))
    assert did_you_mean("zzz", ["asha"]) == ""
    assert did_you_mean("gp_ei", ["gp-ei", "random"]) == "; did you mean 'gp-ei'?"


def test_unknown_keys_get_the_closest_one():
    with pytest.raises(
        InvalidParameterError,
        match=r"^scheduler_options: unknown option 'grace_perod'; did you mean 'grace_period'\? "
        r"\(accepted: grace_period, reduction_factor\)$",
    ):
        check_keys("scheduler_options", ["grace_perod"], ["reduction_factor", "grace_period"])


# -- the entry points (all fail before Ray starts) ----------------------------------------------

SVC_RUN = {"data": "iris", "num_samples": 1, "name": "exp"}


@pytest.mark.parametrize(
    ("kwargs", "pattern"),
    [
        ({"epochs": True}, r"^epochs must be a positive integer or None, got True \(bool\)$"),
        (
            {"max_concurrent": True},
            r"^max_concurrent must be a positive integer or None, got True",
        ),
        ({"num_samples": 2.0}, r"^num_samples must be a positive integer, got 2.0 \(float\)"),
        ({"resume": "yes"}, r"^resume must be True or False, got 'yes'"),
        (
            {"scheduler_options": {"reduction_factor": "3"}},
            r"^scheduler_options.reduction_factor must be a number > 1, got '3' \(str\)$",
        ),
        (
            {"scheduler_options": {"grace_priod": 2}},
            r"unknown option 'grace_priod'; did you mean 'grace_period'\?",
        ),
        ({"scheduler": "ahsa"}, r"^scheduler must be one of .*got 'ahsa' .*did you mean 'asha'"),
        ({"searcher": "gp_ei"}, r"unknown searcher 'gp_ei'; did you mean 'gp-ei'\?"),
        ({"mode": "mx"}, r"^mode must be 'min' or 'max' or None, got 'mx' .*did you mean 'max'"),
        ({"kind": "sklern"}, r"^kind must be .*did you mean 'sklearn'"),
        ({"scoring": "acuracy"}, r"^scoring must be a scorer name .*did you mean 'accuracy'"),
        ({"cv": True}, r"^cv must be None, an int >= 2"),
        ({"resources_per_trial": {"gpu": True}}, r"resource 'gpu' must be a number, got True"),
    ],
)
def test_tune_model_refuses_bad_options_before_ray(tmp_path, monkeypatch, kwargs, pattern):
    import hpt_ray.run

    # A tripwire where a run starts or joins Ray (whether or not this session's Ray is up):
    # the refusal must come before it.
    def ray_reached(*args, **kwargs):
        raise AssertionError("the run reached Ray before refusing its options")

    monkeypatch.setattr(hpt_ray.run, "ensure_ray", ray_reached)
    with pytest.raises(InvalidParameterError, match=pattern):
        tune_model(SVC(), {"C": [0.1, 1.0]}, storage_path=tmp_path, **{**SVC_RUN, **kwargs})
    assert not (tmp_path / "exp").exists()


def test_a_torch_epochs_constant_in_the_space_is_checked(tmp_path):
    with pytest.raises(InvalidParameterError, match=r"space: 'epochs' must be a positive integer"):
        tune_model(mlp, {"lr": [0.1], "epochs": True}, storage_path=tmp_path, **SVC_RUN)


def test_a_trainer_option_typo_gets_the_closest_name(tmp_path):
    with pytest.raises(
        InvalidParameterError, match=r"unknown option 'monitr'; did you mean 'monitor'"
    ):
        tune_model(
            mlp,
            {"lr": [0.1]},
            trainer_options={"monitr": "val_loss"},
            storage_path=tmp_path,
            **SVC_RUN,
        )


def test_make_searcher_names_and_options():
    with pytest.raises(InvalidParameterError, match=r"unknown searcher 'gp_ei'; did you mean"):
        searchers.make_searcher("gp_ei")
    with pytest.raises(InvalidParameterError, match=r"available: auto, genetic, gp-ei"):
        searchers.supports_grid("nope")
    with pytest.raises(
        InvalidParameterError, match=r"'pso' got an unknown option 'n_particle'; did you mean "
    ):
        searchers.make_searcher("pso", n_particle=8)
    with pytest.raises(InvalidParameterError, match=r"^n_particles must be an integer >= 2"):
        searchers.make_searcher("pso", n_particles=True)
    with pytest.raises(InvalidParameterError, match=r"'optuna-tpe' got an unknown option"):
        searchers.make_searcher("optuna-tpe", n_startup_trails=3)
    with pytest.raises(InvalidParameterError, match=r"^seed must be an integer or None, got True"):
        searchers.make_searcher("random", seed=True)


def test_make_scheduler_reduction_factor_as_a_string():
    # Used to be a raw "'>' not supported between instances of 'str' and 'int'".
    with pytest.raises(InvalidParameterError, match=r"reduction_factor must be a number > 1"):
        make_scheduler("asha", max_t=10, reduction_factor="3")


def test_tune_search_cv_refuses_bool_concurrency():
    X, y = np.zeros((20, 2)), np.arange(20) % 2
    search = TuneSearchCV(SVC(), {"C": [0.1, 1.0]}, max_concurrent=True, cv=2)
    with pytest.raises(InvalidParameterError, match=r"^max_concurrent must be a positive integer"):
        search.fit(X, y)


# -- the CLI: a user's mistake is one line, exit 2 ------------------------------------------------

GOOD = "model: sklearn.svm.SVC\ndata: iris\nspace: {C: [0.1, 1.0]}\n"


@pytest.mark.parametrize(
    ("extra", "pattern"),
    [
        ("searcher: gp_ei\n", "unknown searcher 'gp_ei'; did you mean 'gp-ei'?"),
        ("sercher: random\n", "unknown field 'sercher'; did you mean 'searcher'?"),
        ("epochs: true\n", "field 'epochs' must be PyTorch epochs"),
        ("scheduler_options: {reduction_factor: '3'}\n", "reduction_factor must be a number > 1"),
    ],
)
def test_cli_prints_a_bad_file_as_one_line(tmp_path, capsys, extra, pattern):
    from hpt_ray import cli

    path = tmp_path / "exp.yaml"
    runs = tmp_path / "runs"
    path.write_text(GOOD + extra + f"storage_path: {runs}\n")
    assert cli.main(["run", str(path)]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert err.startswith("hpt-ray: error: ")
    assert pattern in err
    # Refused before any trial: no run directory is left behind (none was ever a run).
    assert not runs.exists() or list(runs.iterdir()) == []


def test_cli_shows_the_traceback_of_a_bug(monkeypatch, capsys):
    # Not a user error: a bug must not be printed as one (it keeps its traceback).
    from hpt_ray import cli

    def broken(args):
        raise ValueError("internal: this is a bug")

    parser = cli._parser()
    monkeypatch.setattr(cli, "_parser", lambda: parser)
    parser._subparsers._group_actions[0].choices["searchers"].set_defaults(handler=broken)
    with pytest.raises(ValueError, match="internal: this is a bug"):
        cli.main(["searchers"])
