"""Atomic writes: umask respected, directory fsynced, temporaries removed on failure and after a
kill, deterministic model bytes, one-line errors for unwritable outputs."""

import os
import signal
import stat
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tintin.errors import TintinError
from tintin.io import OutputWriteError, atomic_write_bytes, atomic_write_json, check_writable_dir, save_model
from tintin.io.atomic import TEMP_SUFFIX, stale_temp_files
from tintin.nn import build_model

SRC = str(Path(__file__).resolve().parents[2] / "src")


def temps(directory):
    return sorted(p.name for p in Path(directory).iterdir() if p.name.endswith(TEMP_SUFFIX))


@pytest.mark.parametrize("umask,mode", [(0o022, 0o644), (0o077, 0o600), (0o002, 0o664)])
def test_files_get_the_mode_the_umask_gives(tmp_path, umask, mode):
    old = os.umask(umask)
    try:
        save_model(build_model("mlp", (8,), 3), tmp_path / "m.safetensors")
        atomic_write_json(tmp_path / "history.json", {"a": 1})
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "m.safetensors").stat().st_mode) == mode
    assert stat.S_IMODE((tmp_path / "history.json").stat().st_mode) == mode


def test_two_saves_give_the_same_bytes_in_and_across_processes(tmp_path):
    model = build_model("mlp", (1, 8, 8), 10, seed=3)
    info = {"dataset": "digits", "train": {"epochs": 2, "seed": 0}, "test_accuracy": 0.5}
    blobs = {save_model(model, tmp_path / f"m{i}.safetensors", info=info).read_bytes() for i in range(8)}
    assert len(blobs) == 1
    code = textwrap.dedent(f"""
        from tintin.io import save_model
        from tintin.nn import build_model
        save_model(build_model("mlp", (1, 8, 8), 10, seed=3), {str(tmp_path / 'sub.safetensors')!r},
                   info={{"train": {{"seed": 0, "epochs": 2}}, "dataset": "digits", "test_accuracy": 0.5}})
    """)
    for seed in ("1", "2"):
        subprocess.run([sys.executable, "-c", code], check=True, env={**os.environ, "PYTHONPATH": SRC,
                                                                      "PYTHONHASHSEED": seed})
        assert (tmp_path / "sub.safetensors").read_bytes() in blobs


def test_the_canonical_file_still_opens_with_the_safetensors_library(tmp_path):
    import json

    from safetensors import safe_open

    path = save_model(build_model("mlp", (8,), 3, seed=1), tmp_path / "m.safetensors", info={"x": 1})
    with safe_open(str(path), "np") as f:
        assert json.loads(f.metadata()["tintin"])["info"] == {"x": 1}
        assert f.get_tensor("fc1.weight").dtype.name == "int8"
    assert int.from_bytes(path.read_bytes()[:8], "little") % 8 == 0


def test_the_directory_is_fsynced_after_the_rename(tmp_path, monkeypatch):
    events = []
    real_fsync, real_replace = os.fsync, os.replace

    def fsync(fd):
        events.append("fsync-dir" if stat.S_ISDIR(os.fstat(fd).st_mode) else "fsync-file")
        return real_fsync(fd)

    def replace(a, b):
        events.append("rename")
        return real_replace(a, b)

    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(os, "replace", replace)
    atomic_write_bytes(tmp_path / "x.bin", b"abc")
    assert events == ["fsync-file", "rename", "fsync-dir"]


@pytest.mark.parametrize("interrupt", [KeyboardInterrupt, OSError])
def test_the_temporary_is_removed_on_any_exception(tmp_path, monkeypatch, interrupt):
    (tmp_path / "x.bin").write_bytes(b"old")

    def fail(fd):
        raise interrupt()

    monkeypatch.setattr(os, "fsync", fail)
    with pytest.raises(interrupt):
        atomic_write_bytes(tmp_path / "x.bin", b"new")
    monkeypatch.undo()
    assert temps(tmp_path) == []
    assert (tmp_path / "x.bin").read_bytes() == b"old"


def test_temporaries_of_a_killed_save_are_removed_by_the_next_save(tmp_path):
    target = tmp_path / "model.safetensors"
    code = textwrap.dedent(f"""
        import os, sys, time
        from tintin.io import atomic_write_bytes
        def hang(fd):
            print("writing", flush=True)
            time.sleep(60)
        os.fsync = hang
        atomic_write_bytes({str(target)!r}, b"x" * 100000)
    """)
    for _ in range(3):
        proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE,
                                env={**os.environ, "PYTHONPATH": SRC})
        assert proc.stdout.readline().strip() == b"writing"
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    # each killed write left its temporary and removed the one before it: one is left, and stale
    assert len(temps(tmp_path)) == 1 and len(stale_temp_files(target)) == 1
    # another file's temporaries and a running process's temporary are left alone
    other = tmp_path / f".other.bin.12345.abcd{TEMP_SUFFIX}"
    other.write_bytes(b"")
    running = tmp_path / f".model.safetensors.{os.getppid()}.beef{TEMP_SUFFIX}"
    running.write_bytes(b"")
    save_model(build_model("mlp", (8,), 3), target)
    assert temps(tmp_path) == sorted([other.name, running.name])


def test_unwritable_outputs_give_one_line(tmp_path):
    (tmp_path / "file").write_text("in the way")
    with pytest.raises(OutputWriteError) as info:
        atomic_write_bytes(tmp_path / "file" / "m.safetensors", b"x")
    assert isinstance(info.value, TintinError) and isinstance(info.value, OSError)
    assert "\n" not in str(info.value) and "not a directory" in str(info.value)
    with pytest.raises(OutputWriteError, match="is a directory"):
        atomic_write_bytes(tmp_path, b"x")
    with pytest.raises(OutputWriteError, match="in the way|not a directory"):
        check_writable_dir(tmp_path / "file")
    assert check_writable_dir(tmp_path / "new" / "dir").is_dir()
    assert temps(tmp_path / "new" / "dir") == []


@pytest.mark.skipif(os.geteuid() == 0, reason="root can write into a read-only directory")
def test_read_only_directory(tmp_path):
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o500)
    try:
        with pytest.raises(OutputWriteError, match="Permission denied"):
            check_writable_dir(ro)
        with pytest.raises(OutputWriteError, match="Permission denied"):
            atomic_write_bytes(ro / "x", b"x")
    finally:
        ro.chmod(0o700)
