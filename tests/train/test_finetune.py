"""The fine-tuning learning-rate rule (:func:`tintin.train.finetune_lr_schedule`): a fine-tuning run
of two epochs or more ends on small steps; full training keeps the zoo's rule."""

from __future__ import annotations

import pytest
from hypothesis import given, strategies as st

from tintin.nn import TrainingDefaults
from tintin.nn.zoo import DECAY_FACTOR
from tintin.optim import OptimConfig
from tintin.train import finetune_lr_schedule


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
