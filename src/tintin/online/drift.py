"""Drift scenarios: seeded streams built from tintin's data sets and generators.

There is no standard drift benchmark for TinyML; these are tintin's, each defined here exactly.
Every stream has ``length`` samples (default 2400). Samples come from the data set's *test*
split, drawn without replacement in seeded random order (a fresh permutation when the split is used
up), except on ``bearing``, whose stream windows are generated afresh by the bearing generator
(``tintin.data.bearing.simulate_bearing``, SYNTHETIC) and standardised with the data set's training
statistics (``bearing_speed`` and ``recurring`` sample them synchronously with the shaft and bring
their own pretraining windows, see below). A model is pretrained on the *training* split (concept 0, initial classes only):
:attr:`Stream.x_pretrain`. Transforms act on real values (``x * 2**e``) and are quantised back with
the data set's exponent (round half away from zero, saturate at +-127).

========================  =====================================================================
scenario                  what happens (``L`` = length)
========================  =====================================================================
``sensor_gain``           abrupt: at ``L/2`` every value becomes ``g * v + o`` with gain
                          ``g = 0.25`` and offset ``o = 0.25`` (standard deviations for sensor sets,
                          intensity for images): a sensor that lost three quarters of its sensitivity (-12 dB) and
                          picked up a bias.
``sensor_gain_gradual``   the same change as a linear ramp from ``L/3`` to ``2L/3`` (gain and
                          offset move together), then constant.
``bearing_speed``         ``bearing`` only: at ``L/2`` the shaft slows from 1797 to 1200 rpm. The
                          monitor samples synchronously with the shaft (order tracking: a 400-line
                          encoder clocks the ADC, a window is 2.56 revolutions), as vibration
                          monitoring of variable-speed machines does. At 1797 rpm that is the
                          data set's 12 kHz clock (11.98 kHz), so fault periods span as many
                          samples as in the ``bearing`` data set (BPFI 74, 2 x BSF 85, BPFO 112).
                          Fault impacts and shaft harmonics keep their place in orders (BPFI 5.4,
                          BPFO 3.6, 2 x BSF 4.7 per revolution); the structural resonance, 2-4 kHz
                          at any speed, moves from 3.0-6.0 to 2.0-4.0 samples per cycle and decays
                          in fewer samples. The model is pretrained on shaft-synchronous windows
                          at 1797 rpm.
``new_class``             class-incremental: the last class is absent before ``L/2`` and from the
                          pretraining data; from ``L/2`` it appears with the others. The model
                          keeps an output row for it from the start (the static plan reserves it).
``rotation``              images only: at ``L/2`` every image turns by 30 degrees (bilinear).
``thickness``             images only: at ``L/2`` strokes thicken (3x3 cross max filter).
``recurring``             concepts A -> B -> A at ``L/3`` and ``2L/3``: B is ``bearing_speed`` on
                          ``bearing`` (shaft-synchronous throughout), ``rotation`` on images,
                          ``sensor_gain`` otherwise.
                          Measures forgetting of A.
========================  =====================================================================

``label_rate`` (default 1.0): each sample's label arrives with that probability (seeded).
"""

from __future__ import annotations

from typing import Callable

import numpy as np

from ..data import Dataset, load, quantize_inputs
from .stream import Stream, StreamError, label_mask

GAIN, OFFSET = 0.25, 0.25
ROTATION_DEGREES = 30.0
DRIFT_RPM = 1200.0
#: samples per shaft revolution of shaft-synchronous bearing streams (a 400-line shaft encoder
#: clocking the ADC): 11.98 kHz at the nominal 1797 rpm, the ``bearing`` data set's 12 kHz clock, so a
#: fault period spans as many samples as the data set's windows at every speed (inner race 74,
#: ball 85, outer race 112) and a 1024-sample window spans 2.56 revolutions. A finer encoder
#: stretches the periods: at 512 lines they are 95 to 143 samples, longer than the 85-sample
#: receptive field of cnn1d's last convolution, which then cannot see two impacts at once, and
#: cnn1d's accuracy on concept A falls from about 97 % to about 74 %.
SHAFT_PULSES_PER_REV = 400
DEFAULT_LENGTH = 2400
IMAGE_SETS = ("digits", "mnist5k", "fashion")


