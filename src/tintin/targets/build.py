"""Compile and link C programs for a target, and inspect the result.

``build`` adds the platform layer (``files/``: startup code, ``tt_platform.h`` implementation,
integer printing, freestanding memory functions, linker script) to the caller's sources, which
supply ``main()``. Sizes come from the target's ``size`` and symbols from its ``nm``.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from tintin.targets.errors import BuildError, TargetError
from tintin.targets.registry import FILES_DIR, Target
from tintin.targets.toolchain import require_toolchain

COMMON_CFLAGS = (
    "-std=c99",
    "-Wall",
    "-Wextra",
    "-Werror=implicit-function-declaration",
    "-ffunction-sections",
    "-fdata-sections",
)
"""Flags for every target. ``-std=c99`` (not gnu99) also turns off floating-point contraction."""

MCU_CFLAGS = (
    "-ffreestanding",
    "-fno-common",
    # GCC would turn the loops of tt_mem.c (and of callers) into calls to memset/memcpy,
    # i.e. into infinite recursion on targets where those functions are ours.
    "-fno-tree-loop-distribute-patterns",
)
"""Extra flags for every MCU target (no hosted libc)."""

SANITIZE_FLAGS = ("-fsanitize=address,undefined", "-fno-sanitize-recover=undefined",
                  "-fno-omit-frame-pointer", "-g")
"""Host executables built with ``sanitize=True``: any finding aborts the run (non-zero exit)."""

_PLATFORM_SOURCES = {
    "host": ("platform_host.c", "tt_print.c"),
    "cortex-m": ("startup_cm.c", "platform_cm.c", "tt_print.c", "tt_mem.c"),
    "avr": ("platform_avr.c", "tt_print.c", "tt_mem.c"),
}

_OPT_RE = re.compile(r"^-O([0-3sgz]|fast)?$")
_MACRO_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


@dataclass(frozen=True)
class BuildResult:
    """A linked program (or host shared library) and what it occupies.

    Attributes:
        target: target name.
        elf_path: the ELF executable (or ``.so`` for ``kind == "shared"``).
        kind: ``"executable"`` or ``"shared"``.
        text_bytes: code and read-only data (flash), in bytes, as ``size`` reports.
        data_bytes: initialised data: RAM at run time and a flash copy, in bytes.
        bss_bytes: zero-initialised RAM, in bytes.
        stack_bytes: stack reserved by the link (Cortex-M) or kept free (AVR), in bytes;
            None on the host.
        symbols: defined symbol name -> address (first definition wins for local duplicates).
        command: the compiler command line.
        compiler_output: warnings printed by the compiler ("" when clean).
    """

    target: str
    elf_path: Path
    kind: str
    text_bytes: int
    data_bytes: int
    bss_bytes: int
    stack_bytes: int | None
    symbols: Mapping[str, int] = field(repr=False)
    command: tuple[str, ...] = field(repr=False)
    compiler_output: str = field(default="", repr=False)

    @property
    def flash_bytes(self) -> int:
        """Flash used: code, read-only data and the initial values of ``.data``, in bytes."""
        return self.text_bytes + self.data_bytes

    @property
    def ram_bytes(self) -> int:
        """Static RAM used, including the reserved stack, in bytes."""
        return self.data_bytes + self.bss_bytes + (self.stack_bytes or 0)


_ERROR_PATTERNS = (
    (r"overflowed|not within region|will not fit", " (memory overflow: the program does not "
     "fit the RAM or flash it is linked for)"),
    (r"undefined reference", ""),
    (r"(?<!collect2): (fatal )?error:", ""),
    (r"\berror\b|cannot find", ""),
)


def _first_error_line(output: str) -> str:
    """The most telling line of compiler/linker output, for a one-line message."""
    lines = [ln.strip() for ln in output.splitlines() if ln.strip()]
    for pattern, hint in _ERROR_PATTERNS:
        for line in lines:
            if re.search(pattern, line) and not line.startswith("collect2"):
                return line + hint
    return lines[-1] if lines else "no compiler output"


def _define_flags(defines: Mapping[str, object] | None) -> list[str]:
    flags = []
    for name, value in (defines or {}).items():
        if not isinstance(name, str) or not _MACRO_RE.match(name):
            raise BuildError(f"invalid macro name {name!r} in defines")
        if value is None:
            flags.append(f"-D{name}")
        elif isinstance(value, bool):
            flags.append(f"-D{name}={int(value)}")
        elif isinstance(value, (int, str)):
            flags.append(f"-D{name}={value}")
        else:
            raise BuildError(f"define {name}: value must be int, str, bool or None, "
                             f"not {type(value).__name__}")
    return flags


def _check_inputs(sources: Iterable[str | os.PathLike], include_dirs: Iterable, opt: str
                  ) -> tuple[list[Path], list[Path]]:
    if isinstance(sources, (str, os.PathLike)):
        sources = [sources]
    srcs = [Path(s) for s in sources]
    if not srcs:
        raise BuildError("no C sources given")
    for s in srcs:
        if not s.is_file():
            raise BuildError(f"source file not found: {s}")
    incs = [Path(d) for d in include_dirs]
    for d in incs:
        if not d.is_dir():
            raise BuildError(f"include directory not found: {d}")
    if not _OPT_RE.match(opt):
        raise BuildError(f"invalid optimisation flag {opt!r}; use -O0, -O1, -O2, -O3 or -Os")
    return srcs, incs


def _run_compiler(cmd: list[str], what: str, timeout_s: float) -> str:
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout_s)
    except subprocess.TimeoutExpired as exc:
        raise BuildError(f"{what}: compiler did not finish within {timeout_s:g} s",
                         details=" ".join(cmd)) from exc
    output = proc.stdout + proc.stderr
    if proc.returncode != 0:
        raise BuildError(f"{what} failed: {_first_error_line(output)}",
                         details=" ".join(cmd) + "\n" + output)
    return output


def _sizes(size_tool: str, elf: Path) -> tuple[int, int, int]:
    """(text, data, bss) in bytes from Berkeley-format ``size``."""
    proc = subprocess.run([size_tool, str(elf)], capture_output=True, text=True, timeout=30)
    lines = proc.stdout.strip().splitlines()
    if proc.returncode != 0 or len(lines) < 2:
        raise BuildError(f"{size_tool} could not read {elf}", details=proc.stdout + proc.stderr)
    text, data, bss = (int(v) for v in lines[1].split()[:3])
    return text, data, bss


def read_symbols(nm_tool: str, elf: Path) -> dict[str, int]:
    """Defined symbols of ``elf`` as name -> address (via ``nm``)."""
    proc = subprocess.run([nm_tool, "--defined-only", str(elf)], capture_output=True, text=True,
                          timeout=30)
    if proc.returncode != 0:
        raise BuildError(f"{nm_tool} could not read {elf}", details=proc.stderr)
    symbols: dict[str, int] = {}
    for line in proc.stdout.splitlines():
        parts = line.split()
        if len(parts) == 3:
            symbols.setdefault(parts[2], int(parts[0], 16))
    return symbols


def _linker_script(target: Target, out_dir: Path, name: str, flash: int, ram: int,
                   stack: int) -> Path:
    if stack % 8 or stack < 256:
        raise BuildError(f"stack_bytes must be a multiple of 8 and at least 256, not {stack}")
    if stack >= ram:
        raise BuildError(f"stack_bytes ({stack}) must be smaller than ram_bytes ({ram})")
    template = (FILES_DIR / "cortex_m.ld").read_text()
    text = (template.replace("@FLASH_BYTES@", str(flash)).replace("@RAM_BYTES@", str(ram))
            .replace("@STACK_BYTES@", str(stack)).replace("@FLASH_ORIGIN@", f"0x{target.flash_origin:08X}")
            .replace("@RAM_ORIGIN@", f"0x{target.ram_origin:08X}"))
    path = out_dir / f"{name}.ld"
    path.write_text(text)
    return path


def build(target: str | Target, sources: Iterable[str | os.PathLike], out_dir: str | os.PathLike,
          include_dirs: Iterable[str | os.PathLike] = (),
          defines: Mapping[str, object] | None = None, opt: str = "-O2", *,
          name: str = "program", stack_bytes: int | None = None,
          flash_bytes: int | None = None, ram_bytes: int | None = None,
          extra_cflags: Iterable[str] = (), sanitize: bool = False,
          timeout_s: float = 120.0) -> BuildResult:
    """Compile and link ``sources`` (one of them defines ``main``) into an ELF for ``target``.

    The platform layer from ``files/`` is added and ``files/`` is on the include path, so
    sources ``#include "tt_platform.h"``.

    Args:
        target: target name or ``Target``.
        sources: C files.
        out_dir: where ``<name>.elf`` (and ``.map``, ``.ld``) are written; created if absent.
        include_dirs: extra ``-I`` directories.
        defines: macro name -> value (None for a bare ``-DNAME``).
        opt: optimisation flag, e.g. ``"-O2"`` or ``"-Os"``.
        name: output file stem.
        stack_bytes: stack to reserve (MCU targets), default per target.
        flash_bytes, ram_bytes: link against these limits instead of the target's (e.g. a
            device profile's ``flash_bytes``/``sram_bytes``), so an oversized program fails here.
        extra_cflags: more compiler flags, appended last.
        sanitize: host only: build with AddressSanitizer and UBSan (``SANITIZE_FLAGS``).
        timeout_s: limit for the compiler, in seconds.

    Raises:
        UnknownTargetError, ToolchainMissingError: bad target or missing tools.
        BuildError: bad arguments, or the compiler/linker failed (first error line in the
            message, full output in ``.details``).
    """
    t = require_toolchain(target)
    srcs, incs = _check_inputs(sources, include_dirs, opt)
    if sanitize and t.family != "host":
        raise BuildError(f"sanitize=True is only supported for the host target, not {t.name}")
    if not _MACRO_RE.match(name):
        raise BuildError(f"invalid output name {name!r}")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    elf = out / f"{name}.elf"

    flash = flash_bytes if flash_bytes is not None else t.flash_bytes
    ram = ram_bytes if ram_bytes is not None else t.ram_bytes
    stack = stack_bytes if stack_bytes is not None else t.default_stack_bytes
    for label, value in (("flash_bytes", flash), ("ram_bytes", ram), ("stack_bytes", stack)):
        if value is not None and (not isinstance(value, int) or value <= 0):
            raise BuildError(f"{label} must be a positive integer, not {value!r}")

    cflags = [*t.arch_flags, *COMMON_CFLAGS, opt, f"-I{FILES_DIR}", *(f"-I{d}" for d in incs),
              *_define_flags(defines)]
    ldflags = [f"-Wl,-Map={out / (name + '.map')}", "-Wl,--gc-sections"]
    if t.family == "host":
        if sanitize:
            cflags += SANITIZE_FLAGS
    else:
        cflags += MCU_CFLAGS
    if t.family == "cortex-m":
        script = _linker_script(t, out, name, flash, ram, stack)
        ldflags += ["-nostdlib", f"-T{script}"]
        libs = ["-lgcc"]
    elif t.family == "avr":
        if stack is not None and ram is not None and stack >= ram:
            raise BuildError(f"stack_bytes ({stack}) must be smaller than ram_bytes ({ram})")
        # the default avr5 script does not know the part's SRAM size: cap .data+.bss so that
        # `stack` bytes stay free below RAMEND, and the code at the flash size
        ldflags += ["-nodefaultlibs", f"-Wl,--defsym=__DATA_REGION_LENGTH__={ram - stack}",
                    f"-Wl,--defsym=__TEXT_REGION_LENGTH__={flash}"]
        libs = ["-lm", "-lgcc"]  # libm only for float reference programs (soft-float helpers)
    else:
        libs = []
    platform = [str(FILES_DIR / f) for f in _PLATFORM_SOURCES[t.family]]
    cmd = [t.cc, *cflags, *extra_cflags, *ldflags, "-o", str(elf), *platform,
           *(str(s) for s in srcs), *libs]
    output = _run_compiler(cmd, f"{t.name}: building {elf.name}", timeout_s)
    text, data, bss = _sizes(t.size, elf)
    return BuildResult(target=t.name, elf_path=elf, kind="executable", text_bytes=text,
                       data_bytes=data, bss_bytes=bss,
                       stack_bytes=stack if t.family != "host" else None,
                       symbols=read_symbols(t.nm, elf), command=tuple(cmd),
                       compiler_output=output)


def build_shared(sources: Iterable[str | os.PathLike], out_dir: str | os.PathLike,
                 include_dirs: Iterable[str | os.PathLike] = (),
                 defines: Mapping[str, object] | None = None, opt: str = "-O2", *,
                 name: str = "libprogram", extra_cflags: Iterable[str] = (),
                 timeout_s: float = 120.0) -> BuildResult:
    """Build ``sources`` as a host shared library (``<name>.so``) to load with ``ctypes.CDLL``.

    The host platform layer is linked in, so code calling ``tt_*`` functions loads; note that
    ``tt_exit`` ends the calling Python process. Same C flags as ``build("host", ...)``.

    Raises:
        BuildError, ToolchainMissingError: as for ``build``.
    """
    t = require_toolchain("host")
    srcs, incs = _check_inputs(sources, include_dirs, opt)
    if not _MACRO_RE.match(name):
        raise BuildError(f"invalid output name {name!r}")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    lib = out / f"{name}.so"
    cmd = [t.cc, *COMMON_CFLAGS, opt, "-shared", "-fPIC", f"-I{FILES_DIR}",
           *(f"-I{d}" for d in incs), *_define_flags(defines), *extra_cflags, "-o", str(lib),
           *(str(FILES_DIR / f) for f in _PLATFORM_SOURCES["host"]), *(str(s) for s in srcs)]
    output = _run_compiler(cmd, f"host: building {lib.name}", timeout_s)
    text, data, bss = _sizes(t.size, lib)
    return BuildResult(target="host", elf_path=lib, kind="shared", text_bytes=text,
                       data_bytes=data, bss_bytes=bss, stack_bytes=None,
                       symbols=read_symbols(t.nm, lib), command=tuple(cmd),
                       compiler_output=output)


# --- soft-float detection ---------------------------------------------------------------------

_SOFTFLOAT_RE = re.compile(
    r"^(?:"
    r"__aeabi_[fd](?:add|sub|rsub|mul|div|neg|cmp\w*|2\w+)"  # ARM EABI float/double helpers
    r"|__aeabi_c[fd]\w+"  # flag-setting comparisons
    r"|__aeabi_u?[il]2[fd]"  # int -> float/double
    r"|__(?:add|sub|mul|div)[sdt]f3|__neg[sdt]f2"  # libgcc arithmetic
    r"|__fix(?:uns)?[sdt]f[sdt]i|__float(?:un)?[sdt]i[sdt]f"  # conversions
    r"|__extend[sdt]f[sdt]f2|__trunc[sdt]f[sdt]f2"
    r"|__(?:eq|ne|lt|le|gt|ge|unord|cmp)[sdt]f2"  # comparisons
    r"|__(?:add|sub|mul|div)sf3x|__divsf3_pse|__mulsf3_pse"  # avr-libc internals
    r"|__fp_\w+"  # avr-libc float kernels
    r")$"
)


def _nm_for(elf: Path) -> str:
    """``nm`` matching the ELF's machine (ARM, AVR, or the host's)."""
    with open(elf, "rb") as f:
        head = f.read(20)
    if head[:4] != b"\x7fELF":
        raise TargetError(f"not an ELF file: {elf}")
    machine = int.from_bytes(head[18:20], "little" if head[5] == 1 else "big")
    tool = {40: "arm-none-eabi-nm", 83: "avr-nm"}.get(machine, "nm")
    if shutil.which(tool) is None:
        raise TargetError(f"{tool} is needed to read {elf.name}; install with `make toolchains`")
    return tool


def check_no_softfloat(elf: str | os.PathLike | BuildResult) -> list[str]:
    """List the soft-float helper symbols in ``elf`` (``__aeabi_fadd``, ``__mulsf3``, ``__fp_*``...).

    An empty list means the program does no software floating point. Defined and undefined
    symbols both count, so object files can be checked too.

    Raises:
        TargetError: not an ELF file, or no ``nm`` for its machine.
    """
    path = Path(elf.elf_path if isinstance(elf, BuildResult) else elf)
    if not path.is_file():
        raise TargetError(f"no such file: {path}")
    tool = _nm_for(path)
    proc = subprocess.run([tool, str(path)], capture_output=True, text=True, timeout=30)
    if proc.returncode != 0:
        raise TargetError(f"{tool} could not read {path}", details=proc.stderr)
    names = {line.split()[-1] for line in proc.stdout.splitlines() if line.strip()}
    return sorted(n for n in names if _SOFTFLOAT_RE.match(n))
