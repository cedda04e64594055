"""The C compiler and flags of each build target: the one table both the generated Makefile
(:mod:`tintin.codegen.project`) and the target registry (:mod:`tintin.targets.registry`) read.

It lives here, below ``targets`` in the package map, so that the C emitter can write a Makefile
for every target without importing ``tintin.targets`` (which may import ``codegen``, not the
reverse). Emulators, memories and everything else about running a target stay in the registry.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class CToolchain:
    """How C code is compiled for one target.

    Attributes:
        cc: C compiler executable.
        tool_prefix: binutils prefix (``"arm-none-eabi-"``, ``"avr-"``, ``""`` for the host).
        arch_flags: CPU/ABI flags of every compilation for the target.
        program_flags: extra flags for generated training programs (the 32 KB ATmega328P shares
            register save/restore code with ``-mcall-prologues``: smaller).
    """

    cc: str
    tool_prefix: str
    arch_flags: tuple[str, ...]
    program_flags: tuple[str, ...] = ()

    @property
    def ar(self) -> str:
        """``ar`` executable of the target's binutils."""
        return self.tool_prefix + "ar"


_ARM = ("arm-none-eabi-gcc", "arm-none-eabi-")

C_TOOLCHAINS: dict[str, CToolchain] = {
    "host": CToolchain("gcc", "", ()),
    "cortex-m0": CToolchain(*_ARM, ("-mcpu=cortex-m0", "-mthumb", "-mfloat-abi=soft")),
    "cortex-m3": CToolchain(*_ARM, ("-mcpu=cortex-m3", "-mthumb", "-mfloat-abi=soft")),
    "cortex-m4": CToolchain(*_ARM, ("-mcpu=cortex-m4", "-mthumb", "-mfloat-abi=soft")),
    "cortex-m4f": CToolchain(*_ARM, (
        "-mcpu=cortex-m4",
        "-mthumb",
        "-mfloat-abi=hard",
        "-mfpu=fpv4-sp-d16",
        "-ffp-contract=off",  # no fused multiply-add: bit-exact float32 like numpy
    )),
    "cortex-m33": CToolchain(*_ARM, ("-mcpu=cortex-m33", "-mthumb", "-mfloat-abi=soft")),
    "atmega328p": CToolchain("avr-gcc", "avr-", ("-mmcu=atmega328p", "-DF_CPU=16000000UL"),
                             program_flags=("-mcall-prologues",)),
}
"""Compiler settings by target name (the keys are the names of :data:`tintin.targets.TARGETS`)."""