# -- transforms (real values, float64) ---------------------------------------------------------
def gain_offset(v: np.ndarray, gain: np.ndarray | float, offset: np.ndarray | float) -> np.ndarray:
    """``gain * v + offset`` per sample (``gain`` / ``offset``: scalars or ``(N,)`` arrays)."""
    shape = (-1,) + (1,) * (v.ndim - 1)
    return np.asarray(gain, dtype=np.float64).reshape(shape) * v + np.asarray(offset, dtype=np.float64).reshape(shape)


def rotate_images(v: np.ndarray, degrees: float) -> np.ndarray:
    """Images ``(N, C, H, W)`` turned by ``degrees`` counter-clockwise about their centre
    (bilinear interpolation, zero outside)."""
    n, c, h, w = v.shape
    th = -np.deg2rad(degrees)  # rows grow downwards: counter-clockwise as displayed, like np.rot90
    cy, cx = (h - 1) / 2.0, (w - 1) / 2.0
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
    ys = np.cos(th) * (yy - cy) - np.sin(th) * (xx - cx) + cy   # source of each output pixel
    xs = np.sin(th) * (yy - cy) + np.cos(th) * (xx - cx) + cx
    y0, x0 = np.floor(ys).astype(int), np.floor(xs).astype(int)
    fy, fx = ys - y0, xs - x0
    padded = np.zeros((n, c, h + 2, w + 2))
    padded[:, :, 1:-1, 1:-1] = v

    def at(yi, xi):
        return padded[:, :, np.clip(yi + 1, 0, h + 1), np.clip(xi + 1, 0, w + 1)]

    return (at(y0, x0) * (1 - fy) * (1 - fx) + at(y0, x0 + 1) * (1 - fy) * fx
            + at(y0 + 1, x0) * fy * (1 - fx) + at(y0 + 1, x0 + 1) * fy * fx)


def thicken_strokes(v: np.ndarray) -> np.ndarray:
    """Images ``(N, C, H, W)`` through a 3x3 cross-shaped max filter (grey dilation)."""
    out = v.copy()
    out[..., 1:, :] = np.maximum(out[..., 1:, :], v[..., :-1, :])
    out[..., :-1, :] = np.maximum(out[..., :-1, :], v[..., 1:, :])
    out[..., :, 1:] = np.maximum(out[..., :, 1:], v[..., :, :-1])
    out[..., :, :-1] = np.maximum(out[..., :, :-1], v[..., :, 1:])
    return out


# -- sample sources ----------------------------------------------------------------------------
def _requantise(ds: Dataset, v: np.ndarray) -> np.ndarray:
    return quantize_inputs(v, ds.input_exponent)[0]


def _test_draws(ds: Dataset, n: int, rng: np.random.Generator, classes=None) -> np.ndarray:
    """Indices into the test split: seeded permutations, concatenated until ``n`` (optionally
    only samples of ``classes``)."""
    pool = np.arange(len(ds.y_test)) if classes is None else np.flatnonzero(np.isin(ds.y_test, classes))
    if len(pool) == 0:
        raise StreamError(f"{ds.name}: no test samples of classes {classes}")
    out = []
    while sum(len(o) for o in out) < n:
        out.append(pool[rng.permutation(len(pool))])
    return np.concatenate(out)[:n]


