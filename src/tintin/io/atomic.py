"""Atomic file writes: a reader sees the old file or the new one, never a part of either.

:func:`atomic_write_bytes` (and the text / JSON forms) write to a temporary file in the
destination's directory, named ``.<name>.<pid>.<random>.tintin-tmp``, created with mode
``0o666`` so the process umask applies (``0o644`` under the usual umask 022, like any other file the
user creates), then flush and fsync it, rename it over the destination and fsync the directory so
the rename itself survives a power cut.

The temporary file is removed on any exception, Ctrl-C included. A process killed outright
(``kill -9``, power loss) cannot clean up; the next write of the same path removes such leftovers:
temporaries of that destination whose process id no longer runs on this machine.

Failures to write raise :class:`OutputWriteError` (a :class:`~tintin.errors.TintinError` and an
:class:`OSError`) with one line naming the path and the reason.
"""

from __future__ import annotations

import errno
import json
import os
import secrets
from pathlib import Path

from tintin.errors import TintinError

__all__ = ["OutputWriteError", "TEMP_SUFFIX", "atomic_write_bytes", "atomic_write_json", "atomic_write_text",
           "check_writable_dir", "stale_temp_files"]

#: suffix of every temporary file tintin writes (the name is ``.<name>.<pid>.<random>`` + suffix)
TEMP_SUFFIX = ".tintin-tmp"


class OutputWriteError(TintinError, OSError):
    """A result file or its directory cannot be written (permissions, a file in the way, a full
    disk); the message names the path and the reason."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else "cannot write the output"


def _reason(exc: OSError) -> str:
    return exc.strerror or type(exc).__name__


def _temp_name(path: Path) -> str:
    return f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}{TEMP_SUFFIX}"


def _pid_running(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OSError):
        return True  # exists (another user's) or unknowable: keep its file
    return True


def stale_temp_files(path: str | os.PathLike) -> list[Path]:
    """Temporaries of ``path`` left by writes whose process is gone (killed mid-write)."""
    path = Path(path)
    prefix = f".{path.name}."
    stale = []
    try:
        entries = list(os.scandir(path.parent))
    except OSError:
        return []
    for entry in entries:
        name = entry.name
        if not (name.startswith(prefix) and name.endswith(TEMP_SUFFIX)):
            continue
        middle = name[len(prefix):-len(TEMP_SUFFIX)].split(".")
        if len(middle) != 2 or not middle[0].isdigit() or not middle[0].isascii():
            continue
        if not _pid_running(int(middle[0])):
            stale.append(Path(entry.path))
    return sorted(stale)


def _remove_quietly(path: Path) -> None:
    try:
        os.unlink(path)
    except OSError:
        pass


def _fsync_dir(directory: Path) -> None:
    flags = os.O_RDONLY | getattr(os, "O_DIRECTORY", 0)
    try:
        fd = os.open(directory, flags)
    except OSError:  # platforms that cannot open a directory (Windows): nothing to sync
        return
    try:
        os.fsync(fd)
    except OSError as exc:
        if exc.errno not in (errno.EINVAL, errno.ENOTSUP, errno.EBADF):
            raise
    finally:
        os.close(fd)


def check_writable_dir(directory: str | os.PathLike, create: bool = True) -> Path:
    """Prove a file can be written in ``directory`` (a temporary file of tintin's naming pattern,
    removed at once). Run it before long work whose result goes there. ``create``: make the
    directory first; otherwise probe its nearest existing ancestor, so that nothing is left behind
    when the work never starts. Raises :class:`OutputWriteError`."""
    directory = Path(directory)
    where = directory
    while not create and not where.exists() and where.parent != where:
        where = where.parent
    try:
        if create:
            directory.mkdir(parents=True, exist_ok=True)
        if not where.is_dir():
            raise NotADirectoryError(errno.ENOTDIR, f"{where} is not a directory")
        probe = where / _temp_name(where / "write-check")
        fd = os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
        os.close(fd)
        os.unlink(probe)
    except FileExistsError:
        raise OutputWriteError(f"cannot write to {directory}: a file of that name is in the way") from None
    except OSError as exc:
        raise OutputWriteError(f"cannot write to {directory}: {_reason(exc)}") from None
    return directory


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically (see the module docstring); returns ``path``.

    Creates missing parent directories. Raises :class:`OutputWriteError` when the file cannot be
    written; the previous file, if any, is then left as it was."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except FileExistsError:
        raise OutputWriteError(f"cannot write {path}: {path.parent} exists and is not a directory") from None
    except OSError as exc:
        raise OutputWriteError(f"cannot write {path}: {_reason(exc)} ({path.parent})") from None
    if path.is_dir():
        raise OutputWriteError(f"cannot write {path}: it is a directory")
    for old in stale_temp_files(path):
        _remove_quietly(old)
    tmp = path.parent / _temp_name(path)
    fd = None
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o666)
        with os.fdopen(fd, "wb") as fh:
            fd = None
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
        _fsync_dir(path.parent)
    except BaseException as exc:
        if fd is not None:
            os.close(fd)
        _remove_quietly(tmp)
        if isinstance(exc, OSError) and not isinstance(exc, OutputWriteError):
            raise OutputWriteError(f"cannot write {path}: {_reason(exc)}") from exc
        raise
    return path


def atomic_write_text(path: str | os.PathLike, text: str, encoding: str = "utf-8") -> Path:
    """:func:`atomic_write_bytes` of ``text`` encoded (UTF-8 by default)."""
    return atomic_write_bytes(path, text.encode(encoding))


def atomic_write_json(path: str | os.PathLike, obj, indent: int | None = 1) -> Path:
    """``obj`` as JSON (keys in the order given, a final newline), written atomically."""
    return atomic_write_text(path, json.dumps(obj, indent=indent) + "\n")
