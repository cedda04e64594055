"""Every ```python block of README.md and docs/*.md runs as written: the blocks of one file run in
order in one namespace, in an empty directory; a block of ``>>>`` lines runs as a doctest."""

from __future__ import annotations

import doctest
import re
from pathlib import Path

import pytest

from tintin.data import DatasetUnavailableError

ROOT = Path(__file__).resolve().parents[1]
FILES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
BLOCK = re.compile(r"^```python[ \t]*\n(.*?)^```[ \t]*$", re.S | re.M)


def python_blocks(path: Path) -> list[tuple[int, str]]:
    """``(line number, code)`` of every ```python block of ``path``."""
    text = path.read_text()
    return [(text.count("\n", 0, m.start()) + 2, m.group(1)) for m in BLOCK.finditer(text)]


def test_the_extractor_finds_blocks():
    blocks = python_blocks(ROOT / "docs" / "api.md")
    assert len(blocks) >= 8 and all("```" not in code for _, code in blocks)


@pytest.mark.parametrize("path", [p for p in FILES if python_blocks(p)], ids=lambda p: p.name)
def test_python_blocks_run(path, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "examples").symlink_to(ROOT / "examples")  # the docs' commands run from a checkout
    target = {"README.md": "host", "api.md": "host", "on-device.md": "host", "targets.md": "cortex-m4",
              "native.md": "host"}.get(path.name)
    if target is not None:
        from tintin.targets import toolchain_status
        ok, reason = toolchain_status(target)
        if not ok:
            pytest.skip(reason)
    namespace: dict = {"__name__": f"doc_{path.stem}"}
    for line, code in python_blocks(path):
        where = f"{path.relative_to(ROOT)}:{line}"
        if code.lstrip().startswith(">>>"):
            test = doctest.DocTestParser().get_doctest(code, namespace, where, str(path), line)
            runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
            runner.run(test)
            assert runner.summarize(verbose=False).failed == 0, f"the example at {where} fails"
            namespace.update(test.globs)
        else:
            try:
                exec(compile(code, where, "exec"), namespace)  # noqa: S102 - the project's own docs
            except DatasetUnavailableError as exc:  # e.g. Fashion-MNIST without its Debian package
                pytest.skip(f"{where}: {exc}")
