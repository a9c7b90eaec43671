"""The cores import without Ray; the registry imports a searcher on first use of its name.

Each check runs in a fresh Python process, since this one has imported Ray already.
"""

from __future__ import annotations

import json
import pkgutil
import subprocess
import sys
from pathlib import Path

import searchers

ROOT = Path(__file__).resolve().parents[1]

# The modules that may import Ray: the shell, the adapters, the Ray space converter and the
# shipped conformance suite. Every other module of the package is a core (or the registry).
RAY_MODULES = {
    "searchers.adapters",
    "searchers.auto",
    "searchers.base",
    "searchers.tune_domains",
    "searchers.testing",
    "searchers.wrapped",
}


def package_modules() -> list[str]:
    return sorted(
        info.name
        for info in pkgutil.walk_packages(searchers.__path__, prefix="searchers.")
        if not info.name.rsplit(".", 1)[-1].startswith("_")
    )


def loaded_after(code: str) -> dict[str, bool]:
    """Run ``code`` in a fresh interpreter; which of ray / ray.tune it left in sys.modules."""
    probe = (
        f"{code}\nimport json, sys\n"
        "print(json.dumps({m: m in sys.modules for m in ('ray', 'ray.tune')}))"
    )
    proc = subprocess.run(
        [sys.executable, "-c", probe],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    loaded: dict[str, bool] = json.loads(proc.stdout.strip().splitlines()[-1])
    return loaded


def test_every_core_module_imports_without_ray() -> None:
    cores = [m for m in package_modules() if m not in RAY_MODULES]
    assert "searchers.gp.core" in cores
    assert "searchers.pso" in cores
    assert len(cores) >= 12, cores
    code = "import importlib\n" + "".join(f"importlib.import_module({m!r})\n" for m in cores)
    assert loaded_after(code) == {"ray": False, "ray.tune": False}, cores


def test_registry_names_without_ray() -> None:
    code = (
        "import searchers\n"
        "assert 'gp-ei' in searchers.available()\n"
        "assert searchers.supports_grid('grid')\n"
    )
    assert loaded_after(code) == {"ray": False, "ray.tune": False}


def test_first_use_of_a_name_imports_its_adapter() -> None:
    code = (
        "import searchers\n"
        "s = searchers.make_searcher('gp-ei', seed=0)\n"
        "assert type(s).__name__ == 'GPEISearcher'\n"
        "assert searchers.GridSearcher.__module__ == 'searchers.adapters'\n"
    )
    assert loaded_after(code) == {"ray": True, "ray.tune": True}


def test_wrapped_names_match_the_backends() -> None:
    from searchers.wrapped import BACKENDS

    assert set(searchers._WRAPPED) == set(BACKENDS)
    assert set(BACKENDS) <= set(searchers.available())
