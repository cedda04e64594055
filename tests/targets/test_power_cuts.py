"""Power cuts at every flash operation of every checkpoint save of a training run, on the host
and on the emulated Cortex-M0 (tintin.targets.power_cuts): restores give the committed or the new
state, never a corrupt, mixed or older one, and training that goes on from restored states ends
bit for bit where the simulator's uninterrupted run ends."""

import numpy as np
import pytest

from .helpers import require_toolchain
from tintin.data import Dataset, load
from tintin.nn import build_model
from tintin.optim import OptimConfig
from tintin.targets import DoesNotFitError, TargetError
from tintin.targets.power_cuts import run_power_cuts


@pytest.fixture(scope="module")
def digits():
    return load("digits")


def mlp(ds, seed=0):
    return build_model("mlp", ds.sample_shape, ds.num_classes, seed=seed, input_exponent=ds.input_exponent)


def check_clean(r, saves):
    assert r.corrupt_restores == 0 and r.lost_commits == 0, r
    assert r.bit_flip_corrupt == 0 and r.bit_flip_lost == 0
    assert r.final_bit_exact and r.resume_bit_exact and r.mismatches == []
    assert r.resumes == r.resumes_exact == saves  # one resume from the older state per save
    assert r.restores_new + r.restores_previous + r.restores_none == r.cut_points
    assert r.restores_none <= r.cut_points // saves  # only the first save has nothing before it


def test_every_cut_of_every_save_on_the_host(digits, tmp_path):
    require_toolchain("host")
    r = run_power_cuts(mlp(digits), digits, target="host", saves=3, every=2, update="last:1", work_dir=tmp_path)
    check_clean(r, 3)
    assert r.cut_points == 3 * 3 * r.operations_per_save  # before, after and torn at every operation
    assert r.restores_new >= 3  # a cut after the commit record keeps the new state
    assert r.page_erases_per_save == r.slot_bytes // r.page_size
    assert r.region_bytes == 2 * r.slot_bytes and r.slot_bytes >= r.payload_bytes + 48
    assert r.bit_flips == 3 * 16


def test_resume_across_an_epoch_with_momentum_and_a_schedule(digits, tmp_path):
    """The state holds the momentum and the epoch: the learning rate after a restore is the
    schedule's, and the batches continue in the seeded order of the new epoch."""
    require_toolchain("host")
    optim = OptimConfig(lr=0.05, lr_schedule=((1, 0.01),), momentum_shift=2)
    per_epoch = len(digits.x_train) // 32
    r = run_power_cuts(mlp(digits, 1), digits, target="host", saves=3, every=per_epoch // 2 + 1, tail=3,
                       update="full", batch_size=32, optim=optim, stride=7, flips=4, page_size=2048,
                       write_align=8, slots=3, work_dir=tmp_path)
    assert r.steps > per_epoch
    check_clean(r, 3)


def test_bad_arguments_and_targets_that_cannot_run_it(digits, tmp_path):
    with pytest.raises(TargetError, match="saves must be at least 1"):
        run_power_cuts(mlp(digits), digits, saves=0)
    with pytest.raises(TargetError, match="power of two"):
        run_power_cuts(mlp(digits), digits, write_align=3)
    require_toolchain("atmega328p")
    # a 16-input MLP trains on the 2 KB ATmega328P, but the sweep's simulated flash does not fit
    rng = np.random.default_rng(0)
    small = Dataset.from_arrays(rng.integers(-127, 128, size=(100, 16)).astype(np.int8), np.arange(100) % 10,
                                input_exponent=-7)
    model = build_model("mlp", (16,), 10, hidden=8, seed=0, input_exponent=-7)
    with pytest.raises(DoesNotFitError, match="power-cut sweep of mlp .* needs .* B of RAM on atmega328p"):
        run_power_cuts(model, small, target="atmega328p", work_dir=tmp_path)


def test_only_boards_that_may_run_the_sweep_count_for_its_ram():
    """The registry says which boards run float reference programs only (the ATmega1284P board of
    the atmega328p target): their memory never counts for the sweep, whatever the family."""
    from dataclasses import replace

    from tintin.targets import get_target
    from tintin.targets.power_cuts import _sweep_ram

    avr = get_target("atmega328p")
    assert [m.reference_only for m in avr.machines] == [False, True]
    assert _sweep_ram(avr) == 2 * 1024
    m0 = get_target("cortex-m0")
    assert not any(m.reference_only for m in m0.machines) and _sweep_ram(m0) == 4 * 1024 * 1024
    only_microbit = replace(m0, machines=(m0.machines[0], replace(m0.machines[1], reference_only=True)))
    assert _sweep_ram(only_microbit) == 16 * 1024


@pytest.mark.emulator
def test_resume_on_cortex_m0_equals_the_uninterrupted_run(digits, tmp_path):
    """On the emulated Cortex-M0 (the 16 KB micro:bit): train 3 steps, save, boot afresh (tt_init),
    restore, go on; twice, with power cut at sampled operations of each save in between. The final
    parameters equal the simulator's uninterrupted 8 steps bit for bit."""
    require_toolchain("cortex-m0")
    r = run_power_cuts(mlp(digits), digits, target="cortex-m0", saves=2, every=3, update="last:1", stride=3,
                       work_dir=tmp_path)
    assert r.machine == "microbit"
    check_clean(r, 2)
    assert r.instructions_per_save > 0 and r.instructions_per_restore > 0


def test_power_cuts_keep_the_error_feedback_planes(digits, tmp_path):
    """The packed error-feedback planes are part of the saved state: every restore gives the planes
    of the committed or the new state, and training from there ends bit for bit where the
    simulator's uninterrupted run ends (remainders included)."""
    require_toolchain("host")
    optim = OptimConfig(lr=0.5, error_feedback=("*",), feedback_bits=2)
    r = run_power_cuts(mlp(digits, 2), digits, target="host", saves=2, every=3, update="last:2", batch_size=4,
                       optim=optim, stride=5, flips=4, work_dir=tmp_path)
    check_clean(r, 2)
