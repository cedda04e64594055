"""Fleet workloads: seeded devices, real heterogeneity, shapes, one-line errors."""

import numpy as np
import pytest

from tintin.data.bearing import simulate_bearing
from tintin.errors import TintinError
from tintin.fleet.workloads import (GLOBAL_TEST_DEVICES, WorkloadError, envelope_spectrum, get_workload,
                                    workload_names)
from tintin.nn import Context
from tintin.numerics import QTensor, Scale

NAMES = ["sine", "bearing-fleet", "digits-style"]


def test_names():
    assert workload_names() == NAMES


@pytest.mark.parametrize("name", NAMES)
def test_same_seed_same_bits_other_seed_other_bits(name):
    a = get_workload(name, devices=3, seed=5, samples_per_device=12, test_per_device=8)
    b = get_workload(name, devices=3, seed=5, samples_per_device=12, test_per_device=8)
    c = get_workload(name, devices=3, seed=6, samples_per_device=12, test_per_device=8)
    for i in range(3):
        for split in ("device_train", "device_test"):
            xa, ya = getattr(a, split)(i)
            xb, yb = getattr(b, split)(i)
            assert xa.tobytes() == xb.tobytes() and ya.tobytes() == yb.tobytes()
    assert a.device_train(0)[0].tobytes() != c.device_train(0)[0].tobytes()


@pytest.mark.parametrize("name", NAMES)
def test_more_devices_keep_the_first_ones(name):
    small = get_workload(name, devices=2, seed=1, samples_per_device=6, test_per_device=4)
    big = get_workload(name, devices=5, seed=1, samples_per_device=6, test_per_device=4)
    assert small.device_params == big.device_params[:2]
    assert small.device_train(1)[0].tobytes() == big.device_train(1)[0].tobytes()


@pytest.mark.parametrize("name", NAMES)
def test_shapes_dtypes_and_model_fit(name):
    fleet = get_workload(name, devices=2, seed=0, samples_per_device=10, test_per_device=7)
    x, y = fleet.device_train(1)
    xt, yt = fleet.device_test(1)
    assert x.dtype == np.int8 and x.shape == (10, *fleet.sample_shape)
    assert xt.shape == (7, *fleet.sample_shape)
    assert int(x.min()) >= -127
    assert not x.flags.writeable
    if fleet.task == "regression":
        assert fleet.num_classes == 1 and fleet.target_exponent is not None
        assert y.dtype == np.int8 and y.shape == (10, 1)
    else:
        assert fleet.target_exponent is None
        assert y.dtype == np.int64 and y.shape == (10,)
        assert 0 <= y.min() and y.max() < fleet.num_classes
    model = fleet.build_model(seed=0)
    assert model.input_shape == fleet.sample_shape and model.input_exponent == fleet.input_exponent
    out = model.forward(QTensor(x, Scale(fleet.input_exponent)), Context(mode=model.config.scale_mode))
    assert out.m.shape == (10, fleet.num_classes)
    assert model.loss == ("mse" if fleet.task == "regression" else "cross_entropy")
    gx, gy = fleet.global_test()
    assert len(gx) == 2 * 7 and len(gy) == 2 * 7
    d = fleet.describe()
    assert d["synthetic"] == fleet.synthetic and d["num_devices"] == 2


def test_global_test_is_capped():
    fleet = get_workload("sine", devices=GLOBAL_TEST_DEVICES + 3, seed=0, test_per_device=2)
    assert len(fleet.global_test()[0]) == 2 * GLOBAL_TEST_DEVICES


def test_sine_devices_differ_and_targets_follow_the_function():
    fleet = get_workload("sine", devices=6, seed=0, samples_per_device=200)
    amps = [p["amplitude"] for p in fleet.device_params]
    phases = [p["phase"] for p in fleet.device_params]
    assert len(set(amps)) == 6 and min(amps) >= 0.1 and max(amps) <= 5.0
    assert len(set(phases)) == 6 and 0 <= min(phases) and max(phases) <= np.pi
    for i in range(6):
        x, y = fleet.device_train(i)
        xr = x[:, 0] * 2.0 ** fleet.input_exponent
        yr = y[:, 0] * 2.0 ** fleet.target_exponent
        want = amps[i] * np.sin(xr - phases[i])
        # x and y are each within half a step of their real values; sin is 1-Lipschitz
        assert np.max(np.abs(yr - want)) <= 2.0 ** fleet.target_exponent * (0.5 + 0.5 * amps[i]) + 1e-9
        assert np.abs(xr).max() <= 5.0 + 2.0 ** fleet.input_exponent


