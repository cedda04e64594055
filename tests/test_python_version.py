"""The lowest Python version ``pyproject.toml`` claims runs every module of ``src/``."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

#: standard-library modules that appeared after Python 3.10, with the version that added them
NEWER_STDLIB = {"tomllib": (3, 11)}


def _claimed_minimum() -> tuple[int, int]:
    spec = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["requires-python"]
    m = re.fullmatch(r">=\s*(\d+)\.(\d+)", spec.strip())
    assert m, f"requires-python {spec!r} is not of the form >=X.Y"
    return int(m.group(1)), int(m.group(2))


def test_requires_python_covers_the_stdlib_modules_used():
    minimum = _claimed_minimum()
    for path in sorted((ROOT / "src").rglob("*.py")):
        text = path.read_text()
        for module, since in NEWER_STDLIB.items():
            if re.search(rf"^\s*(import {module}\b|from {module} import)", text, re.M):
                assert minimum >= since, (f"{path.relative_to(ROOT)} imports {module} (Python "
                                          f"{since[0]}.{since[1]}+) but pyproject.toml claims {minimum}")


def test_readme_states_the_same_minimum():
    major, minor = _claimed_minimum()
    assert f"Python {major}.{minor}+" in (ROOT / "README.md").read_text()
