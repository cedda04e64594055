import numpy as np
import pytest

from tintin.data import load
from tintin.online import StreamError, label_mask, make_stream, scenario_names
from tintin.online.drift import gain_offset, rotate_images, thicken_strokes
from tintin.online.prequential import forgetting, recovery_samples, windowed


@pytest.fixture(scope="module")
def digits():
    return load("digits")


@pytest.fixture(scope="module")
def bearing():
    return load("bearing", length=256, n_per_class=50, n_test_per_class=20)


def test_same_seed_same_bits_other_seed_other_bits(digits):
    a, b, c = (make_stream("sensor_gain", digits, length=200, seed=s) for s in (1, 1, 2))
    assert a.x.tobytes() == b.x.tobytes() and (a.y == b.y).all()
    assert a.x.tobytes() != c.x.tobytes()


@pytest.mark.parametrize("scenario", ["sensor_gain", "sensor_gain_gradual", "new_class", "rotation", "thickness",
                                      "recurring"])
def test_image_streams_are_well_formed(digits, scenario):
    s = make_stream(scenario, digits, length=300, seed=0)
    assert len(s) == 300 and s.x.dtype == np.int8 and s.sample_shape == digits.sample_shape
    assert s.x.min() >= -127
    pairs = list(s)
    assert len(pairs) == 300 and all(isinstance(y, int) for _, y in pairs)
    assert s.concept[0] == 0 and all(s.concept[d] != s.concept[d - 1] for d in s.drift_points)
    assert set(np.unique(s.y_pretrain)) == set(s.initial_classes)
    assert s.description.startswith("digits") and scenario in s.description


def test_abrupt_gain_changes_nothing_before_the_drift_point(digits):
    s = make_stream("sensor_gain", digits, length=200, seed=3)
    d = s.drift_points[0]
    src = digits.x_test.reshape(len(digits.x_test), -1)
    rows = {r.tobytes() for r in src}
    assert all(x.tobytes() in rows for x in s.x[:d].reshape(d, -1))       # untouched test samples
    assert sum(x.tobytes() in rows for x in s.x[d:].reshape(200 - d, -1)) < 5


def test_new_class_appears_only_after_the_drift_point(digits):
    s = make_stream("new_class", digits, length=400, seed=0)
    d = s.drift_points[0]
    assert 9 not in s.y[:d] and 9 in s.y[d:] and 9 not in s.y_pretrain
    assert s.initial_classes == tuple(range(9)) and s.num_classes == 10


def test_recurring_concepts_return(digits):
    s = make_stream("recurring", digits, length=300)
    assert s.drift_points == (100, 200)
    assert s.concept.tolist() == [0] * 100 + [1] * 100 + [0] * 100


def test_bearing_speed_regenerates_windows_at_the_new_speed(bearing):
    s = make_stream("bearing_speed", bearing, length=120, seed=0)
    assert s.synthetic and s.description.startswith("SYNTHETIC") and "1200 rpm" in s.description
    assert s.sample_shape == (1, 256) and s.drift_points == (60,)
    # the same labels at the old speed: the windows differ after the drift point, the spectra shift
    assert s.x.dtype == np.int8 and len(set(s.y.tolist())) == 4


def test_bearing_speed_samples_with_the_shaft_and_pretrains_on_such_windows(bearing):
    s = make_stream("bearing_speed", bearing, length=120, seed=0)
    assert "shaft-synchronous" in s.description
    # pretraining windows: shaft-synchronous at the nominal speed, as many as the training split,
    # standardised with their own statistics (mean 0, std 1 before quantisation)
    assert s.x_pretrain.shape == bearing.x_train.shape and np.array_equal(s.y_pretrain, bearing.y_train)
    assert not np.array_equal(s.x_pretrain, bearing.x_train)
    real = s.x_pretrain.astype(np.float64) * 2.0 ** s.input_exponent
    assert abs(real.mean()) < 0.05 and 0.9 < real.std() < 1.1
    # every scenario of a seed shares them (one pretrained model); another seed draws others
    r = make_stream("recurring", bearing, length=120, seed=0)
    assert "shaft-synchronous" in r.description and np.array_equal(r.x_pretrain, s.x_pretrain)
    assert not np.array_equal(make_stream("bearing_speed", bearing, length=120, seed=1).x_pretrain, s.x_pretrain)
    # the other scenarios keep the data set's own training split
    assert np.array_equal(make_stream("sensor_gain", bearing, length=120, seed=0).x_pretrain, bearing.x_train)


