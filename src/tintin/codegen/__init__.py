"""C code generation and the static C99 training runtime.

* ``runtime/``: the portable integer training runtime (``tt_*`` kernels, numerics, optimiser), C99
  with no floating-point arithmetic and no allocation; it mirrors :mod:`tintin.numerics`, :mod:`tintin.ops` and
  :mod:`tintin.optim` bit for bit (see ``docs/c-runtime.md``).
* :func:`generate_project` (:mod:`tintin.codegen.project`): a compiled training program as a
  self-contained C99 project (one planned arena, one runtime call per program step, batch-1
  evaluation, parameter export, Makefile, README); see ``docs/codegen.md``.
* :mod:`tintin.codegen.driver`: the ``main()`` of a measurement run (embedded samples, training
  steps, batch-1 evaluations, parameter dumps); building, running and comparing it with the
  simulator is :mod:`tintin.targets` (``run_model``). This package knows no emulator.
* :mod:`tintin.codegen.checkpoint`: the training state a project generated with ``checkpoint=True``
  saves to flash (``tt_checkpoint_save`` / ``tt_checkpoint_restore``, runtime ``tt_checkpoint.c``),
  its model hash and the slot format; the power-cut sweep is :mod:`tintin.targets.power_cuts`.
* :mod:`tintin.codegen.float_ref`: the same training step in C with binary32 reals, for measuring
  what integers save.
* :mod:`tintin.codegen.tables`: renders the runtime's constant tables from the Python specification.
* :mod:`tintin.codegen.host`: the runtime compiled for the host and bound with ctypes (tests and a
  fast host backend). Imported on demand: it compiles the runtime on first use.
"""

from pathlib import Path

RUNTIME_DIR = Path(__file__).resolve().parent / "runtime"

from .cgen import CodegenError  # noqa: E402
from .project import Project, compile_for_codegen, generate_project  # noqa: E402

__all__ = ["RUNTIME_DIR", "CodegenError", "Project", "compile_for_codegen", "generate_project"]
