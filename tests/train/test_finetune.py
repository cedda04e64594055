"""The fine-tuning learning-rate rule (:func:`tintin.train.finetune_lr_schedule`): a fine-tuning run
of two epochs or more ends on small steps; full training keeps the zoo's rule. The width rule
(:func:`tintin.train.finetune_wide_layers`): a partial update trains its layers as int16 masters."""

from __future__ import annotations

import pytest
from hypothesis import given, strategies as st

import numpy as np

from tintin import data
from tintin.compile import apply_update_selection, compile_program, plan_memory, run_program
from tintin.nn import Context, TrainingDefaults, build_model
from tintin.numerics import RoundingStream
from tintin.nn.zoo import DECAY_FACTOR
from tintin.optim import OptimConfig
from tintin.train import (finetune_lr_schedule, finetune_wide_layers, fit, widen_finetuned_layers,
                          TrainConfig)
from tintin.train.loop import batches, epoch_order


def test_a_two_epoch_fine_tune_decays_in_its_second_epoch():
    # the transfer bench's runs: 2 epochs at lr 0.05, batch 1 (a constant rate left them oscillating)
    assert finetune_lr_schedule(2, 0.05) == ((1, 0.01),)


def test_long_fine_tunes_decay_where_full_training_does():
    for epochs in (10, 20, 30, 50):
        ours, zoo = finetune_lr_schedule(epochs, 0.05), TrainingDefaults(lr=0.05).lr_schedule(epochs)
        assert [e for e, _ in ours] == [e for e, _ in zoo]
        assert [v for _, v in ours] == pytest.approx([v for _, v in zoo])


def test_one_epoch_keeps_its_rate_and_bad_values_are_refused():
    assert finetune_lr_schedule(1, 0.05) == ()
    with pytest.raises(ValueError):
        finetune_lr_schedule(0, 0.05)
    with pytest.raises(ValueError):
        finetune_lr_schedule(3, 0.0)


def test_full_training_of_short_runs_is_unchanged():
    assert TrainingDefaults(lr=0.05).lr_schedule(2) == ()


@given(st.integers(1, 200), st.floats(1e-4, 2.0))
def test_every_schedule_is_valid_and_ends_below_the_start(epochs, lr):
    schedule = finetune_lr_schedule(epochs, lr)
    OptimConfig(lr=lr, lr_schedule=schedule)  # accepted by the optimiser
    starts = [e for e, _ in schedule]
    assert starts == sorted(set(starts)) and all(1 <= e < epochs for e in starts)
    assert bool(schedule) == (epochs >= 2)
    rates = [lr] + [v for _, v in schedule]
    for before, after in zip(rates, rates[1:]):
        assert after == pytest.approx(before * DECAY_FACTOR)


@pytest.mark.parametrize("model, update, wide", [
    ("mlp", "last:1", ("fc2",)), ("lenet5", "last:2", ("fc2", "fc3")), ("mlp", "full", ()), ("mlp", "bias", ()),
    ("mlp", "none", ()), ("mlp", "bias+last:1", ("fc2",)), ("mlp", "sparse:fc2[0:3]", ()),
    ("dscnn", "last:1", ("fc",)),
])
def test_the_width_rule_widens_the_layers_a_partial_update_trains_whole(model, update, wide):
    net = build_model(model, (1, 28, 28) if model == "lenet5" else (1, 8, 8), 10, seed=0)
    apply_update_selection(net, update)
    assert finetune_wide_layers(net) == wide
    assert widen_finetuned_layers(net) == wide
    assert [p.name for p in net.parameters() if p.bits == 16] == [f"{n}.weight" for n in wide]
    assert finetune_wide_layers(net) == ()  # applied once: nothing left to widen


def test_the_width_rule_keeps_sub_step_updates_and_compiles_to_the_same_bits():
    # at a small rate most int8 updates of the last layer round to zero; the int16 master keeps them
    ds = data.load("digits")
    config = TrainConfig(epochs=1, batch_size=1, seed=5, optim=OptimConfig(lr=0.002))
    x, y = ds.x_train[:60], ds.y_train[:60]
    moved = {}
    for rule in (False, True):
        net = build_model("mlp", ds.sample_shape, ds.num_classes, seed=0, input_exponent=ds.input_exponent)
        apply_update_selection(net, "last:1")
        if rule:
            widen_finetuned_layers(net)
        w0 = net.layers[-1].weight.value.dequantize()
        compiled = build_model("mlp", ds.sample_shape, ds.num_classes, seed=0, input_exponent=ds.input_exponent)
        apply_update_selection(compiled, "last:1")
        if rule:
            widen_finetuned_layers(compiled)
        fit(net, x, y, config, progress=False)
        moved[rule] = int((net.layers[-1].weight.value.dequantize() != w0).sum())
        program = compile_program(compiled, update="last:1", batch_size=1, optim=config.optim)
        plan = plan_memory(program, "greedy")
        ctx = Context(mode=compiled.config.scale_mode, training=True, stream=RoundingStream(config.seed))
        for idx in batches(next(iter(epoch_order(len(x), 1, config.seed))), 1):
            run_program(program, compiled, x[idx], y[idx], ctx, plan=plan, epoch=0)
        for p, q in zip(net.parameters(), compiled.parameters()):
            assert p.value.scale == q.value.scale and np.array_equal(p.value.m, q.value.m), p.name
    assert moved[True] > 1.5 * moved[False]
