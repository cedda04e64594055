"""The ``tintin`` command.

Each command lives in its own module of this package and exposes ``register(app)``; ``main()``
turns every :class:`tintin.errors`-style failure into one line on stderr and a non-zero exit.
"""

from __future__ import annotations

from .app import app, main

__all__ = ["app", "main"]
