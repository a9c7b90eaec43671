"""README's code blocks are valid: every Python block compiles, every YAML block parses, and
every experiment file it names exists."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

README = Path(__file__).resolve().parents[1] / "README.md"
TEXT = README.read_text(encoding="utf-8")
PYTHON = re.findall(r"```python\n(.*?)```", TEXT, re.S)
YAML = re.findall(r"```yaml\n(.*?)```", TEXT, re.S)


@pytest.mark.parametrize("index", range(len(PYTHON)))
def test_python_block_compiles(index):
    compile(PYTHON[index], f"README.md python block {index}", "exec")


@pytest.mark.parametrize("index", range(len(YAML)))
def test_yaml_block_parses(index):
    assert yaml.safe_load(YAML[index]) is not None


def test_named_example_files_exist():
    root = README.parent
    named = set(re.findall(r"scripts/examples/[\w/.-]+\.yaml", TEXT))
    assert named
    missing = sorted(n for n in named if not (root / n).exists())
    assert not missing, missing
