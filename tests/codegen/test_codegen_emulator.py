"""Training on emulated microcontrollers: >= 100 steps bit-exact against the simulator on Cortex-M0,
M3, M4 (QEMU) and the ATmega328P (simavr), LeNet-5 on a Cortex-M, no soft-float helper in any
integer ELF, the arena symbol equal to the planner's size, a few random programs on one core.

Marked ``emulator``; each test skips with the toolchain's reason when it is not installed."""

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import tintin.targets as targets
from codegen_helpers import ONLINE, digits, mnist, order_for, pooled_digits, random_data, require, small_cnn, tiny_mlp
from tintin.targets import run_on_target, select_samples
from tintin.nn import build_model
from tintin.optim import OptimConfig

pytestmark = pytest.mark.emulator


@pytest.mark.parametrize("target", ["cortex-m0", "cortex-m3", "cortex-m4", "cortex-m33"])
def test_mlp_digits_100_steps_bit_exact(tmp_path, target):
    require(target)
    ds = digits()
    model = build_model("mlp", ds.sample_shape, ds.num_classes, input_exponent=ds.input_exponent)
    steps = 100
    x, y, o = select_samples(ds.x_train, ds.y_train, order_for(len(ds.x_train), steps), steps, 1)
    r = run_on_target(model, target, x_samples=x, y_samples=y, order=o, steps=steps, work_dir=tmp_path,
                      optim=ONLINE, eval_x=ds.x_test[:30], eval_y=ds.y_test[:30], timeout_s=120)
    assert r.bit_exact, r.mismatches
    assert r.softfloat_symbols == []
    assert r.arena_bytes == r.planned_arena_bytes == 6272
    assert len(r.step_counts) == steps and min(r.step_counts) > 10_000  # marks around every step
    assert len(r.eval_counts) == 30
    if target == "cortex-m0":
        assert r.machine == "microbit"  # 6.3 KB arena: fits the 16 KB of the micro:bit


def test_tiny_mlp_on_the_atmega328p(tmp_path):
    require("atmega328p")
    ds = digits()
    xtr, xte = pooled_digits(ds)
    model = tiny_mlp(ds.input_exponent)
    steps = 100
    order = np.concatenate([np.random.default_rng(0).permutation(50)] * 2)  # 50 samples in 2 KB of flash, twice
    r = run_on_target(model, "atmega328p", x_samples=xtr[:50], y_samples=ds.y_train[:50], order=order,
                      steps=steps, work_dir=tmp_path, optim=ONLINE, eval_x=xte[:10], opt="-Os", timeout_s=120)
    assert r.bit_exact, r.mismatches
    assert r.count_unit == "cycles" and len(r.step_counts) == steps
    assert r.softfloat_symbols == []
    assert r.arena_bytes == r.planned_arena_bytes
    assert r.bss_bytes + r.data_bytes < 2048 and r.text_bytes < 32 * 1024


def test_lenet5_mnist_on_cortex_m3(tmp_path):
    require("cortex-m3")
    ds = mnist()
    model = build_model("lenet5", ds.sample_shape, ds.num_classes, input_exponent=ds.input_exponent)
    steps = 30  # the >= 100-step runs on every Cortex-M are in bench/mcu.py
    x, y, o = select_samples(ds.x_train, ds.y_train, order_for(len(ds.x_train), steps), steps, 1)
    r = run_on_target(model, "cortex-m3", x_samples=x, y_samples=y, order=o, steps=steps, work_dir=tmp_path,
                      optim=ONLINE, eval_x=ds.x_test[:5], timeout_s=300)
    assert r.bit_exact, r.mismatches
    assert r.softfloat_symbols == []
    assert r.arena_bytes == r.planned_arena_bytes == 87421


def test_step_profile_adds_up(tmp_path):
    require("cortex-m3")
    model = small_cnn(seed=4)
    x, y = random_data(model, 12)
    r = run_on_target(model, "cortex-m3", x_samples=x, y_samples=y, order=order_for(12, 4), steps=4,
                      work_dir=tmp_path, profile=True)
    assert r.bit_exact, r.mismatches
    counts = [s["count"] for s in r.profile["steps"]]
    assert len(counts) == len(r.profile["steps"]) and all(c > 0 for c in counts)
    assert abs(sum(counts) + r.profile["overhead"] - r.step_counts[-1]) == 0


@pytest.mark.parametrize("target", ["cortex-m0", "atmega328p"])
def test_the_memory_check_names_what_is_missing(tmp_path, target):
    require(target)
    from tintin.targets import DoesNotFitError

    ds = mnist()
    model = build_model("lenet5", ds.sample_shape, ds.num_classes, input_exponent=ds.input_exponent)
    B = 16 if target == "cortex-m0" else 1  # 264 KB (RP2040 class) / 2 KB of SRAM
    x, y, o = select_samples(ds.x_train, ds.y_train, order_for(len(ds.x_train), 2, B), 2, B)
    with pytest.raises(DoesNotFitError, match=r"B missing; see `tintin plan"):
        run_on_target(model, target, x_samples=x, y_samples=y, order=o, steps=2, work_dir=tmp_path,
                      batch_size=B)


@settings(max_examples=3, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                HealthCheck.function_scoped_fixture])
@given(seed=st.integers(0, 10_000), batch=st.integers(1, 3), rule=st.sampled_from(["aligned", "niti"]),
       update=st.sampled_from(["full", "bias", "last:1", "sparse:conv2[1:3]"]))
def test_random_programs_on_cortex_m0(tmp_path_factory, seed, batch, rule, update):
    require("cortex-m0")
    model = small_cnn(seed=seed)
    x, y = random_data(model, 16, seed=seed)
    r = run_on_target(model, "cortex-m0", x_samples=x, y_samples=y, order=order_for(16, 5, batch, seed),
                      steps=5, batch_size=batch, update=update, optim=OptimConfig(rule=rule, lr=2.0),
                      work_dir=tmp_path_factory.mktemp("m0"), eval_x=x[:2], seed=seed, timeout_s=120)
    assert r.bit_exact, (update, r.mismatches)
    assert r.softfloat_symbols == []
