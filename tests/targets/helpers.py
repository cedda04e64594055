"""Shared helpers for tintin.targets tests: the reference computation of
c/dot_checksum.c and a skip-unless-toolchain helper."""

from __future__ import annotations

from pathlib import Path

import pytest

from tintin.targets import TARGETS, toolchain_status

PROGRAMS = Path(__file__).resolve().parent / "c"
DOT_CHECKSUM = PROGRAMS / "dot_checksum.c"
MCU_TARGETS = [t for t in TARGETS if t != "host"]
ALL_TARGETS = list(TARGETS)


def require_toolchain(target: str) -> None:
    """Skip the calling test, with the reason printed in the summary, if tools are missing."""
    ok, reason = toolchain_status(target)
    if not ok:
        pytest.skip(reason)


def expected_dot_checksum(n: int) -> str:
    """What dot_checksum.c prints for TT_TEST_N = n, computed in Python."""
    state = 12345
    xs, ys = [], []

    def next_s8() -> int:
        nonlocal state
        state = (state * 1664525 + 1013904223) & 0xFFFFFFFF
        return (state >> 24) - 128

    for _ in range(n):
        xs.append(next_s8())
        ys.append(next_s8())
    dot = sum(x * y for x, y in zip(xs, ys))
    h = 2166136261
    for v in xs + ys:
        h = ((h ^ (v & 0xFF)) * 16777619) & 0xFFFFFFFF
    return f"n={n}\ndot={dot}\nfnv=0x{h:08x}\n"


def write_c(directory: Path, name: str, body: str) -> Path:
    """Write a C source that includes tt_platform.h."""
    path = directory / name
    path.write_text('#include "tt_platform.h"\n' + body)
    return path
