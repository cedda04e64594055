"""The one base class of every error that tintin raises on purpose.

Every subclass carries a one-line message (``str(exc)``) written for a user. The command line
(:func:`tintin.cli.app.main`) is the single place that turns a :class:`TintinError` into an
``error: ...`` line and its exit status; library callers can catch ``TintinError`` to handle any
tintin failure.

Subclasses keep a standard base too (``ValueError``, ``RuntimeError``, ``KeyError``) where callers
already relied on it, so ``except ValueError`` around a shape error keeps working.

This module imports nothing from tintin: every layer may use it.
"""

from __future__ import annotations

__all__ = ["TintinError"]


class TintinError(Exception):
    """Base class of tintin's own errors.

    Attributes:
        exit_code: the process exit status the command line uses for this error (1 unless a
            subclass says otherwise).
    """

    exit_code: int = 1
