"""A compiled training program against :func:`tintin.train.train_step`, bit for bit."""

from __future__ import annotations

import copy

import numpy as np

from tintin.compile import apply_update_selection, compile_program, plan_memory, run_program
from tintin.errors import TintinError
from tintin.nn import Context, Sequential
from tintin.numerics import QTensor, RoundingStream, Scale
from tintin.optim import IntegerSGD, OptimConfig
from tintin.train import train_step


class CheckFailed(TintinError, AssertionError):
    """A registered component does not pass a check (the message says which and how)."""


def random_batch(rng: np.random.Generator, model: Sequential, batch_size: int):
    """``(x, y)``: int8 samples in [-127, 127] and labels (cross-entropy) or int8 targets (MSE)."""
    x = rng.integers(-127, 128, size=(batch_size, *model.input_shape)).astype(np.int8)
    if model.loss == "cross_entropy":
        y = rng.integers(0, model.output_shape_[0], size=batch_size)
    else:
        y = rng.integers(-100, 101, size=(batch_size, *model.output_shape_)).astype(np.int8)
    return x, y


def _same(cond: bool, what: str) -> None:
    if not cond:
        raise CheckFailed(what)


def assert_program_matches_train_step(model: Sequential, update: str, batch_size: int, steps: int,
                                      optim: OptimConfig | None = None, planner: str = "greedy", seed: int = 0,
                                      epoch: int = 0, **options):
    """Train a copy of ``model`` with ``train_step`` and another copy with its compiled program
    (``update``, ``batch_size``, compile ``options``) on the same random batches; raise
    :class:`CheckFailed` unless losses, predictions, parameters, scales and momentum are identical
    after every step and frozen parameters (and frozen rows) never change.

    Returns ``(reference model, program model, program, weight scales after every step)``."""
    optim = optim or OptimConfig()
    ref, prog_model = copy.deepcopy(model), copy.deepcopy(model)
    apply_update_selection(ref, update)
    apply_update_selection(prog_model, update)
    program = compile_program(prog_model, update=update, batch_size=batch_size, optim=optim, **options)
    plan = plan_memory(program, planner)
    before = {p.name: p.value.m.copy() for p in model.parameters()}
    opt = IntegerSGD(ref.parameters(), optim, ref.config.scale_mode)
    opt.set_epoch(epoch)
    mode = model.config.scale_mode
    ctx_ref = Context(mode=mode, training=True, stream=RoundingStream(seed))
    ctx_prog = Context(mode=mode, training=True, stream=RoundingStream(seed))
    rng = np.random.default_rng(seed + 100)
    scales = []
    where = f"{model.name}, update {update}, batch {batch_size}"
    for step in range(steps):
        x, y = random_batch(rng, model, batch_size)
        expected_preds = None
        if model.loss == "cross_entropy":
            logits = ref.forward(QTensor(x, Scale(ref.input_exponent)), Context(mode=mode, training=False))
            expected_preds = np.argmax(logits.m, axis=1)
        r_ref = train_step(ref, opt, x, y, ctx_ref)
        r_prog = run_program(program, prog_model, x, y, ctx_prog, plan=plan, epoch=epoch)
        _same(r_prog.loss == r_ref.loss, f"{where}, step {step}: loss {r_prog.loss} != {r_ref.loss}")
        _same(r_prog.correct == r_ref.correct, f"{where}, step {step}: correct {r_prog.correct} != {r_ref.correct}")
        if expected_preds is not None:
            _same(np.array_equal(r_prog.predictions, expected_preds), f"{where}, step {step}: predictions differ")
        for a, b in zip(ref.parameters(), prog_model.parameters()):
            _same(np.array_equal(a.value.m, b.value.m) and a.value.m.dtype == b.value.m.dtype,
                  f"{where}, step {step}: {a.name} mantissas differ")
            _same(a.value.scale == b.value.scale, f"{where}, step {step}: {a.name} scale {b.value.scale} != "
                  f"{a.value.scale}")
            if a.momentum is not None or b.momentum is not None:
                _same(a.momentum is not None and b.momentum is not None and np.array_equal(a.momentum, b.momentum),
                      f"{where}, step {step}: {a.name} momentum differs")
            if a.remainder is not None:  # error feedback: the program's packed plane, unpacked by store()
                _same(b.remainder is not None and np.array_equal(a.remainder, b.remainder),
                      f"{where}, step {step}: {a.name} error-feedback remainder differs")
        scales.append({p.name: p.value.scale for p in ref.parameters()})
    for p in prog_model.parameters():
        if p.name not in program.trained:
            _same(np.array_equal(p.value.m, before[p.name]), f"{where}: frozen {p.name} changed")
        elif p.trainable_rows is not None:
            frozen = np.setdiff1d(np.arange(p.value.m.shape[0]), p.trainable_rows)
            _same(np.array_equal(p.value.m[frozen], before[p.name][frozen]), f"{where}: frozen rows of {p.name} changed")
    return ref, prog_model, program, scales
