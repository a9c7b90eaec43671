"""Habits of a maintained project (issue #13 item 6): one version, ignored build outputs, bounds on
dependencies whose private modules we import, a pre-commit config that runs ruff and mypy."""

from __future__ import annotations

import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
import yaml

import hpt_ray
from hpt_ray.cli import main

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("hpt_ray", "searchers", "trainables")


def _pyproject() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())


def _dependency(name: str) -> str:
    found = [d for d in _pyproject()["project"]["dependencies"] if re.match(rf"{name}\b", d)]
    assert len(found) == 1, found
    return found[0]


def test_version_is_pyprojects():
    assert hpt_ray.__version__ == _pyproject()["project"]["version"]


def test_version_written_once():
    # pyproject.toml is the one place; code reads the installed metadata.
    literal = re.compile(r"""__version__\s*=\s*["']\d+\.\d+""")
    written = [
        str(path.relative_to(ROOT))
        for package in PACKAGES
        for path in (ROOT / package).rglob("*.py")
        if literal.search(path.read_text())
    ]
    assert written == []


def test_cli_version(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["--version"])
    assert exit_info.value.code == 0
    assert capsys.readouterr().out.strip() == f"hpt-ray {_pyproject()['project']['version']}"


def test_cli_version_in_a_fresh_interpreter():
    # As the console script runs it: nothing imported before.
    code = "import sys; from hpt_ray.cli import main; sys.exit(main())"
    out = subprocess.run(
        [sys.executable, "-c", code, "--version"], capture_output=True, text=True, check=False
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == f"hpt-ray {hpt_ray.__version__}"


def test_build_outputs_ignored():
    lines = (ROOT / ".gitignore").read_text().splitlines()
    for pattern in ("build/", "dist/", "*.egg-info/"):
        assert pattern in lines, pattern


def _private_imports(top: str) -> list[str]:
    # `from sklearn.a._b import ...`, `import sklearn.a._b`, or `from sklearn.a import _name`.
    pattern = re.compile(
        rf"^\s*(?:from\s+({top}(?:\.\w+)*)\s+import\s+(.+)|import\s+({top}(?:\.\w+)*))", re.M
    )
    found = []
    for package in PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            for match in pattern.finditer(path.read_text()):
                module = match.group(1) or match.group(3)
                names = match.group(2) or ""
                if ("._" in module) or re.search(r"(?:^|[\s,(])_[a-z]", names):
                    found.append(f"{path.relative_to(ROOT)}: {match.group(0).strip()}")
    return found


@pytest.mark.parametrize(("top", "distribution"), [("sklearn", "scikit-learn"), ("ray", "ray")])
def test_private_imports_have_an_upper_bound(top, distribution):
    private = _private_imports(top)
    if not private:
        pytest.skip(f"no private {top} imports")
    requirement = _dependency(distribution)
    assert "<" in requirement, (
        f"{distribution} is unbounded in pyproject.toml while private modules are imported: "
        f"{private}"
    )


def test_private_sklearn_imports_found():
    # The scan above must see the imports it is about (else its skip would hide them).
    private = _private_imports("sklearn")
    assert any("sklearn.metrics._scorer" in line for line in private), private


def test_pre_commit_runs_ruff_and_mypy():
    config = yaml.safe_load((ROOT / ".pre-commit-config.yaml").read_text())
    hooks = {hook["id"]: hook for repo in config["repos"] for hook in repo["hooks"]}
    assert "ruff" in hooks
    mypy = hooks["mypy"]
    assert mypy["language"] == "system"
    assert mypy["pass_filenames"] is False
    assert "mypy" in mypy["entry"]
