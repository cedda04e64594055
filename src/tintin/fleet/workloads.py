"""Fleet workloads: seeded fleets of devices whose data differ by task or by physics.

    from tintin.fleet.workloads import get_workload, workload_names
    fleet = get_workload("bearing-fleet", devices=20, seed=0)
    x, y = fleet.device_train(3)          # int8 samples and labels of machine 3
    new = fleet.unseen(5)                 # five further machines, never used in training
    model = fleet.build_model(seed=0)     # the workload's integer model (random init)

Every workload is a *device source*: ``name``, ``task`` (``"classification"`` or
``"regression"``), ``num_classes`` (1 for regression), ``sample_shape``, ``input_exponent``
(inputs are int8 mantissas at ``2**input_exponent``), ``target_exponent`` (regression targets are
int8 mantissas at ``2**target_exponent``; ``None`` for classification), ``num_devices``,
``synthetic``, and ``device_train(i)``, ``device_test(i)``, ``global_test()``.

Determinism: device ``i`` of a workload with seed ``s`` draws its parameters from
``SeedSequence([s, domain, 0, i])`` and its samples from
``SeedSequence([s, domain, 1, i, split])``; ``domain`` is 0 for the fleet and 1 for the devices of
:meth:`FleetWorkload.unseen`, so unseen devices share the parameter *distribution* but no seed
with the fleet. Same arguments, same bits; adding devices does not change the earlier ones.

=================  ============================================================================
workload           what each device is
=================  ============================================================================
``sine``           SYNTHETIC. Reptile's sine-wave regression (Nichol et al. 2018): device ``i``
                   is the function ``y = A sin(x - phi)`` with amplitude ``A ~ U(0.1, 5)`` and
                   phase ``phi ~ U(0, pi)``; inputs ``x ~ U(-5, 5)``. Inputs and targets are int8
                   at ``2**-4`` (step 0.0625, range +-7.94). MSE loss; model ``sine-mlp``:
                   1-40-40-1 with ReLU (Reptile's network).
``bearing-fleet``  SYNTHETIC. Every machine has its own shaft speed ``rpm ~ U(900, 2700)``, its
                   own structural resonance (centre ``U(2, 4) kHz``, each window drawn within
                   +-5 % of it), its own noise level (``snr_db ~ U(-3, 6)``) and its own label mix
                   (class probabilities ``Dirichlet(2, 2, 2, 2)``): the physics of
                   :func:`tintin.data.bearing.simulate_bearing`, classes normal / inner / outer /
                   ball. Fault lines sit at multiples of the shaft rate, so a new machine's lines
                   sit elsewhere: non-IID by physics. A sample is the envelope spectrum of a 2048-
                   sample window at 12 kHz (high-pass above 1 kHz, Hilbert envelope, magnitudes of
                   bins 1..64, i.e. 5.9-375 Hz), divided by its maximum and quantised at
                   ``2**-7``: shape ``(64,)``; computed on the host. Model: the zoo ``mlp``
                   (64-64-4).
``digits-style``   Real UCI handwritten digits (``data.load("digits")``; ``base="mnist5k"`` for
                   MNIST-5k) with SIMULATED per-device style: every device holds
                   ``classes_per_device`` (default 4) of the 10 classes, turns its images by its
                   own angle ``U(-30, 30)`` degrees and thickens strokes with probability 1/2
                   (:func:`tintin.online.drift.rotate_images`, ``thicken_strokes``). Fleet
                   devices draw training images from the data set's training split and test images
                   from its test split; unseen devices draw both from the test split, so none of
                   their images was seen in training. Model: the zoo ``mlp``.
=================  ============================================================================

``global_test()`` is the concatenation of the test samples of the first
:data:`GLOBAL_TEST_DEVICES` devices (all when fewer).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

from ..data import Dataset, load, quantize_inputs
from ..errors import TintinError
from ..nn import Sequential
from ..nn.config import QuantConfig
from ..nn.layers import Linear, ReLU
from ..nn.zoo import build_model

__all__ = ["WorkloadError", "FleetWorkload", "get_workload", "workload_names", "GLOBAL_TEST_DEVICES",
           "DEFAULT_SAMPLES_PER_DEVICE", "DEFAULT_TEST_PER_DEVICE", "sine_mlp", "envelope_spectrum"]

#: devices whose test samples make up ``global_test()``
GLOBAL_TEST_DEVICES = 32
DEFAULT_SAMPLES_PER_DEVICE = {"sine": 50, "bearing-fleet": 64, "digits-style": 64}
DEFAULT_TEST_PER_DEVICE = 100
SINE_EXPONENT = -4
BEARING_WINDOW = 2048
BEARING_BINS = 64
BEARING_HIGHPASS_HZ = 1000.0
_TRAIN, _TEST = 0, 1


class WorkloadError(TintinError, ValueError):
    """A bad workload name, device index or workload argument."""


# -- per-workload generators ----------------------------------------------------------------------

def sine_mlp(seed: int = 0, config: QuantConfig | None = None) -> Sequential:
    """Reptile's sine network, 1-40-40-1 with ReLU and an MSE head, inputs at ``2**-4``
    (weights drawn as :func:`tintin.nn.build_model` draws them for ``seed``)."""
    config = config or QuantConfig()
    rng = np.random.default_rng(np.random.SeedSequence([seed, 1]))
    layers = [Linear(1, 40, config=config, rng=rng, name="fc1"), ReLU("relu1"),
              Linear(40, 40, config=config, rng=rng, name="fc2"), ReLU("relu2"),
              Linear(40, 1, config=config, rng=rng, name="fc3")]
    return Sequential(layers, (1,), config, loss="mse", name="sine-mlp", input_exponent=SINE_EXPONENT)


def _quantise_sine(v: np.ndarray) -> np.ndarray:
    return quantize_inputs(v, SINE_EXPONENT)[0]


class _Sine:
    name = "sine"
    task = "regression"
    num_classes = 1
    sample_shape = (1,)
    input_exponent = SINE_EXPONENT
    target_exponent = SINE_EXPONENT
    synthetic = True
    model_name = "sine-mlp"
    description = ("SYNTHETIC sine-wave regression (Reptile): y = A sin(x - phi), A ~ U(0.1, 5), "
                   "phi ~ U(0, pi) per device, x ~ U(-5, 5); int8 at 2^-4")

    def __init__(self, options: dict):
        if options:
            raise WorkloadError(f"sine takes no options, got {', '.join(sorted(options))}")

    def device_params(self, rng: np.random.Generator) -> dict:
        return {"amplitude": float(rng.uniform(0.1, 5.0)), "phase": float(rng.uniform(0.0, math.pi))}

    def samples(self, params: dict, rng: np.random.Generator, n: int, split: int):
        x = rng.uniform(-5.0, 5.0, n)
        y = params["amplitude"] * np.sin(x - params["phase"])
        return _quantise_sine(x)[:, None], _quantise_sine(y)[:, None]

    def build_model(self, seed: int) -> Sequential:
        return sine_mlp(seed)


def envelope_spectrum(windows: np.ndarray, sample_rate_hz: float, bins: int = BEARING_BINS,
                      highpass_hz: float = BEARING_HIGHPASS_HZ) -> np.ndarray:
    """Envelope spectra of real windows ``(N, L)``: zero the spectrum below ``highpass_hz``, take
    the Hilbert envelope (magnitude of the analytic signal), remove its mean and return the
    magnitudes of its FFT bins ``1..bins`` divided by each row's maximum (float64 in [0, 1])."""
    n, length = windows.shape
    spec = np.fft.fft(windows, axis=1)
    freqs = np.abs(np.fft.fftfreq(length, 1.0 / sample_rate_hz))
    spec[:, freqs < highpass_hz] = 0.0
    analytic_gain = np.zeros(length)
    analytic_gain[0] = 1.0
    analytic_gain[1:(length + 1) // 2] = 2.0
    if length % 2 == 0:
        analytic_gain[length // 2] = 1.0
    envelope = np.abs(np.fft.ifft(spec * analytic_gain, axis=1))
    envelope -= envelope.mean(axis=1, keepdims=True)
    mags = np.abs(np.fft.rfft(envelope, axis=1))[:, 1:bins + 1]
    return mags / np.maximum(mags.max(axis=1, keepdims=True), 1e-12)


class _BearingFleet:
    name = "bearing-fleet"
    task = "classification"
    num_classes = 4
    sample_shape = (BEARING_BINS,)
    input_exponent = -7
    target_exponent = None
    synthetic = True
    model_name = "mlp"
    description = ("SYNTHETIC bearing fleet: per machine shaft speed U(900, 2700) rpm, resonance centre "
                   "U(2, 4) kHz, SNR U(-3, 6) dB, label mix Dirichlet(2); envelope spectra, 64 bins "
                   "5.9-375 Hz, classes normal/inner/outer/ball")

    def __init__(self, options: dict):
        if options:
            raise WorkloadError(f"bearing-fleet takes no options, got {', '.join(sorted(options))}")

    def device_params(self, rng: np.random.Generator) -> dict:
        return {"shaft_rpm": float(rng.uniform(900.0, 2700.0)), "resonance_hz": float(rng.uniform(2000.0, 4000.0)),
                "snr_db": float(rng.uniform(-3.0, 6.0)),
                "class_mix": [float(v) for v in rng.dirichlet(np.full(4, 2.0))]}

    def samples(self, params: dict, rng: np.random.Generator, n: int, split: int):
        from ..data.bearing import SAMPLE_RATE_HZ, simulate_bearing

        labels = rng.choice(4, size=n, p=np.asarray(params["class_mix"])).astype(np.int64)
        f = params["resonance_hz"]
        windows, _ = simulate_bearing(rng, labels, BEARING_WINDOW, [params["snr_db"]],
                                      nominal_rpm=params["shaft_rpm"], resonance_hz=(0.95 * f, 1.05 * f))
        features = envelope_spectrum(windows[:, 0, :], SAMPLE_RATE_HZ)
        return quantize_inputs(features, self.input_exponent)[0], labels

    def build_model(self, seed: int) -> Sequential:
        return build_model("mlp", self.sample_shape, self.num_classes, seed=seed, input_exponent=self.input_exponent)


class _DigitsStyle:
    name = "digits-style"
    task = "classification"
    synthetic = False
    model_name = "mlp"

    def __init__(self, options: dict):
        options = dict(options)
        base = options.pop("base", "digits")
        classes = options.pop("classes_per_device", 4)
        if options:
            raise WorkloadError(f"digits-style: unknown options {', '.join(sorted(options))} "
                                "(base, classes_per_device)")
        if base not in ("digits", "mnist5k"):
            raise WorkloadError(f"digits-style: base must be digits or mnist5k, got {base!r}")
        self.base: Dataset = load(base)
        self.num_classes = self.base.num_classes
        if not isinstance(classes, (int, np.integer)) or not 1 <= int(classes) <= self.num_classes:
            raise WorkloadError(f"digits-style: classes_per_device must be in 1..{self.num_classes}, got {classes!r}")
        self.classes_per_device = int(classes)
        self.sample_shape = tuple(self.base.sample_shape)
        self.input_exponent = self.base.input_exponent
        self.target_exponent = None
        self.description = (f"{base} handwritten digits (real) with SIMULATED per-device style: "
                            f"{self.classes_per_device} classes per device, rotation U(-30, 30) degrees, "
                            "thick strokes with probability 1/2")

    def device_params(self, rng: np.random.Generator) -> dict:
        classes = np.sort(rng.choice(self.num_classes, self.classes_per_device, replace=False))
        return {"classes": [int(c) for c in classes], "rotation_deg": float(rng.uniform(-30.0, 30.0)),
                "thick": bool(rng.random() < 0.5)}

    def samples(self, params: dict, rng: np.random.Generator, n: int, split: int):
        from ..online.drift import rotate_images, thicken_strokes

        ds = self.base
        xs, ys = (ds.x_train, ds.y_train) if split == _TRAIN else (ds.x_test, ds.y_test)
        pool = np.flatnonzero(np.isin(ys, params["classes"]))
        idx = rng.choice(pool, size=n, replace=len(pool) < n)
        v = rotate_images(ds.real(xs[idx]), params["rotation_deg"])
        if params["thick"]:
            v = thicken_strokes(v)
        return quantize_inputs(v, ds.input_exponent)[0], ys[idx].astype(np.int64)

    def build_model(self, seed: int) -> Sequential:
        return build_model("mlp", self.sample_shape, self.num_classes, seed=seed, input_exponent=self.input_exponent)


_GENERATORS: dict[str, Callable[[dict], Any]] = {"sine": _Sine, "bearing-fleet": _BearingFleet,
                                                 "digits-style": _DigitsStyle}


def workload_names() -> list[str]:
    """The names :func:`get_workload` accepts."""
    return list(_GENERATORS)


# -- the device source -----------------------------------------------------------------------------

@dataclass(eq=False)
class FleetWorkload:
    """A fleet of ``num_devices`` devices of one workload (see the module docstring).

    ``device_params[i]``: the physical or style parameters of device ``i`` (a dict);
    ``domain``: 0 for a fleet from :func:`get_workload`, 1 for :meth:`unseen` devices, 2 for
    :meth:`validation` devices."""

    generator: Any
    num_devices: int
    seed: int
    samples_per_device: int
    test_per_device: int
    domain: int = 0
    device_params: list = field(default_factory=list)
    _cache: dict = field(default_factory=dict, repr=False)

    def __post_init__(self):
        self.device_params = [
            self.generator.device_params(np.random.default_rng(np.random.SeedSequence([self.seed, self.domain, 0, i])))
            for i in range(self.num_devices)]

    # the DeviceSource attributes
    @property
    def name(self) -> str:
        return self.generator.name

    @property
    def task(self) -> str:
        return self.generator.task

    @property
    def num_classes(self) -> int:
        return int(self.generator.num_classes)

    @property
    def sample_shape(self) -> tuple[int, ...]:
        return tuple(self.generator.sample_shape)

    @property
    def input_exponent(self) -> int:
        return int(self.generator.input_exponent)

    @property
    def target_exponent(self) -> int | None:
        return self.generator.target_exponent

    @property
    def synthetic(self) -> bool:
        return bool(self.generator.synthetic)

    @property
    def description(self) -> str:
        return self.generator.description

    @property
    def model_name(self) -> str:
        return self.generator.model_name

    def _check_index(self, i) -> int:
        if isinstance(i, bool) or not isinstance(i, (int, np.integer)) or not 0 <= int(i) < self.num_devices:
            raise WorkloadError(f"{self.name}: device index must be in [0, {self.num_devices}), got {i!r}")
        return int(i)

    def _split(self, i, split: int) -> tuple[np.ndarray, np.ndarray]:
        i = self._check_index(i)
        key = (i, split)
        if key not in self._cache:
            # unseen devices of image workloads draw from the held-out split only
            source_split = _TEST if self.domain > 0 else split
            rng = np.random.default_rng(np.random.SeedSequence([self.seed, self.domain, 1, i, split]))
            n = self.samples_per_device if split == _TRAIN else self.test_per_device
            x, y = self.generator.samples(self.device_params[i], rng, n, source_split)
            x.setflags(write=False)
            y.setflags(write=False)
            self._cache[key] = (x, y)
        return self._cache[key]

    def device_train(self, i: int) -> tuple[np.ndarray, np.ndarray]:
        """Device ``i``'s training samples: int8 ``(n,) + sample_shape`` and labels (int64 ``(n,)``)
        or int8 targets ``(n, 1)`` (read-only arrays)."""
        return self._split(i, _TRAIN)

    def device_test(self, i: int) -> tuple[np.ndarray, np.ndarray]:
        """Device ``i``'s held-out samples (``test_per_device`` of them), as :meth:`device_train`."""
        return self._split(i, _TEST)

    def global_test(self) -> tuple[np.ndarray, np.ndarray]:
        """The test samples of the first :data:`GLOBAL_TEST_DEVICES` devices, concatenated."""
        parts = [self.device_test(i) for i in range(min(self.num_devices, GLOBAL_TEST_DEVICES))]
        return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])

    def unseen(self, k: int) -> "FleetWorkload":
        """``k`` further devices never used in training: parameters from the same distribution,
        seeds of another domain (and, for images, samples from the held-out split only)."""
        _check_count(k, "unseen devices")
        return FleetWorkload(self.generator, int(k), self.seed, self.samples_per_device, self.test_per_device,
                             domain=self.domain + 1)

    def validation(self, k: int) -> "FleetWorkload":
        """``k`` further devices to choose settings on (meta step size, local steps, adaptation
        learning rate): the same distribution as :meth:`unseen`, seeds of a third domain
        (``domain + 2``), so settings are never chosen on the unseen test devices."""
        _check_count(k, "validation devices")
        return FleetWorkload(self.generator, int(k), self.seed, self.samples_per_device, self.test_per_device,
                             domain=self.domain + 2)

    def build_model(self, seed: int = 0) -> Sequential:
        """The workload's model (``model_name``) with seeded random initial weights."""
        return self.generator.build_model(int(seed))

    def describe(self) -> dict:
        """A JSON-ready summary (name, task, shapes, exponents, counts, SYNTHETIC flag)."""
        return {"name": self.name, "task": self.task, "num_classes": self.num_classes,
                "sample_shape": list(self.sample_shape), "input_exponent": self.input_exponent,
                "target_exponent": self.target_exponent, "num_devices": self.num_devices,
                "samples_per_device": self.samples_per_device, "test_per_device": self.test_per_device,
                "seed": self.seed, "domain": self.domain, "synthetic": self.synthetic,
                "model": self.model_name, "description": self.description}


