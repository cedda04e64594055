"""The target registry: what each build-and-run target compiles with and runs on.

A *target* is a compiler configuration plus the emulator that runs its binaries and what that
emulator counts. The compiler and its flags come from :data:`tintin.codegen.toolchains.C_TOOLCHAINS`,
the one table the generated Makefiles also use. It is not a device: device profiles (``devices.py``) describe real parts and
name the target that runs their code.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from tintin.codegen.toolchains import C_TOOLCHAINS
from tintin.targets.errors import UnknownTargetError

FILES_DIR = Path(__file__).resolve().parent / "files"
"""Directory of the C harness, startup code, linker script and tool sources."""

KIB = 1024
MIB = 1024 * 1024


@dataclass(frozen=True)
class Machine:
    """One emulated board a target's binaries can run on.

    Attributes:
        name: QEMU machine (``-M``) or ``"simavr"`` / ``"host"``.
        cpu: QEMU ``-cpu`` model, or the simavr MCU name; None for the host.
        flash_bytes: code memory at 0x00000000 (Cortex-M), in bytes; None = unlimited.
        ram_bytes: RAM at 0x20000000 (Cortex-M), in bytes; None = unlimited.
        reference_only: the board runs float reference programs only (built for its own memory
            map, :mod:`tintin.targets.float_reference`); programs linked for the target's part
            (training, the power-cut sweep) never run on it.
    """

    name: str
    cpu: str | None
    flash_bytes: int | None = None
    ram_bytes: int | None = None
    reference_only: bool = False


@dataclass(frozen=True)
class Target:
    """A build-and-run target.

    Attributes:
        name: registry key, e.g. ``"cortex-m4"``.
        description: one line for listings.
        family: ``"host"``, ``"cortex-m"`` or ``"avr"``; selects startup, platform and runner.
        cc: C compiler executable.
        tool_prefix: binutils prefix (``"arm-none-eabi-"``, ``"avr-"``, ``""`` for the host).
        arch_flags: CPU/ABI flags, e.g. ``("-mcpu=cortex-m0", "-mthumb", "-mfloat-abi=soft")``.
        machines: boards that run the binaries, in order of preference; the first whose
            memory holds the program is used (see ``docs/targets.md``, Cortex-M0).
        count_unit: what ``RunResult.counts`` measures: ``"instructions"``, ``"cycles"`` or
            None (the host counts nothing).
        flash_bytes, ram_bytes: memory the linker may fill, in bytes (None = unchecked).
        default_stack_bytes: stack reserved below ``.data`` (Cortex-M) or kept free above
            ``.bss`` (AVR), in bytes; None on the host.
        clock_hz: emulated core clock in Hz (AVR only: simavr times peripherals with it).
        hard_float: True when floats compile to FPU instructions (Cortex-M4F).
        apt_packages: Debian packages that provide the tools (for the install hint).
        flash_origin, ram_origin: Cortex-M only: where the linker places code and RAM (the
            machines' memory maps: 0x00000000 / 0x20000000 except on mps2-an505).
    """

    name: str
    description: str
    family: str
    cc: str
    tool_prefix: str
    arch_flags: tuple[str, ...]
    machines: tuple[Machine, ...]
    count_unit: str | None
    flash_bytes: int | None
    ram_bytes: int | None
    default_stack_bytes: int | None
    clock_hz: int | None = None
    hard_float: bool = False
    apt_packages: tuple[str, ...] = ()
    flash_origin: int = 0x00000000
    ram_origin: int = 0x20000000

    @property
    def nm(self) -> str:
        """``nm`` executable of this target's binutils."""
        return self.tool_prefix + "nm"

    @property
    def size(self) -> str:
        """``size`` executable of this target's binutils."""
        return self.tool_prefix + "size"


_ARM_APT = ("gcc-arm-none-eabi", "qemu-system-arm")
_AN385 = Machine("mps2-an385", "cortex-m3", flash_bytes=4 * MIB, ram_bytes=4 * MIB)
_AN386 = Machine("mps2-an386", "cortex-m4", flash_bytes=4 * MIB, ram_bytes=4 * MIB)
_AN505 = Machine("mps2-an505", "cortex-m33", flash_bytes=4 * MIB, ram_bytes=4 * MIB)

def _compiler(name: str) -> dict:
    tc = C_TOOLCHAINS[name]
    return {"cc": tc.cc, "tool_prefix": tc.tool_prefix, "arch_flags": tc.arch_flags}


def _cortex_m(name: str, description: str, *, machines: tuple[Machine, ...],
              flash_bytes: int = 4 * MIB, ram_bytes: int = 4 * MIB, default_stack_bytes: int = 8 * KIB,
              hard_float: bool = False, flash_origin: int = 0x00000000, ram_origin: int = 0x20000000) -> Target:
    """A Cortex-M target: arm-none-eabi-gcc, instruction counts from the QEMU plugin."""
    return Target(name=name, description=description, family="cortex-m", **_compiler(name), machines=machines,
                  count_unit="instructions", flash_bytes=flash_bytes, ram_bytes=ram_bytes,
                  default_stack_bytes=default_stack_bytes, hard_float=hard_float, apt_packages=_ARM_APT,
                  flash_origin=flash_origin, ram_origin=ram_origin)


TARGETS: dict[str, Target] = {
    t.name: t
    for t in (
        Target(
            name="host",
            description="the build machine itself (system gcc), for bit-exactness checks",
            family="host",
            **_compiler("host"),
            machines=(Machine("host", None),),
            count_unit=None,
            flash_bytes=None,
            ram_bytes=None,
            default_stack_bytes=None,
            apt_packages=("gcc", "binutils"),
        ),
        _cortex_m(
            "cortex-m0",
            "ARMv6-M (Cortex-M0/M0+ class, e.g. RP2040); QEMU microbit, "
            "or mps2-an385 when the program needs more than 16 KB RAM / 256 KB flash",
            machines=(
                Machine("microbit", "cortex-m0", flash_bytes=256 * KIB, ram_bytes=16 * KIB),
                _AN385,  # runs the same ARMv6-M binary on an ARMv7-M core
            ),
            flash_bytes=2 * MIB,  # RP2040-class: 2 MB QSPI flash (Raspberry Pi Pico)
            ram_bytes=264 * KIB,  # RP2040: 264 KB SRAM
            default_stack_bytes=4 * KIB,
        ),
        _cortex_m("cortex-m3", "ARMv7-M Cortex-M3 on QEMU mps2-an385", machines=(_AN385,)),
        _cortex_m("cortex-m4", "ARMv7E-M Cortex-M4, soft-float ABI (no FPU use), on QEMU mps2-an386",
                  machines=(_AN386,)),
        _cortex_m(
            "cortex-m4f",
            "Cortex-M4F, hard float (FPv4-SP enabled at reset), on QEMU mps2-an386; for float reference programs",
            machines=(_AN386,),
            hard_float=True,
        ),
        _cortex_m("cortex-m33", "ARMv8-M Mainline Cortex-M33 with the DSP extension, soft-float ABI, on QEMU "
                  "mps2-an505 (secure state)", machines=(_AN505,), flash_origin=0x10000000, ram_origin=0x38000000),
        Target(
            name="atmega328p",
            description="AVR ATmega328P at 16 MHz on simavr (cycle-accurate), USART0 console",
            family="avr",
            **_compiler("atmega328p"),
            machines=(
                Machine("simavr", "atmega328p", flash_bytes=32 * KIB, ram_bytes=2 * KIB),
                # the same AVRe+ core and instruction timings with 16 KB SRAM: runs float reference
                # programs that do not fit 2 KB (built with the stack at its RAMEND, see
                # tintin.targets.float_reference), as mps2-an385 does for the Cortex-M0
                Machine("simavr-atmega1284p", "atmega1284p", flash_bytes=128 * KIB, ram_bytes=16 * KIB,
                        reference_only=True),
            ),
            count_unit="cycles",
            flash_bytes=32 * KIB,
            ram_bytes=2 * KIB,
            default_stack_bytes=256,
            clock_hz=16_000_000,
            apt_packages=("gcc-avr", "avr-libc", "simavr", "libsimavr-dev"),
        ),
    )
}
"""All targets by name."""


def get_target(name: str | Target) -> Target:
    """Return the target called ``name`` (a ``Target`` is passed through).

    Raises:
        UnknownTargetError: ``name`` is not a registered target; the message lists the valid ones.
    """
    if isinstance(name, Target):
        return name
    try:
        return TARGETS[name]
    except (KeyError, TypeError):
        valid = ", ".join(TARGETS)
        raise UnknownTargetError(f"unknown target {name!r}; valid targets: {valid}") from None