def test_scenarios_refuse_data_they_do_not_fit(digits, bearing):
    with pytest.raises(StreamError, match="bearing"):
        make_stream("bearing_speed", digits)
    with pytest.raises(StreamError, match="image"):
        make_stream("rotation", bearing, length=60)
    with pytest.raises(StreamError, match="unknown drift scenario"):
        make_stream("earthquake", digits)
    with pytest.raises(StreamError, match="label rate"):
        make_stream("sensor_gain", digits, label_rate=0.0)
    with pytest.raises(StreamError, match="at least 30"):
        make_stream("sensor_gain", digits, length=5)
    assert "sensor_gain" in scenario_names()


def test_label_rate_labels_a_seeded_fraction(digits):
    s = make_stream("sensor_gain", digits, length=2000, label_rate=0.25, seed=4)
    labels = [y for _, y in s]
    assert 0.22 < sum(y is not None for y in labels) / 2000 < 0.28
    assert (label_mask(2000, 0.25, 4) == s.labelled).all()
    assert label_mask(10, 1.0, 0).all()


def test_transforms():
    rng = np.random.default_rng(0)
    img = rng.random((3, 1, 8, 8))
    assert np.allclose(rotate_images(img, 0.0), img)
    assert np.allclose(rotate_images(img, 90.0), np.rot90(img, 1, axes=(2, 3)))
    dot = np.zeros((1, 1, 5, 5))
    dot[0, 0, 2, 2] = 1
    assert thicken_strokes(dot)[0, 0].sum() == 5
    assert np.allclose(gain_offset(np.ones((2, 3)), np.array([1.0, 0.5]), 0.25), [[1.25] * 3, [0.75] * 3])


def test_windowed_accuracy_recovery_and_forgetting():
    correct = np.array([1] * 100 + [0] * 30 + [1] * 70 + [1] * 50, dtype=bool)
    assert windowed(correct, 10)[99] == 1.0 and windowed(correct, 10)[105] == 0.4
    assert windowed(correct, 4)[:2].tolist() == [1.0, 1.0]
    # pre-drift level 100%: back to within 2 points once a whole window is past the 30 errors
    assert recovery_samples(correct, [100], 10) == [40]
    assert recovery_samples(np.array([1] * 50 + [0] * 50, dtype=bool), [50], 10) == [None]
    concept = np.array([0] * 100 + [1] * 100 + [0] * 50)
    c2 = correct.copy()
    c2[200:210] = False
    assert forgetting(c2, concept, [100, 200], 20) == pytest.approx(0.5)
    assert forgetting(correct, np.array([0] * 100 + [1] * 150), [100], 20) is None


def _impact_period(x: np.ndarray, lags: range) -> int:
    """The lag (samples) at which the squared windows ``(N, 1, L)`` correlate best with themselves."""
    e = x[:, 0].astype(np.float64) ** 2
    e -= e.mean(axis=1, keepdims=True)
    n = e.shape[1]
    score = [np.mean(np.sum(e[:, :n - k] * e[:, k:], axis=1) / (n - k)) for k in lags]
    return lags[int(np.argmax(score))]


def test_shaft_synchronous_windows_keep_the_data_sets_fault_periods(bearing):
    """At the nominal speed the shaft-synchronous clock is the data set's 12 kHz, so outer-race
    impacts recur every ~112 samples in the stream's pretraining windows as in the data set's
    (a 512-line encoder stretched them to 143, beyond the reach of cnn1d's last convolution)."""
    s = make_stream("bearing_speed", bearing, length=120, seed=0)
    lags = range(60, 180)
    ours = _impact_period(s.x_pretrain[s.y_pretrain == 2], lags)
    theirs = _impact_period(bearing.x_train[bearing.y_train == 2], lags)
    assert abs(ours - theirs) <= 3 and 105 <= theirs <= 118