def test_bearing_machines_differ_by_physics():
    fleet = get_workload("bearing-fleet", devices=4, seed=0, samples_per_device=16, test_per_device=4)
    rpm = [p["shaft_rpm"] for p in fleet.device_params]
    res = [p["resonance_hz"] for p in fleet.device_params]
    snr = [p["snr_db"] for p in fleet.device_params]
    assert len(set(rpm)) == 4 and all(900 <= r <= 2700 for r in rpm) and max(rpm) - min(rpm) > 100
    assert len(set(res)) == 4 and all(2000 <= f <= 4000 for f in res)
    assert len(set(snr)) == 4
    assert fleet.synthetic and fleet.description.startswith("SYNTHETIC")


def test_bearing_fault_line_moves_with_shaft_speed():
    """An outer-race fault's envelope line sits at BPFO x shaft rate: two machines, two places."""
    rng = np.random.default_rng(0)
    peaks = []
    for rpm in (1000.0, 2400.0):
        w, _ = simulate_bearing(rng, np.full(8, 2), 2048, [20.0], nominal_rpm=rpm)
        spec = envelope_spectrum(w[:, 0, :], 12000.0).mean(axis=0)
        peaks.append((np.argmax(spec) + 1) * 12000.0 / 2048)
    bpfo = 3.585
    assert abs(peaks[0] - bpfo * 1000 / 60) < 12 and abs(peaks[1] - bpfo * 2400 / 60) < 12


def test_resonance_range_respected_and_default_draws_unchanged():
    labels = np.array([0, 1, 2, 3, 1, 2])
    a, meta_a = simulate_bearing(np.random.default_rng(3), labels, 256, [0.0])
    b, _ = simulate_bearing(np.random.default_rng(3), labels, 256, [0.0], resonance_hz=(2000.0, 4000.0))
    assert a.tobytes() == b.tobytes()
    _, meta = simulate_bearing(np.random.default_rng(3), labels, 256, [0.0], resonance_hz=(3000.0, 3100.0))
    assert np.all((meta["resonance_hz"] >= 3000.0) & (meta["resonance_hz"] <= 3100.0))
    assert np.array_equal(meta["shaft_rpm"], meta_a["shaft_rpm"])  # no other draw moved


def test_digits_style_devices_hold_class_subsets_and_styles():
    fleet = get_workload("digits-style", devices=5, seed=0, samples_per_device=40, classes_per_device=3)
    for i, p in enumerate(fleet.device_params):
        assert len(p["classes"]) == 3
        _, y = fleet.device_train(i)
        assert set(np.unique(y)) <= set(p["classes"])
    rotations = [p["rotation_deg"] for p in fleet.device_params]
    assert len(set(rotations)) == 5 and all(-30 <= r <= 30 for r in rotations)
    assert len({tuple(p["classes"]) for p in fleet.device_params}) > 1


def test_unseen_devices_are_new():
    fleet = get_workload("bearing-fleet", devices=3, seed=0, samples_per_device=8, test_per_device=4)
    new = fleet.unseen(2)
    assert new.num_devices == 2 and new.domain == 1 and new.name == fleet.name
    seen = {p["shaft_rpm"] for p in fleet.device_params}
    assert not seen & {p["shaft_rpm"] for p in new.device_params}
    assert new.device_train(0)[0].tobytes() != fleet.device_train(0)[0].tobytes()
    again = fleet.unseen(2)
    assert again.device_train(1)[0].tobytes() == new.device_train(1)[0].tobytes()


def test_unseen_digits_draw_from_the_held_out_split():
    fleet = get_workload("digits-style", devices=2, seed=0, samples_per_device=30)
    new = fleet.unseen(1)
    base = fleet.generator.base
    # unthickened, unrotated images would be equal to test images; check via the pool instead:
    # with rotation 0 and no thickening every unseen image is a test image
    new.device_params[0].update(rotation_deg=0.0, thick=False)
    x, _ = new.device_train(0)
    test_rows = {row.tobytes() for row in base.x_test}
    assert all(row.tobytes() in test_rows for row in x)


@pytest.mark.parametrize("call, message", [
    (lambda: get_workload("cifar", devices=2), "unknown workload 'cifar'"),
    (lambda: get_workload("sine", devices=0), "devices must be an integer >= 1"),
    (lambda: get_workload("sine", devices=2, seed=-1), "seed must be a non-negative integer"),
    (lambda: get_workload("sine", devices=2, samples_per_device=0), "samples_per_device"),
    (lambda: get_workload("sine", devices=2, amplitude=3), "sine takes no options"),
    (lambda: get_workload("digits-style", devices=2, base="cifar"), "base must be digits or mnist5k"),
    (lambda: get_workload("digits-style", devices=2, classes_per_device=11), "classes_per_device"),
    (lambda: get_workload("sine", devices=2).device_train(2), "device index must be in [0, 2)"),
    (lambda: get_workload("sine", devices=2).device_test(-1), "device index"),
    (lambda: get_workload("sine", devices=2).unseen(0), "unseen devices must be"),
])
def test_one_line_errors(call, message):
    with pytest.raises(WorkloadError) as info:
        call()
    assert isinstance(info.value, TintinError)
    assert message in str(info.value) and "\n" not in str(info.value)
