"""Exceptions of ``tintin.targets``.

Every exception carries a one-line message (``str(exc)``) suitable for a CLI error line and,
where a tool produced output, the full text in ``exc.details``.
"""

from __future__ import annotations

from tintin.errors import TintinError


class TargetError(TintinError):
    """Base class of every error raised by ``tintin.targets``.

    Attributes:
        details: full output of the tool involved (compiler, emulator), or ``""``.
    """

    def __init__(self, message: str, details: str = "") -> None:
        super().__init__(message)
        self.details = details


class UnknownTargetError(TargetError, KeyError):
    """A target name that is not in ``TARGETS``."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0])


class ToolchainMissingError(TargetError):
    """A compiler, emulator or library needed by a target is not installed."""


class BuildError(TargetError):
    """Compiling or linking failed; ``details`` holds the compiler output."""


class RunError(TargetError):
    """A program failed, faulted, hung or overflowed its stack in the emulator.

    Attributes:
        result: the partial ``RunResult`` when the program ran to an exit status, else None.
    """

    def __init__(self, message: str, details: str = "", result: object | None = None) -> None:
        super().__init__(message, details)
        self.result = result


class UnknownDeviceError(TargetError, KeyError):
    """A device name with no profile in ``tintin/targets/devices``."""

    def __str__(self) -> str:
        return str(self.args[0])


class DeviceProfileError(TargetError):
    """A device profile file is malformed (missing field, wrong type, bad value)."""


class DoesNotFitError(TargetError):
    """A training program (arena, stack, code, data) needs more memory than the target has."""


class DeviceRunError(TargetError):
    """A device's output is missing records or reports a failing status."""
