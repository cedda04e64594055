"""tintin.targets.native: the ``host-native`` backend. A model's whole training step (forward,
backward, update) runs in its generated C training program, compiled for this CPU with
``-O3 -march=native`` and vectorised host kernels (AVX2 where the CPU has it, the portable C
runtime elsewhere), with the same bits as the simulator (``tintin train --backend native``).

    from tintin.targets.native import fit_native
    result = fit_native(model, x, y, TrainConfig(batch_size=32))   # = tintin.train.fit, faster

:class:`NativeProgram` is the compiled program itself (state in and out, many batches per call);
:func:`native_available` says whether a host compiler works here; :func:`choose_backend` picks the
fit function of ``tintin train --backend`` (and says why). See ``docs/native.md``.
"""

from __future__ import annotations

import functools
from typing import Callable, NamedTuple

from tintin.targets.native.build import ACCELERATED, build_library, cache_root, host_compiler, simd_enabled
from tintin.targets.native.fit import NativeUnsupportedError, check_supported, fit_native
from tintin.targets.native.program import NativeProgram, NativeRunError

__all__ = ["ACCELERATED", "BackendChoice", "NativeProgram", "NativeRunError", "NativeUnsupportedError", "backend_fit",
           "choose_backend",
           "build_library", "cache_root", "fit_native", "host_compiler", "native_available", "simd_enabled"]


def native_available() -> tuple[bool, str]:
    """``(True, compiler path)`` when a host C compiler is on PATH, else ``(False, why)``."""
    from tintin.targets.errors import ToolchainMissingError

    try:
        return True, host_compiler()
    except ToolchainMissingError as exc:
        return False, str(exc)


class BackendChoice(NamedTuple):
    """What :func:`choose_backend` picked: the fit function, the backend's name (``native`` or
    ``numpy``) and one line saying why (the compiler and the build time, or the reason for the
    simulator)."""

    fit: Callable
    name: str
    note: str


def choose_backend(model, config, required: bool) -> BackendChoice:
    """The backend ``tintin train --backend native|auto`` trains ``model`` under ``config`` with.

    Builds the program now (cached: a first build of the runtime takes 10-15 s, a new model a few
    seconds, a cached one well under a second). With ``required`` (``--backend native``) a missing
    compiler, a failed build or a setting the C generator does not handle raises its one-line
    error; otherwise (``--backend auto``) the simulator's :func:`tintin.train.fit` is chosen, named
    ``"numpy"``, and the note says why."""
    import time

    from tintin.errors import TintinError
    from tintin.train import fit

    t0 = time.perf_counter()
    try:
        cc = host_compiler()
        check_supported(config)
        program = NativeProgram(model, config.batch_size, config.optim, update=None)
    except TintinError as exc:  # no compiler, a failed build, a setting or layer the C does not run
        if required:
            raise
        return BackendChoice(fit, "numpy", f"numpy: " + (str(exc).splitlines() or [type(exc).__name__])[0])

    @functools.wraps(fit_native)
    def run(model_, x_train, y_train, config_, x_test=None, y_test=None, progress="auto", update_kernel=None,
            checkpointer=None):
        return fit_native(model_, x_train, y_train, config_, x_test, y_test, progress=progress,
                          checkpointer=checkpointer, program=program)

    simd = "AVX2 kernels" if program.simd_level else "portable C kernels"
    return BackendChoice(run, "native", f"native: {cc}, {simd}, program ready in {time.perf_counter() - t0:.1f} s")


def backend_fit(model, config, required: bool):
    """``(fit function, backend name)`` of :func:`choose_backend` (without its note)."""
    choice = choose_backend(model, config, required)
    return choice.fit, choice.name
