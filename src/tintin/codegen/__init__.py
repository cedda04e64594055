"""C code generation and the static C99 training runtime.

* ``runtime/``: the portable integer training runtime (``tt_*`` kernels, numerics, optimiser), C99
  with no floating-point arithmetic and no allocation; it mirrors :mod:`tintin.numerics`, :mod:`tintin.ops` and
  :mod:`tintin.optim` bit for bit (see ``docs/c-runtime.md``).
* :mod:`tintin.codegen.tables`: renders the runtime's constant tables from the Python specification.
* :mod:`tintin.codegen.host`: the runtime compiled for the host and bound with ctypes (tests and a
  fast host backend). Imported on demand: it compiles the runtime on first use.
"""

from pathlib import Path

RUNTIME_DIR = Path(__file__).resolve().parent / "runtime"

__all__ = ["RUNTIME_DIR"]
