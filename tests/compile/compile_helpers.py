"""Helpers of the tintin.compile tests: small models and a reference run with train_step
(imported as a top-level module: pytest puts this directory on sys.path)."""

from __future__ import annotations

import copy

import numpy as np
from tintin.compile import apply_update_selection, compile_program, plan_memory, run_program
from tintin.nn import Context, QuantConfig, Sequential
from tintin.nn.layers import Flatten, Linear, ReLU
from tintin.numerics import QTensor, RoundingStream, Scale
from tintin.optim import IntegerSGD, OptimConfig
from tintin.train.step import train_step


def make_mlp(widths=(16, 24, 12, 5), input_shape=None, config: QuantConfig | None = None, seed: int = 0,
             loss: str = "cross_entropy", bias: bool = True) -> Sequential:
    """Flatten (if the input has several axes) then Linear/ReLU layers of the given widths."""
    config = config or QuantConfig()
    rng = np.random.default_rng(seed)
    input_shape = input_shape or (widths[0],)
    layers = [Flatten("flat")] if len(input_shape) > 1 else []
    for i, (a, b) in enumerate(zip(widths[:-1], widths[1:])):
        layers.append(Linear(a, b, bias=bias, config=config, rng=rng, name=f"fc{i + 1}"))
        if i < len(widths) - 2:
            layers.append(ReLU(f"relu{i + 1}"))
    return Sequential(layers, input_shape, config, loss=loss, name="testmlp")


def random_batch(rng, model, batch_size: int):
    x = rng.integers(-127, 128, size=(batch_size, *model.input_shape)).astype(np.int8)
    if model.loss == "cross_entropy":
        y = rng.integers(0, model.output_shape_[0], size=batch_size)
    else:
        y = rng.integers(-100, 101, size=(batch_size, *model.output_shape_)).astype(np.int8)
    return x, y


def compare_runs(model, update: str, batch_size: int, steps: int, optim: OptimConfig | None = None,
                 planner: str = "greedy", seed: int = 0, epoch: int = 0, **options):
    """Train a copy of ``model`` with train_step and another copy with the compiled program;
    assert bit-identical losses, predictions, parameters, scales and momentum after every step.
    Returns (reference model, program model, program, list of reference weight scales)."""
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
    for step in range(steps):
        x, y = random_batch(rng, model, batch_size)
        expected_preds = None
        if model.loss == "cross_entropy":
            logits = ref.forward(QTensor(x, Scale(ref.input_exponent)), Context(mode=mode, training=False))
            expected_preds = np.argmax(logits.m, axis=1)
        r_ref = train_step(ref, opt, x, y, ctx_ref)
        r_prog = run_program(program, prog_model, x, y, ctx_prog, plan=plan, epoch=epoch)
        assert r_prog.loss == r_ref.loss, f"step {step}: loss {r_prog.loss} != {r_ref.loss}"
        assert r_prog.correct == r_ref.correct, f"step {step}: correct {r_prog.correct} != {r_ref.correct}"
        if expected_preds is not None:
            assert np.array_equal(r_prog.predictions, expected_preds), f"step {step}: predictions differ"
        for a, b in zip(ref.parameters(), prog_model.parameters()):
            assert np.array_equal(a.value.m, b.value.m), f"step {step}: {a.name} mantissas differ"
            assert a.value.m.dtype == b.value.m.dtype
            assert a.value.scale == b.value.scale, f"step {step}: {a.name} scale {b.value.scale} != {a.value.scale}"
            if a.momentum is not None or b.momentum is not None:
                assert np.array_equal(a.momentum, b.momentum), f"step {step}: {a.name} momentum differs"
        scales.append({p.name: p.value.scale for p in ref.parameters()})
    for p in prog_model.parameters():
        if p.name not in program.trained:
            assert np.array_equal(p.value.m, before[p.name]), f"frozen {p.name} changed"
        elif p.trainable_rows is not None:
            frozen = np.setdiff1d(np.arange(p.value.m.shape[0]), p.trainable_rows)
            assert np.array_equal(p.value.m[frozen], before[p.name][frozen]), f"frozen rows of {p.name} changed"
    return ref, prog_model, program, scales
