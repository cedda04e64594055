"""The tests mirror the package map: every folder of tests/ names a package (or folder) of src/tintin."""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SRC = ROOT / "src" / "tintin"
#: folders of test data rather than tests (C drivers compiled by the runtime tests)
DATA_FOLDERS = {"c"}


def test_every_test_folder_mirrors_a_source_folder():
    tests = ROOT / "tests"
    strays = [str(d.relative_to(tests)) for d in tests.rglob("*")
              if d.is_dir() and d.name != "__pycache__" and not d.name.startswith(".")
              and d.name not in DATA_FOLDERS and not (SRC / d.relative_to(tests)).is_dir()]
    assert strays == [], f"test folders with no source folder of the same path: {strays}"
