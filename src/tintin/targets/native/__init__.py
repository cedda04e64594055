"""tintin.targets.native: the ``host-native`` backend. A model's whole training step (forward,
backward, update) runs in its generated C training program, compiled for this CPU with
``-O3 -march=native`` and vectorised host kernels (AVX2 where the CPU has it, the portable C
runtime elsewhere), with the same bits as the simulator (``tintin train --backend native``).

    from tintin.targets.native import fit_native
    result = fit_native(model, x, y, TrainConfig(batch_size=32))   # = tintin.train.fit, faster

:class:`NativeProgram` is the compiled program itself (state in and out, many batches per call);
:func:`native_available` says whether a host compiler works here; :func:`backend_fit` picks the
fit function of ``tintin train --backend``. See ``docs/native.md``.
"""

from __future__ import annotations

import functools

from tintin.targets.native.build import ACCELERATED, build_library, cache_root, host_compiler, simd_enabled
from tintin.targets.native.fit import NativeUnsupportedError, check_supported, fit_native
from tintin.targets.native.program import NativeProgram, NativeRunError

__all__ = ["ACCELERATED", "NativeProgram", "NativeRunError", "NativeUnsupportedError", "backend_fit",
           "build_library", "cache_root", "fit_native", "host_compiler", "native_available", "simd_enabled"]


def native_available() -> tuple[bool, str]:
    """``(True, compiler path)`` when a host C compiler is on PATH, else ``(False, why)``."""
    from tintin.targets.errors import ToolchainMissingError

    try:
        return True, host_compiler()
    except ToolchainMissingError as exc:
        return False, str(exc)


def backend_fit(model, config, required: bool):
    """``(fit function, backend name)`` for training ``model`` under ``config`` natively.

    Builds the program now (a missing compiler or a failed build raises its one-line error). A
    model or setting the C generator does not handle raises when ``required``; otherwise the
    simulator's :func:`tintin.train.fit` is returned with the name ``"numpy"``."""
    from tintin.codegen import CodegenError
    from tintin.train import fit

    try:
        check_supported(config)
        program = NativeProgram(model, config.batch_size, config.optim, update=None)
    except (CodegenError, NativeUnsupportedError):
        if required:
            raise
        return fit, "numpy"

    @functools.wraps(fit_native)
    def run(model_, x_train, y_train, config_, x_test=None, y_test=None, progress="auto", update_kernel=None,
            checkpointer=None):
        return fit_native(model_, x_train, y_train, config_, x_test, y_test, progress=progress,
                          checkpointer=checkpointer, program=program)

    return run, "native"
