"""Examples in docstrings run, so a re-wrapped or stale example fails here.

- The experiment-file example in ``hpt_ray.experiment``'s module docstring is loaded with
  ``load_experiment`` and then checked as ``hpt-ray run`` would use it (searcher, scheduler,
  resources, space, ``tune_model`` arguments), without starting Ray.
- The ``>>>`` examples of every module in ``PACKAGES`` run with ``doctest``: a module added to
  one of these packages is covered without being listed; a new package goes into ``PACKAGES``.
"""

from __future__ import annotations

import doctest
import importlib
import inspect
import pkgutil
import re
import textwrap
from pathlib import Path

import pytest

PACKAGES = ("hpt_ray", "searchers", "trainables")
# Modules that must keep at least one ``>>>`` example, so a change to the discovery or to the
# docstrings cannot leave this file testing nothing.
MUST_HAVE_EXAMPLES = ("hpt_ray.cluster", "hpt_ray.user_space")
# ELLIPSIS lets an example elide a long message ("ValueError: X has ... ") or object repr.
DOCTEST_FLAGS = doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE


def _modules() -> list[str]:
    names = []
    for package_name in PACKAGES:
        package = importlib.import_module(package_name)
        names.append(package_name)
        for info in pkgutil.walk_packages(package.__path__, prefix=f"{package_name}."):
            names.append(info.name)
    return sorted(names)


def _run_doctests(module_name: str) -> doctest.TestResults:
    module = importlib.import_module(module_name)
    runner = doctest.DocTestRunner(optionflags=DOCTEST_FLAGS)
    for test in doctest.DocTestFinder(exclude_empty=True).find(module, module_name):
        runner.run(test)
    return runner.summarize(verbose=False)


@pytest.mark.parametrize("module_name", _modules())
def test_docstring_examples_run(module_name: str) -> None:
    results = _run_doctests(module_name)
    assert results.failed == 0, f"{results.failed} failing >>> example(s) in {module_name}"


@pytest.mark.parametrize("module_name", MUST_HAVE_EXAMPLES)
def test_examples_are_found(module_name: str) -> None:
    assert module_name in _modules()
    assert _run_doctests(module_name).attempted > 0


def _experiment_example() -> str:
    """The literal block after 'Example ...::' in hpt_ray.experiment's docstring, dedented."""
    import hpt_ray.experiment

    doc = hpt_ray.experiment.__doc__ or ""
    found = re.search(r"^Example[^\n]*::\n\n((?:[ \t]+\S[^\n]*\n|\n)+)", doc, re.MULTILINE)
    assert found, "hpt_ray.experiment's docstring has no 'Example ...::' block"
    return textwrap.dedent(found.group(1))


def test_experiment_docstring_example_is_a_valid_experiment(tmp_path: Path) -> None:
    import searchers
    from hpt_ray import tune_model
    from hpt_ray.experiment import load_experiment
    from hpt_ray.schedulers import make_scheduler
    from hpt_ray.user_space import to_tune_space, validate_space
    from trainables.data import load_data
    from trainables.resources import resources_from_spec

    text = _experiment_example()
    path = tmp_path / "example.yaml"
    path.write_text(text)
    experiment = load_experiment(path)  # YAML syntax and every field's type

    kwargs = experiment.kwargs
    accepted = set(inspect.signature(tune_model).parameters)
    assert set(kwargs) <= accepted, sorted(set(kwargs) - accepted)
    assert callable(experiment.model)

    searcher = kwargs["searcher"]
    assert searcher in searchers.available()
    searchers.make_searcher(searcher, seed=kwargs["seed"], **kwargs["searcher_options"])
    make_scheduler(kwargs["scheduler"], max_t=kwargs["epochs"], **kwargs["scheduler_options"])
    resources_from_spec(kwargs["resources_per_trial"])
    space = to_tune_space(experiment.space, grid=searcher == "grid")
    validate_space(space, searcher=searcher)
    assert space["n_layers"].lower == 1
    assert space["n_layers"].upper == 4  # Ray's randint: 4 itself is never drawn
    assert space["optimizer"].categories == ["adam", "adamw"]
    assert space["batch_size"] == 64
    load_data(kwargs["data"], seed=kwargs["seed"])
