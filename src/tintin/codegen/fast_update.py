"""The C runtime's weight update as a fast path for the host simulator.

The numpy update (:meth:`tintin.optim.IntegerSGD.update`) makes about twenty vectorised passes
over every weight tensor per step; the C kernel (``tt_sgd_update_weight_s8`` and friends) makes one
scalar pass. Both compute the same bits (``tests/codegen/runtime`` and ``tests/codegen/test_fast_update.py`` check it).
On an x86 host the two run at about the same speed (bench/results/throughput.md): the C loop is
written for MCUs and is not vectorised. Used by ``tintin train --backend c``; its main value is a
whole-training proof that the device update equals the simulator's.
"""

from __future__ import annotations

from . import host


def c_update_kernel():
    """An ``update_kernel`` for :class:`tintin.optim.IntegerSGD` backed by the C runtime.

    Builds (or loads from the cache) the host runtime library; raises
    :class:`tintin.codegen.host.HostBuildError` when no C compiler works."""
    host.load()

    def kernel(optimizer, param, key: int) -> None:
        config = host.SgdConfig.from_optimizer(optimizer)
        value, momentum = host.sgd_update(param.kind, param.value, param.grad, config, key,
                                          param.momentum, param.trainable_rows)
        param.assign(value)
        param.momentum = momentum

    return kernel


def available() -> tuple[bool, str]:
    """Whether the C fast path can be used here, and why not."""
    try:
        host.load()
    except Exception as exc:  # no compiler, build failure, ...
        return False, str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return True, "C runtime built with the host compiler"
