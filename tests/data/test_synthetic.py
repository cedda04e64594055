"""SYNTHETIC generators (bearing, spectrum): shapes, determinism, physics, speed, learnability."""

from __future__ import annotations

import time

import numpy as np
import pytest

from tintin import data
from tintin.data import bearing, spectrum

SMALL = {"n_per_class": 40, "n_test_per_class": 20}


def assert_same(a: data.Dataset, b: data.Dataset) -> None:
    for key in ("x_train", "y_train", "x_test", "y_test"):
        assert np.array_equal(getattr(a, key), getattr(b, key)), key
    assert set(a.extras) == set(b.extras)
    for key in a.extras:
        assert np.array_equal(a.extras[key], b.extras[key], equal_nan=True), key
    assert a.description == b.description


@pytest.mark.parametrize(("name", "channels", "length", "classes"), [
    ("bearing", 1, 512, ("normal", "inner", "outer", "ball")),
    ("spectrum", 2, 64, ("free", "occupied")),
])
def test_shapes_dtypes_labels_and_marking(name, channels, length, classes):
    ds = data.load(name, cache=False, length=length, **SMALL)
    k = len(classes)
    assert ds.x_train.shape == (40 * k, channels, length) and ds.x_test.shape == (20 * k, channels, length)
    assert ds.x_train.dtype == np.int8 and ds.y_train.dtype == np.int64
    assert ds.x_train.min() >= -127 and ds.x_test.min() >= -127
    assert ds.class_names == classes
    assert ds.class_counts("train").tolist() == [40] * k and ds.class_counts("test").tolist() == [20] * k
    assert ds.synthetic and ds.description.startswith("SYNTHETIC") and "\n" not in ds.description
    assert ds.input_exponent == -5
    assert ds.extras["train_snr_db"].shape == (40 * k,) and ds.extras["test_snr_db"].shape == (20 * k,)
    assert ds.extras["channel_mean"].shape == (channels,)
    z = ds.real(ds.x_train)
    np.testing.assert_allclose(z.mean(axis=(0, 2)), 0.0, atol=0.05)
    assert np.all(np.abs(z.std(axis=(0, 2)) - 1.0) < 0.05)
    assert not np.array_equal(ds.y_train[:20], np.sort(ds.y_train[:20]))   # classes interleaved


@pytest.mark.parametrize("name", ["bearing", "spectrum"])
def test_same_seed_same_data_and_other_seed_other_data(name, tmp_path):
    a = data.load(name, cache=False, seed=7, **SMALL)
    b = data.load(name, cache=False, seed=7, **SMALL)
    assert_same(a, b)
    c = data.load(name, data_dir=tmp_path, seed=7, **SMALL)         # through the cache, written ...
    d = data.load(name, data_dir=tmp_path, seed=7, **SMALL)         # ... and read back
    assert_same(a, c)
    assert_same(a, d)
    other = data.load(name, cache=False, seed=8, **SMALL)
    assert not np.array_equal(a.x_train, other.x_train)


@pytest.mark.parametrize("name", ["bearing", "spectrum"])
def test_test_split_does_not_depend_on_train_size(name):
    a = data.load(name, cache=False, n_per_class=10, n_test_per_class=15)
    b = data.load(name, cache=False, n_per_class=30, n_test_per_class=15)
    assert np.array_equal(a.y_test, b.y_test)
    for key in a.extras:
        if key.startswith("test_"):
            assert np.array_equal(a.extras[key], b.extras[key]), key
    # only the standardisation (train statistics) may differ; the float windows are identical
    za = a.real(a.x_test) * a.extras["channel_std"][None, :, None]
    zb = b.real(b.x_test) * b.extras["channel_std"][None, :, None]
    assert np.corrcoef(za.ravel(), zb.ravel())[0, 1] > 0.99


@pytest.mark.parametrize("name", ["bearing", "spectrum"])
def test_generating_the_default_set_takes_under_two_seconds_of_cpu(name):
    start = time.process_time()
    ds = data.load(name, cache=False)
    elapsed = time.process_time() - start
    assert elapsed < 2.0, f"{name}: {elapsed:.2f} s"
    assert len(ds.x_train) >= 2000


def test_snr_options_lists_ranges_and_test_override():
    ds = data.load("spectrum", cache=False, snr_db=[-10, 0, 10], test_snr_db=range(-4, 5, 4), **SMALL)
    assert set(np.unique(ds.extras["train_snr_db"])) == {-10.0, 0.0, 10.0}
    assert set(np.unique(ds.extras["test_snr_db"])) == {-4.0, 0.0, 4.0}
    assert "test" in ds.description
    one = data.load("bearing", cache=False, snr_db=3, **SMALL)
    assert np.all(one.extras["train_snr_db"] == 3.0) and np.all(one.extras["test_snr_db"] == 3.0)


