"""``fit`` on the native host backend: the same run as :func:`tintin.train.fit`, bit for bit.

The full batches of every epoch run in the compiled program (:class:`NativeProgram`), a chunk of
batches per ctypes call; a last, smaller batch of an epoch runs in the simulator
(:func:`tintin.train.train_step`) between two state transfers, as do the evaluations. Losses,
accuracies, parameters, momentum and the rounding stream equal the simulator's.
"""

from __future__ import annotations

import time

import numpy as np

from tintin.numerics import RoundingStream, Scale
from tintin.targets.errors import TargetError


class NativeUnsupportedError(TargetError):
    """A training setting the native backend does not run (use ``--backend numpy``)."""


#: samples per ctypes call: short enough for progress and Ctrl-C, long enough to amortise the call
CHUNK_SAMPLES = 1024


def check_supported(config) -> None:
    """Raise :class:`NativeUnsupportedError` for settings only the simulator runs (error feedback
    compiles without momentum: a packed plane per weight, :mod:`tintin.compile.compiler`)."""
    if config.optim.error_feedback and config.optim.momentum_shift:
        raise NativeUnsupportedError("the native backend keeps error feedback without momentum (--error-feedback "
                                     "with --momentum-shift): use --backend numpy")


def fit_native(model, x_train: np.ndarray, y_train: np.ndarray, config, x_test: np.ndarray | None = None,
               y_test: np.ndarray | None = None, progress="auto", checkpointer=None, program=None):
    """:func:`tintin.train.fit` on the native backend: same arguments, same result, same bits.

    ``program``: a :class:`~tintin.targets.native.program.NativeProgram` of ``model`` at
    ``config.batch_size`` to reuse (built here otherwise; the first build of a model takes a few
    seconds, later ones load from the cache). The parameters' ``trainable`` flags (``tintin train
    --update``) select what the program trains.

    >>> from tintin import data
    >>> from tintin.nn import build_model
    >>> from tintin.train import TrainConfig, fit
    >>> from tintin.targets.native import fit_native
    >>> ds = data.load("digits")
    >>> a, b = (build_model("mlp", ds.sample_shape, ds.num_classes, seed=0, input_exponent=ds.input_exponent)
    ...         for _ in range(2))
    >>> native = fit_native(a, ds.x_train, ds.y_train, TrainConfig(epochs=1), ds.x_test, ds.y_test, progress=False)
    >>> numpy_ = fit(b, ds.x_train, ds.y_train, TrainConfig(epochs=1), ds.x_test, ds.y_test, progress=False)
    >>> native.test_accuracy == numpy_.test_accuracy
    True
    >>> all((p.value.m == q.value.m).all() and p.value.scale == q.value.scale
    ...     for p, q in zip(a.parameters(), b.parameters()))
    True
    """
    from tintin.nn import Context
    from tintin.optim import IntegerSGD
    from tintin.train.checkpoint import FitPosition
    from tintin.train.loop import TrainResult, check_fit_data, epoch_order, finish_epoch
    from tintin.train.progress import resolve_progress
    from tintin.train.step import train_step
    from tintin.targets.native.program import NativeProgram

    check_supported(config)
    x_train, y_train, x_test, y_test = check_fit_data(model, x_train, y_train, x_test, y_test, config.batch_size)
    bs = config.batch_size
    if program is not None and (program.model is not model or program.batch_size != bs):
        raise ValueError("the native program was built for another model or batch size")
    prog = program if program is not None else NativeProgram(model, bs, config.optim, update=None)
    progress = resolve_progress(progress)
    optimizer = IntegerSGD(model.parameters(), config.optim, model.config.scale_mode)
    ctx = Context(mode=model.config.scale_mode, training=True, stream=RoundingStream(config.seed))
    steps = -(-len(x_train) // bs)
    full = len(x_train) // bs
    pos = (checkpointer.begin(model, optimizer, ctx, config) if checkpointer else None) or FitPosition()
    xs, ys = prog.prepare_data(x_train, y_train)
    prog.load_state(config.seed, ctx.stream.step, pos.epoch)
    progress.start(config.epochs, steps, model.name)
    history, train_seconds, samples = pos.history, pos.train_seconds, pos.samples
    chunk_steps = max(1, CHUNK_SAMPLES // bs)
    try:
        for epoch, order in enumerate(epoch_order(len(x_train), config.epochs, config.seed)):
            if epoch < pos.epoch:
                continue
            optimizer.set_epoch(epoch)
            prog.set_epoch(epoch)
            resumed = epoch == pos.epoch
            loss_sum, correct, seen, t_epoch = (pos.loss_sum, pos.correct, pos.seen, pos.epoch_seconds) if resumed \
                else (0.0, 0, 0, 0.0)
            step = pos.step if resumed else 0

            def position(step_done: int) -> FitPosition:
                return FitPosition(epoch, step_done, loss_sum, correct, seen, t_epoch, history, train_seconds, samples)

            while step < full:
                n = min(chunk_steps, full - step)
                if checkpointer is not None and checkpointer.every:
                    n = min(n, checkpointer.every - ctx.stream.step % checkpointer.every)
                t0 = time.perf_counter()
                totals, scales, hits, _ = prog.train_steps(xs, ys, order[step * bs:(step + n) * bs])
                t_epoch += time.perf_counter() - t0
                for total, (s, u, d), c in zip(totals.tolist(), scales.tolist(), hits.tolist()):
                    loss_sum += float(total) * Scale(s, u, d).to_float()  # LossValue.to_float, step by step
                    correct += c
                    seen += bs
                step += n
                ctx.stream.step = (ctx.stream.step + n) & 0xFFFFFFFF
                progress.step(epoch, step - 1, loss_sum / seen, correct / seen)
                if checkpointer is not None and (checkpointer.stop_requested or
                                                 (checkpointer.every and ctx.stream.step % checkpointer.every == 0)):
                    prog.store_state()
                    checkpointer.step_done(position(step))
            if step < steps:  # the epoch's last, smaller batch: in the simulator
                prog.store_state()
                idx = order[full * bs:]
                t0 = time.perf_counter()
                res = train_step(model, optimizer, x_train[idx], y_train[idx], ctx)
                t_epoch += time.perf_counter() - t0
                loss_sum += res.loss.to_float()
                correct += res.correct
                seen += res.count
                step += 1
                prog.load_state(config.seed, ctx.stream.step, epoch)
                progress.step(epoch, step - 1, loss_sum / seen, correct / seen)
                if checkpointer is not None:
                    checkpointer.step_done(position(step))
            train_seconds += t_epoch
            samples += seen
            prog.store_state()
            history.append(finish_epoch(model, config, epoch, loss_sum, correct, seen, t_epoch, x_test, y_test,
                                        progress))
    finally:
        progress.close()
        if checkpointer:
            checkpointer.close()
    return TrainResult(history, train_seconds, samples)