class _Source:
    """Real-valued stream samples of concept 0 for a data set: ``draw(n, classes, rpm)``.

    ``pretrain``: ``None`` (pretrain on the data set's training split) or real-valued ``(x, y)``
    that replace it (set by :meth:`shaft_synchronous`)."""

    def __init__(self, ds: Dataset, rng: np.random.Generator, seed: int = 0):
        self.ds, self.rng, self.seed = ds, rng, int(seed)
        self.samples_per_rev: float | None = None
        self.pretrain: tuple[np.ndarray, np.ndarray] | None = None
        if ds.name == "bearing":
            self.mean, self.std = ds.extras["channel_mean"], ds.extras["channel_std"]
            self.snr = [float(v) for v in np.unique(ds.extras["train_snr_db"])]

    def _bearing(self, labels: np.ndarray, rpm: float, rng: np.random.Generator | None = None) -> np.ndarray:
        """Fresh SYNTHETIC bearing windows for ``labels`` at shaft speed ``rpm`` (raw sensor units)."""
        from ..data.bearing import simulate_bearing

        x, _ = simulate_bearing(self.rng if rng is None else rng, labels, self.ds.sample_shape[-1], self.snr, nominal_rpm=rpm,
                                samples_per_rev=self.samples_per_rev)
        return x

    def _standardise(self, x: np.ndarray) -> np.ndarray:
        return (x - self.mean[None, :, None]) / self.std[None, :, None]

    def shaft_synchronous(self, samples_per_rev: float) -> None:
        """From now on, sample bearing windows synchronously with the shaft (``samples_per_rev``
        samples per revolution). The model's pretraining data is regenerated the same way at the
        nominal speed (the training split's labels and size; seeded by the stream's seed alone, so
        every scenario of a seed shares it), and its statistics standardise every window."""
        from ..data.bearing import NOMINAL_RPM
        from ..data.quantize import channel_statistics

        if self.ds.name != "bearing":
            raise StreamError(f"shaft-synchronous sampling needs the bearing data set, not {self.ds.name}")
        self.samples_per_rev = float(samples_per_rev)
        raw = self._bearing(self.ds.y_train, NOMINAL_RPM, np.random.default_rng(np.random.SeedSequence([self.seed, 13])))
        self.mean, self.std = channel_statistics(raw)
        self.pretrain = (self._standardise(raw), self.ds.y_train.copy())

    def draw(self, n: int, classes=None, rpm: float | None = None) -> tuple[np.ndarray, np.ndarray]:
        ds = self.ds
        if ds.name == "bearing":
            from ..data.bearing import NOMINAL_RPM

            cls = np.arange(ds.num_classes) if classes is None else np.asarray(classes)
            labels = cls[self.rng.integers(0, len(cls), n)].astype(np.int64)
            return self._standardise(self._bearing(labels, NOMINAL_RPM if rpm is None else rpm)), labels
        if rpm is not None:
            raise StreamError(f"shaft-speed drift needs the bearing data set, not {ds.name}")
        idx = _test_draws(ds, n, self.rng, classes)
        return ds.real(ds.x_test[idx]), ds.y_test[idx].copy()


def _is_image(ds: Dataset) -> bool:
    return len(ds.sample_shape) == 3


# -- scenarios ---------------------------------------------------------------------------------
def _gain_schedule(length: int, start: int, end: int) -> tuple[np.ndarray, np.ndarray]:
    """Per-sample gain and offset: 1 and 0 before ``start``, ramp to GAIN / OFFSET at ``end``."""
    t = np.clip((np.arange(length) - start + 1) / max(end - start, 1), 0.0, 1.0)
    return 1.0 + (GAIN - 1.0) * t, OFFSET * t


