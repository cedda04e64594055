"""Helper tools are built on demand into the cache, and rebuilt when their source changes."""

from pathlib import Path

import pytest

import tintin.targets.toolchain as tc
from tintin.targets import FILES_DIR, cache_dir

from .helpers import require_toolchain


def test_cache_dir_follows_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("TINTIN_CACHE", str(tmp_path))
    assert cache_dir() == tmp_path / "tools"
    monkeypatch.delenv("TINTIN_CACHE")
    assert cache_dir() == Path.home() / ".cache" / "tintin" / "tools"


def test_tool_is_built_once_and_rebuilt_when_source_changes(monkeypatch, tmp_path):
    require_toolchain("host")
    monkeypatch.setenv("TINTIN_CACHE", str(tmp_path / "cache"))
    src = tmp_path / "tool.c"
    src.write_text("int main(void) { return 0; }\n")
    first = tc._build_cached_tool("demo", src, "", ["-O2"], [])
    assert first.is_file() and first.parent == tmp_path / "cache" / "tools"
    stamp = first.stat().st_mtime_ns
    assert tc._build_cached_tool("demo", src, "", ["-O2"], []) == first
    assert first.stat().st_mtime_ns == stamp  # not rebuilt
    src.write_text("int main(void) { return 1; }\n")
    second = tc._build_cached_tool("demo", src, "", ["-O2"], [])
    assert second != first and second.is_file()
    assert not list((tmp_path / "cache" / "tools").glob(".demo-*"))  # no temporary left over


def test_broken_tool_source_is_a_build_error(monkeypatch, tmp_path):
    require_toolchain("host")
    monkeypatch.setenv("TINTIN_CACHE", str(tmp_path / "cache"))
    src = tmp_path / "bad.c"
    src.write_text("int main(void) { return }\n")
    with pytest.raises(tc.BuildError, match="helper tool bad"):
        tc._build_cached_tool("bad", src, "", [], [])


@pytest.mark.emulator
def test_real_tools_build_outside_the_source_tree(monkeypatch, tmp_path):
    require_toolchain("cortex-m3")
    require_toolchain("atmega328p")
    monkeypatch.setenv("TINTIN_CACHE", str(tmp_path))
    for path in (tc.qemu_plugin_path(), tc.simavr_runner_path()):
        assert path.is_file() and tmp_path in path.parents
        assert FILES_DIR not in path.parents