def test_bearing_fault_frequencies_of_the_6205_geometry():
    g = bearing.BEARING_6205
    # published multiples of shaft speed for the 6205-2RS (Case Western drive end)
    assert g.bpfi == pytest.approx(5.4152, abs=2e-3)
    assert g.bpfo == pytest.approx(3.5848, abs=2e-3)
    assert 2 * g.bsf == pytest.approx(4.7135, abs=2e-3)
    assert g.ftf == pytest.approx(0.39828, abs=2e-4)


ORDERS = {1: bearing.BEARING_6205.bpfi, 2: bearing.BEARING_6205.bpfo, 3: 2 * bearing.BEARING_6205.bsf}


@pytest.mark.parametrize("label", [1, 2, 3])
def test_bearing_envelope_spectrum_has_a_line_at_its_own_fault_frequency_only(label):
    rng = np.random.default_rng(3)
    n, length = 12, 8192
    x, meta = bearing.simulate_bearing(rng, np.full(n, label), length, [20.0])
    envelope = np.abs(x[:, 0, :])
    envelope -= envelope.mean(axis=1, keepdims=True)
    spec = np.abs(np.fft.rfft(envelope, axis=1))
    resolution = bearing.SAMPLE_RATE_HZ / length
    shaft_hz = meta["shaft_rpm"] / 60.0

    def line(order):  # envelope-spectrum magnitude at order x shaft rate (+-2 bins), per window
        centre = np.round(order * shaft_hz / resolution).astype(int)
        return np.array([spec[i, c - 2:c + 3].max() for i, c in enumerate(centre)])

    background = np.median(spec[:, 2:int(600 / resolution)], axis=1)
    own = line(ORDERS[label])
    assert np.all(own > 8 * background)
    for other, order in ORDERS.items():
        if other != label:
            assert np.all(line(order) < 0.5 * own), other
    assert np.all((meta["resonance_hz"] >= 2000) & (meta["resonance_hz"] <= 4000))


def test_bearing_normal_class_has_no_impacts_and_noise_does_not_reveal_the_class():
    rng = np.random.default_rng(4)
    labels = np.repeat(np.arange(4), 200)
    x, meta = bearing.simulate_bearing(rng, labels, 1024, [-6.0])
    high = (np.abs(np.fft.rfft(x[:, 0, :], axis=1))[:, 171:342] ** 2).mean(axis=1)  # 2-4 kHz band
    assert high[labels == 0].mean() < 0.75 * high[labels != 0].mean()       # impacts ring up there
    low = (np.abs(np.fft.rfft(x[:, 0, :], axis=1))[:, 400:] ** 2).mean(axis=1)       # > 4.7 kHz: noise
    assert abs(low[labels == 0].mean() / low[labels != 0].mean() - 1) < 0.15
    rpm = meta["shaft_rpm"]
    assert abs(rpm.mean() - 1797) < 5 and 0.005 < rpm.std() / 1797 < 0.02


