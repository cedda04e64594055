"""Which tools a target needs, whether they are installed, and the helper tools we build.

Two helpers are compiled on demand with the system ``gcc`` into a cache directory (never into
the source tree): the QEMU instruction-counting plugin and the libsimavr runner. Their file
names carry a hash of source and command, so an edited source is rebuilt automatically.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

from tintin.targets.errors import BuildError, ToolchainMissingError
from tintin.targets.registry import FILES_DIR, Target, get_target

SIMAVR_INCLUDE_DIR = Path("/usr/include/simavr")
_SIMAVR_LIB_DIRS = (Path("/usr/lib/x86_64-linux-gnu"), Path("/usr/lib"), Path("/usr/local/lib"),
                    Path("/usr/lib/aarch64-linux-gnu"))

_APT_FOR_TOOL = {
    "gcc": "gcc",
    "nm": "binutils",
    "size": "binutils",
    "arm-none-eabi-gcc": "gcc-arm-none-eabi",
    "arm-none-eabi-nm": "binutils-arm-none-eabi",
    "arm-none-eabi-size": "binutils-arm-none-eabi",
    "qemu-system-arm": "qemu-system-arm",
    "avr-gcc": "gcc-avr",
    "avr-nm": "binutils-avr",
    "avr-size": "binutils-avr",
    "avr-libc headers": "avr-libc",
    "libsimavr": "libsimavr-dev",
}


def cache_dir() -> Path:
    """Directory for built helper tools: ``$TINTIN_CACHE/tools``, else ``~/.cache/tintin/tools``."""
    root = os.environ.get("TINTIN_CACHE")
    base = Path(root) if root else Path.home() / ".cache" / "tintin"
    return base / "tools"


def _missing_tools(target: Target) -> list[str]:
    missing = [t for t in (target.cc, target.nm, target.size) if shutil.which(t) is None]
    if target.family == "cortex-m":
        for tool in ("qemu-system-arm", "gcc"):  # gcc builds the QEMU plugin
            if shutil.which(tool) is None and tool not in missing:
                missing.append(tool)
    elif target.family == "avr":
        if not Path("/usr/lib/avr/include/avr/io.h").exists() and shutil.which("avr-gcc"):
            missing.append("avr-libc headers")
        if shutil.which("gcc") is None:
            missing.append("gcc")
        if not (SIMAVR_INCLUDE_DIR / "sim_avr.h").exists() or not any(
            (d / "libsimavr.so").exists() or (d / "libsimavr.a").exists() for d in _SIMAVR_LIB_DIRS
        ):
            missing.append("libsimavr")
    return missing


def toolchain_status(target: str | Target) -> tuple[bool, str]:
    """Check that every tool ``target`` needs to build and run programs is installed.

    Returns:
        ``(True, "<tools> found")`` or ``(False, reason)`` where ``reason`` is one line naming the
        missing tools and how to install them.

    Raises:
        UnknownTargetError: unknown target name.
    """
    t = get_target(target)
    missing = _missing_tools(t)
    if not missing:
        used = [t.cc] + (["qemu-system-arm"] if t.family == "cortex-m" else [])
        used += ["libsimavr"] if t.family == "avr" else []
        return True, f"{t.name}: {', '.join(used)} found"
    packages = sorted({_APT_FOR_TOOL.get(m, m) for m in missing})
    return False, (
        f"{t.name}: missing {', '.join(missing)}; install with `make toolchains` (as root) "
        f"or `apt-get install {' '.join(packages)}`"
    )


def require_toolchain(target: str | Target) -> Target:
    """Return the target, or raise ``ToolchainMissingError`` with the install hint."""
    t = get_target(target)
    ok, reason = toolchain_status(t)
    if not ok:
        raise ToolchainMissingError(reason)
    return t


def _build_cached_tool(name: str, source: Path, suffix: str, flags: list[str],
                       libs: list[str]) -> Path:
    """Compile ``source`` with the system gcc into the cache, once per source version."""
    text = source.read_bytes()
    digest = hashlib.sha256(text + repr((flags, libs)).encode()).hexdigest()[:16]
    out = cache_dir() / f"{name}-{digest}{suffix}"
    if out.exists():
        return out
    if shutil.which("gcc") is None:
        raise ToolchainMissingError(f"building {name} needs the system gcc; apt-get install gcc")
    out.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{name}-", suffix=suffix, dir=out.parent)
    os.close(fd)
    cmd = ["gcc", *flags, "-o", tmp, str(source), *libs]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
        if proc.returncode != 0:
            raise BuildError(f"building helper tool {name} failed (gcc exit {proc.returncode})",
                             details=" ".join(cmd) + "\n" + proc.stdout + proc.stderr)
        os.chmod(tmp, 0o755)
        os.replace(tmp, out)  # atomic: parallel builders never see a half-written file
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return out


def qemu_plugin_path() -> Path:
    """Path of the instruction-counting QEMU plugin (built on first use)."""
    return _build_cached_tool("tt_insn_count", FILES_DIR / "qemu" / "tt_insn_count.c", ".so",
                              ["-shared", "-fPIC", "-O2", "-Wall"], [])


def simavr_runner_path() -> Path:
    """Path of the libsimavr cycle-counting runner (built on first use)."""
    return _build_cached_tool("tt_simavr_run", FILES_DIR / "simavr" / "tt_simavr_run.c", "",
                              ["-O2", "-Wall", f"-I{SIMAVR_INCLUDE_DIR}"], ["-lsimavr"])
