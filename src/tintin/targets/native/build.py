"""Compile a generated training program for the host CPU into a cached shared library.

The library holds the program (``tt_model.c``, ``tt_model_params.c``), the whole runtime, the
host loop :file:`targets/files/tt_host_train_loop.c` and the vectorised host kernels
:file:`targets/files/tt_host_kernels_x86.c`, all built with ``-O3 -march=native``. The runtime's
portable definitions of the kernels the host file accelerates are renamed ``tt_portable_<name>``
(``-D<name>=tt_portable_<name>`` on the runtime files only): the program calls the host kernel,
which calls the portable one for whatever it does not vectorise. ``TINTIN_NATIVE_SIMD=0`` builds
the portable C alone (the same bits, slower).

Libraries live in ``$TINTIN_CACHE/native`` (else ``~/.cache/tintin/native``), keyed by a hash of
every source, the flags, the compiler's version and the CPU's feature flags, so a second run of
the same program loads at once and a changed source or machine rebuilds. The runtime's objects
are compiled once and shared by every program; a new program compiles only its own files.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

from tintin.targets.errors import BuildError, ToolchainMissingError
from tintin.targets.registry import FILES_DIR

#: the host kernels replacing runtime definitions (the runtime's are renamed tt_portable_<name>)
ACCELERATED = (
    "tt_linear_forward_x4_s8",
    "tt_linear_backward_input_x4_s8",
    "tt_linear_backward_weight_rows_s32",
    "tt_sgd_update_tiled",
    "tt_conv2d_forward_im2col_s8",
    "tt_conv2d_backward_weight_rows_s32",
    "tt_linear_forward_rows_s8",
    "tt_linear_backward_input_rows_s8",
    "tt_sgd_update_tiled_rows_scaled_s8",
)
LOOP_SOURCE = FILES_DIR / "tt_host_train_loop.c"
KERNEL_SOURCE = FILES_DIR / "tt_host_kernels_x86.c"
#: -march=native: the library runs on the machine that built it (the CPU flags are in the cache key)
CFLAGS = ("-std=gnu99", "-O3", "-march=native", "-fPIC", "-Wall", "-Wextra", "-fno-strict-aliasing")
LIBRARY_NAME = "libtintin_native.so"


def cache_root() -> Path:
    """``$TINTIN_CACHE/native``, else ``~/.cache/tintin/native``."""
    root = os.environ.get("TINTIN_CACHE")
    return (Path(root) if root else Path.home() / ".cache" / "tintin") / "native"


def host_compiler() -> str:
    """Path of the host C compiler (``$CC`` or ``gcc``); :class:`ToolchainMissingError` without one."""
    cc = os.environ.get("CC") or "gcc"
    path = shutil.which(cc)
    if path is None:
        raise ToolchainMissingError(f"the native backend needs a host C compiler: {cc!r} is not on PATH "
                                    "(install gcc, set CC, or use --backend numpy)")
    return path


def simd_enabled() -> bool:
    """False when ``TINTIN_NATIVE_SIMD=0``: build the portable C only."""
    return os.environ.get("TINTIN_NATIVE_SIMD", "1") != "0"


def _cpu_flags() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("flags"):
                return line
    except OSError:
        pass
    import platform

    return platform.processor() or platform.machine()


def _compiler_version(cc: str) -> str:
    try:
        return subprocess.run([cc, "--version"], capture_output=True, text=True, timeout=30).stdout
    except (OSError, subprocess.SubprocessError) as exc:
        raise ToolchainMissingError(f"cannot run the host C compiler {cc}: {exc}") from None


def _compile(cmd: list[str], what: str) -> None:
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    except (OSError, subprocess.SubprocessError) as exc:
        raise BuildError(f"native: cannot run the host C compiler ({exc})") from None
    if proc.returncode != 0:
        lines = [ln for ln in proc.stderr.splitlines() if "error" in ln] or proc.stderr.splitlines() or ["(no output)"]
        raise BuildError(f"native: {what} does not compile on the host: {lines[0].strip()}", details=proc.stderr)


def _runtime_objects(cc: str, flags: tuple[str, ...], version: str) -> list[Path]:
    """Objects of the whole runtime (accelerated kernels renamed) and the host kernels, compiled
    once per runtime, flags, compiler and CPU into the cache and shared by every program."""
    from tintin.codegen import RUNTIME_DIR

    sources = sorted(RUNTIME_DIR.glob("*.c")) + [KERNEL_SOURCE]
    h = hashlib.sha256()
    for f in [*sources, *sorted(RUNTIME_DIR.glob("*.h"))]:
        h.update(f.name.encode() + b"\0" + f.read_bytes())
    h.update(" ".join(flags).encode() + version.encode() + _cpu_flags().encode())
    out_dir = cache_root() / f"runtime-{h.hexdigest()[:24]}"
    objects = [out_dir / f"{src.stem}.o" for src in sources]
    if all(o.exists() for o in objects):
        return objects
    cache_root().mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".runtime-", dir=cache_root()))
    try:
        renames = [f"-D{name}=tt_portable_{name}" for name in ACCELERATED]
        for src in sources:
            extra = renames if src != KERNEL_SOURCE else []
            _compile([cc, *flags, f"-I{RUNTIME_DIR}", *extra, "-c", str(src), "-o", str(tmp / f"{src.stem}.o")],
                     src.name)
        try:
            os.replace(tmp, out_dir)  # atomic: a concurrent build either wins or finds it complete
        except OSError:
            if not all(o.exists() for o in objects):
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return objects


def build_library(program_sources: list[Path], include_dirs: list[Path], key_extra: bytes = b"",
                  simd: bool | None = None, hashed: list[Path] | None = None) -> Path:
    """The cached shared library of a program: ``program_sources`` (the generated files) with the
    host loop, linked against the cached runtime objects (:func:`_runtime_objects`).
    ``key_extra``: bytes that also distinguish the build (e.g. frozen parameter values);
    ``hashed``: the program sources that name the build (default: all of them; a source left out
    must not change what the library computes once its state is loaded)."""
    cc = host_compiler()
    simd = simd_enabled() if simd is None else simd
    flags = CFLAGS + (() if simd else ("-DTT_HOST_PORTABLE",))
    version = _compiler_version(cc)
    runtime = _runtime_objects(cc, flags, version)
    h = hashlib.sha256()
    for f in [*(program_sources if hashed is None else hashed), LOOP_SOURCE]:
        h.update(Path(f).name.encode() + b"\0" + Path(f).read_bytes())
    h.update(" ".join(str(o.parent.name) for o in runtime[:1]).encode() + key_extra)
    out_dir = cache_root() / h.hexdigest()[:24]
    lib = out_dir / LIBRARY_NAME
    if lib.exists():
        return lib
    out_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".build-", dir=out_dir) as tmp:
        incs = [f"-I{d}" for d in include_dirs]
        objects = []
        for i, src in enumerate([*program_sources, LOOP_SOURCE]):
            obj = str(Path(tmp) / f"{i}_{Path(src).stem}.o")
            _compile([cc, *flags, *incs, "-c", str(src), "-o", obj], Path(src).name)
            objects.append(obj)
        tmp_lib = str(Path(tmp) / LIBRARY_NAME)
        _compile([cc, "-shared", *flags, "-o", tmp_lib, *objects, *(str(o) for o in runtime)], "the native library")
        os.replace(tmp_lib, lib)  # atomic: a concurrent run never loads a partial library
    return lib


def kernel_library(simd: bool | None = None) -> Path:
    """The runtime with the host kernels as one cached shared library, without a program: the
    vectorised kernels under the runtime's names and the portable ones as ``tt_portable_<name>``
    (what the property tests compare)."""
    cc = host_compiler()
    simd = simd_enabled() if simd is None else simd
    flags = CFLAGS + (() if simd else ("-DTT_HOST_PORTABLE",))
    runtime = _runtime_objects(cc, flags, _compiler_version(cc))
    lib = runtime[0].parent / "libtintin_host_kernels.so"
    if not lib.exists():
        fd, tmp = tempfile.mkstemp(prefix=".link-", suffix=".so", dir=runtime[0].parent)
        os.close(fd)
        try:
            _compile([cc, "-shared", *flags, "-o", tmp, *(str(o) for o in runtime)], "the host kernels")
            os.replace(tmp, lib)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
    return lib