def test_rrc_taps_unit_energy_symmetric_and_free_of_intersymbol_interference():
    for sps in spectrum.SAMPLES_PER_SYMBOL:
        taps = spectrum.rrc_taps(np.array([0.2, 0.35, 0.25]), sps)     # 0.25 hits the t = 1/(4 beta) pole
        assert np.all(np.isfinite(taps))
        np.testing.assert_allclose((taps**2).sum(axis=1), 1.0)
        np.testing.assert_allclose(taps, taps[:, ::-1], atol=1e-12)
        for h in taps:
            rc = np.convolve(h, h)
            centre = len(rc) // 2
            others = rc[centre % sps::sps]
            others = np.delete(others, centre // sps)
            assert np.max(np.abs(others)) < 0.03 * rc[centre]


def test_spectrum_snr_and_noise_floor_are_as_specified():
    rng = np.random.default_rng(5)
    labels = np.repeat([0, 1], 600)
    x, meta = spectrum.simulate_spectrum(rng, labels, 256, [6.0], 6.0)
    power = (x**2).sum(axis=1).mean(axis=1)
    noise = 10 ** (meta["noise_floor_db"] / 10)
    ratio = power / noise
    assert abs(ratio[labels == 0].mean() - 1.0) < 0.02
    assert abs(ratio[labels == 1].mean() - (1 + 10**0.6)) < 0.1
    assert meta["noise_floor_db"].min() >= -3 and meta["noise_floor_db"].max() <= 3
    assert set(np.unique(meta["modulation"][labels == 0])) == {0}
    assert set(np.unique(meta["modulation"][labels == 1])) == {1, 2, 3}
    assert np.all(np.abs(meta["cfo"]) <= spectrum.CFO_LIMIT)


def test_ofdm_windows_repeat_their_cyclic_prefix():
    rng = np.random.default_rng(6)
    s = spectrum._ofdm(rng, 50, 160)
    # within any 160-sample window there is a full symbol: some lag-64 pair of 16 samples matches
    best = [max(np.abs(np.vdot(w[i:i + 16], w[i + 64:i + 80])) / np.vdot(w[i:i + 16], w[i:i + 16]).real
                for i in range(0, 160 - 80)) for w in s]
    assert min(best) > 0.999


# ------------------------------------------------------------------------------ learnability
def envelope_features(ds, x):
    v = ds.real(x)[:, 0, :]
    env = np.abs(v) - np.abs(v).mean(axis=1, keepdims=True)
    return np.log(np.abs(np.fft.rfft(env, axis=1))[:, 1:30] + 1e-3)


def sorted_spectrum_features(ds, x):
    v = ds.real(x)
    p = np.sort(np.abs(np.fft.fft(v[:, 0] + 1j * v[:, 1], axis=1)) ** 2, axis=1)
    return np.log(p[:, ::8] + 1e-6)


def fit_score(ds, features):
    sklearn = pytest.importorskip("sklearn", reason="scikit-learn is needed for the learnability check")
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    assert sklearn
    clf = make_pipeline(StandardScaler(), LogisticRegression(max_iter=500))
    clf.fit(features(ds, ds.x_train), ds.y_train)
    return clf.score(features(ds, ds.x_test), ds.y_test)


@pytest.mark.parametrize(("name", "features", "low_snr", "good", "chance_max"), [
    ("bearing", envelope_features, -30.0, 0.9, 0.4),
    ("spectrum", sorted_spectrum_features, -25.0, 0.8, 0.6),
])
def test_tasks_are_learnable_at_the_default_snr_and_not_at_a_very_low_one(
        name, features, low_snr, good, chance_max):
    sizes = {"n_per_class": 150, "n_test_per_class": 100}
    assert fit_score(data.load(name, cache=False, **sizes), features) > good
    assert fit_score(data.load(name, cache=False, snr_db=low_snr, **sizes), features) < chance_max


def test_energy_detection_alone_is_not_perfect_at_the_default_spectrum_snr():
    ds = data.load("spectrum", cache=False, n_per_class=400, n_test_per_class=400)
    e_train = (ds.real(ds.x_train) ** 2).sum(axis=(1, 2))
    e_test = (ds.real(ds.x_test) ** 2).sum(axis=(1, 2))
    thresholds = np.quantile(e_train, np.linspace(0.01, 0.99, 99))
    best = thresholds[np.argmax([((e_train > t) == ds.y_train).mean() for t in thresholds])]
    accuracy = ((e_test > best) == ds.y_test).mean()
    assert 0.7 < accuracy < 0.9                    # measured 0.84-0.85 over seeds 0-2
    flat = data.load("spectrum", cache=False, noise_spread_db=0.0, n_per_class=400, n_test_per_class=400)
    e_flat = (flat.real(flat.x_test) ** 2).sum(axis=(1, 2))
    e_flat_train = (flat.real(flat.x_train) ** 2).sum(axis=(1, 2))
    t_flat = np.quantile(e_flat_train, np.linspace(0.01, 0.99, 99))
    best_flat = t_flat[np.argmax([((e_flat_train > t) == flat.y_train).mean() for t in t_flat])]
    assert ((e_flat > best_flat) == flat.y_test).mean() > accuracy + 0.08  # the floor spread matters


@pytest.mark.parametrize("rpm", [1797.0, 1200.0])
def test_bearing_shaft_synchronous_sampling_keeps_fault_orders_and_moves_the_resonance(rpm):
    """Sampled at 512 samples per revolution, the outer-race line sits at BPFO / 512 cycles per
    sample at any speed; the resonance (fixed in Hz) sits at f_n / (512 f_r) cycles per sample."""
    per_rev, n, length = 512, 8, 8192
    x, meta = bearing.simulate_bearing(np.random.default_rng(5), np.full(n, 2), length, [20.0], nominal_rpm=rpm,
                                       samples_per_rev=per_rev)
    envelope = np.abs(x[:, 0, :])
    envelope -= envelope.mean(axis=1, keepdims=True)
    spec = np.abs(np.fft.rfft(envelope, axis=1))
    centre = int(round(bearing.BEARING_6205.bpfo / per_rev * length))       # the same bin at any speed
    background = np.median(spec[:, 2:length // 16], axis=1)
    assert np.all(spec[:, centre - 2:centre + 3].max(axis=1) > 8 * background)
    raw = np.abs(np.fft.rfft(x[:, 0, :], axis=1))
    raw[:, :length // 32] = 0                                                # shaft harmonics out of the way
    peak = raw.argmax(axis=1) / length                                       # cycles per sample
    expected = meta["resonance_hz"] / (per_rev * meta["shaft_rpm"] / 60.0)
    assert np.allclose(peak, expected, rtol=0.05)
    assert np.all(expected < 0.5)                                            # below Nyquist at 1200 rpm too


def test_bearing_shaft_synchronous_sampling_changes_no_draw():
    labels = np.array([0, 1, 2, 3] * 3)
    _, a = bearing.simulate_bearing(np.random.default_rng(6), labels, 512, [0.0])
    _, b = bearing.simulate_bearing(np.random.default_rng(6), labels, 512, [0.0], samples_per_rev=512)
    assert all(np.array_equal(a[k], b[k]) for k in a)