def _check_count(value, what: str, minimum: int = 1) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or int(value) < minimum:
        raise WorkloadError(f"{what} must be an integer >= {minimum}, got {value!r}")


def get_workload(name: str, *, devices: int, seed: int = 0, samples_per_device: int | None = None,
                 test_per_device: int = DEFAULT_TEST_PER_DEVICE, **options) -> FleetWorkload:
    """The fleet ``name`` (one of :func:`workload_names`) of ``devices`` devices.

    ``samples_per_device``: training samples per device (default
    :data:`DEFAULT_SAMPLES_PER_DEVICE`); ``test_per_device``: held-out samples per device;
    ``options``: workload options (``digits-style``: ``base``, ``classes_per_device``). Bad names or
    arguments raise :class:`WorkloadError` (one line).

    >>> from tintin.fleet.workloads import get_workload
    >>> fleet = get_workload("sine", devices=4, seed=0)
    >>> x, y = fleet.device_train(0)
    >>> x.dtype, x.shape, y.shape, fleet.task, fleet.synthetic
    (dtype('int8'), (50, 1), (50, 1), 'regression', True)
    """
    if name not in _GENERATORS:
        raise WorkloadError(f"unknown workload {name!r} (available: {', '.join(workload_names())})")
    _check_count(devices, "devices")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise WorkloadError(f"seed must be a non-negative integer, got {seed!r}")
    spd = DEFAULT_SAMPLES_PER_DEVICE[name] if samples_per_device is None else samples_per_device
    _check_count(spd, "samples_per_device")
    _check_count(test_per_device, "test_per_device")
    return FleetWorkload(_GENERATORS[name](options), int(devices), int(seed), int(spd), int(test_per_device))