def _sensor_gain(src: _Source, length: int, gradual: bool):
    v, y = src.draw(length)
    start, end = (length // 3, 2 * length // 3) if gradual else (length // 2, length // 2 + 1)
    gain, offset = _gain_schedule(length, start, end)
    concept = (np.arange(length) >= start).astype(np.int64)
    what = (f"gain ramps 1 -> {GAIN} and offset 0 -> {OFFSET} over samples {start}..{end}" if gradual
            else f"at sample {start} gain becomes {GAIN} and offset {OFFSET}")
    return gain_offset(v, gain, offset), y, concept, (start,), what


def _bearing_speed(src: _Source, length: int):
    if src.ds.name != "bearing":
        raise StreamError(f"shaft-speed drift needs the bearing data set, not {src.ds.name}")
    src.shaft_synchronous(SHAFT_PULSES_PER_REV)
    d = length // 2
    v0, y0 = src.draw(d)
    v1, y1 = src.draw(length - d, rpm=DRIFT_RPM)
    concept = np.repeat([0, 1], [d, length - d])
    return np.concatenate([v0, v1]), np.concatenate([y0, y1]), concept, (d,), \
        f"at sample {d} the shaft slows from 1797 to {DRIFT_RPM:g} rpm (shaft-synchronous sampling, " \
        f"{SHAFT_PULSES_PER_REV} samples per revolution)"


def _new_class(src: _Source, length: int):
    ds, d = src.ds, length // 2
    last = ds.num_classes - 1
    v0, y0 = src.draw(d, classes=list(range(last)))
    v1, y1 = src.draw(length - d)
    concept = np.repeat([0, 1], [d, length - d])
    return np.concatenate([v0, v1]), np.concatenate([y0, y1]), concept, (d,), \
        f"class {last} ({ds.class_names[last]}) first appears at sample {d}"


def _image_drift(src: _Source, length: int, kind: str):
    if not _is_image(src.ds):
        raise StreamError(f"{kind} drift needs an image data set ({', '.join(IMAGE_SETS)}), not {src.ds.name}")
    d = length // 2
    v, y = src.draw(length)
    v[d:] = rotate_images(v[d:], ROTATION_DEGREES) if kind == "rotation" else thicken_strokes(v[d:])
    concept = np.repeat([0, 1], [d, length - d])
    what = f"at sample {d} images turn by {ROTATION_DEGREES:g} degrees" if kind == "rotation" \
        else f"at sample {d} strokes thicken"
    return v, y, concept, (d,), what


def _recurring(src: _Source, length: int):
    ds = src.ds
    a, b = length // 3, 2 * length // 3
    sizes = (a, b - a, length - b)
    if ds.name == "bearing":
        src.shaft_synchronous(SHAFT_PULSES_PER_REV)
    parts, labels = [], []
    for i, n in enumerate(sizes):
        if i == 1 and ds.name == "bearing":
            v, y = src.draw(n, rpm=DRIFT_RPM)
        else:
            v, y = src.draw(n)
            if i == 1:
                v = rotate_images(v, ROTATION_DEGREES) if _is_image(ds) else gain_offset(v, GAIN, OFFSET)
        parts.append(v)
        labels.append(y)
    b_name = f"shaft speed {DRIFT_RPM:g} rpm, shaft-synchronous sampling" if ds.name == "bearing" else \
        f"rotation {ROTATION_DEGREES:g} deg" if _is_image(ds) else f"gain {GAIN} offset {OFFSET}"
    concept = np.repeat([0, 1, 0], sizes)
    return np.concatenate(parts), np.concatenate(labels), concept, (a, b), \
        f"concept A, then B ({b_name}) from sample {a}, A again from sample {b}"


SCENARIOS: dict[str, Callable] = {
    "sensor_gain": lambda src, n: _sensor_gain(src, n, gradual=False),
    "sensor_gain_gradual": lambda src, n: _sensor_gain(src, n, gradual=True),
    "bearing_speed": _bearing_speed,
    "new_class": _new_class,
    "rotation": lambda src, n: _image_drift(src, n, "rotation"),
    "thickness": lambda src, n: _image_drift(src, n, "thickness"),
    "recurring": _recurring,
}


def scenario_names() -> list[str]:
    return list(SCENARIOS)


def make_stream(scenario: str, dataset: str | Dataset = "bearing", length: int = DEFAULT_LENGTH, seed: int = 0,
                label_rate: float = 1.0, **dataset_options) -> Stream:
    """Build the drifting stream ``scenario`` (see the module docstring) from ``dataset`` (a name
    for :func:`tintin.data.load` with ``dataset_options``, or a loaded :class:`Dataset`).

    Same arguments, same bits. Raises :class:`StreamError` for an unknown scenario, a scenario that
    does not fit the data set, or a bad length / label rate."""
    if scenario not in SCENARIOS:
        raise StreamError(f"unknown drift scenario {scenario!r} ({', '.join(SCENARIOS)})")
    if not isinstance(length, (int, np.integer)) or length < 30:
        raise StreamError(f"stream length must be at least 30 samples, got {length}")
    ds = dataset if isinstance(dataset, Dataset) else load(dataset, **dataset_options)
    rng = np.random.default_rng(np.random.SeedSequence([seed, 11, len(scenario)] + [ord(c) for c in scenario]))
    src = _Source(ds, rng, seed)
    v, y, concept, drifts, what = SCENARIOS[scenario](src, int(length))
    x = _requantise(ds, v)
    initial = tuple(int(c) for c in np.unique(y[:drifts[0]]))
    if src.pretrain is None:
        x_train, y_train = ds.x_train, ds.y_train
    else:
        x_train, y_train = _requantise(ds, src.pretrain[0]), src.pretrain[1]
    keep = np.isin(y_train, initial)
    synthetic = ds.synthetic or ds.name == "bearing"
    desc = f"{'SYNTHETIC ' if synthetic else ''}{ds.name}, {scenario}: {what} (seed {seed}, {length} samples)"
    return Stream(name=scenario, description=desc, x=x, y=y.astype(np.int64), labelled=label_mask(len(y), label_rate, seed),
                  concept=concept.astype(np.int64), drift_points=tuple(int(d) for d in drifts),
                  num_classes=ds.num_classes, input_exponent=ds.input_exponent,
                  x_pretrain=np.ascontiguousarray(x_train[keep]), y_pretrain=y_train[keep].copy(),
                  initial_classes=initial, synthetic=synthetic, info={"dataset": ds.name, "seed": seed})
