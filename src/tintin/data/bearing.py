"""SYNTHETIC bearing-vibration data: a seeded generator of accelerometer windows at 12 kHz.

No public bearing data set can be had offline here (the CWRU files are not packaged), so this module
generates signals from the standard model of localised rolling-element bearing faults (McFadden &
Smith 1984; Randall & Antoni 2011). Every output is labelled SYNTHETIC.

Generative model of one window of ``length`` samples at ``fs = 12 000 Hz`` (times ``t = n / fs``)::

    x(t) = g * ( shaft(t) + impacts(t) + sigma * w(t) ),   w ~ N(0, 1) white

* shaft speed ``f_r = rpm / 60`` with ``rpm = 1797 * (1 + 0.01 * z)``, ``z ~ N(0, 1)`` clipped to +-3;
* ``shaft(t) = sum_{h=1..3} a_h sin(2 pi h f_r t + phi_h)`` with ``a_1 ~ U(0.1, 0.5)``,
  ``a_2 ~ U(0.05, 0.25)``, ``a_3 ~ U(0, 0.1)``, ``phi_h ~ U(0, 2 pi)`` (imbalance, misalignment);
* ``impacts(t) = c * sum_k A_k h(t - t_k)`` for the fault classes (zero for ``normal``) with the
  ringing of a structural resonance ``h(tau) = exp(-2 pi zeta f_n tau) sin(2 pi f_n tau)`` for
  ``tau >= 0``, ``f_n ~ U(2000, 4000) Hz`` and damping ``zeta ~ U(0.04, 0.10)`` per window;
* impact times ``t_k``: period ``1 / (order * f_r)`` with the fault order from the bearing geometry
  (inner: BPFI, outer: BPFO, ball: 2 x BSF, because a ball defect strikes both races), each interval
  jittered by 1 % (``N(0, 0.01)``, clipped to +-3 %: roller slip), random phase;
* impact amplitudes ``A_k = u_k * m(t_k)``, ``u_k ~ U(0.8, 1.2)``; ``m = 1`` for the outer race (the
  defect sits in the load zone); inner race and ball pass through the load zone once per shaft
  (inner) or cage (ball, FTF) revolution: ``m(t) = 1 - d (1 - cos(2 pi f t + psi)) / 2`` with
  depth ``d ~ U(0.5, 0.9)``, phase ``psi ~ U(0, 2 pi)``;
* ``c`` normalises the impact component to unit RMS over the window, and the noise level is
  ``sigma = 10 ** (-snr_db / 20)``: ``snr_db`` is the fault-signature-to-noise power ratio. The
  ``normal`` class draws ``snr_db`` and ``sigma`` the same way (no impacts), so the noise level
  carries no label information;
* a per-window sensor gain ``g = 10 ** (G / 20)``, ``G ~ U(-3, 3) dB`` (mounting, load).

Geometry: a 6205-2RS deep-groove ball bearing (9 balls, ball diameter 7.94 mm, pitch diameter
39.04 mm, contact angle 0) gives BPFO = 3.585, BPFI = 5.415, BSF = 2.357 and FTF = 0.398 times the
shaft rate, i.e. about 107, 162, 141 (2 x BSF) and 12 Hz at 1797 rpm.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from .dataset import Dataset
from .synthetic import sensor_splits

__all__ = [
    "SAMPLE_RATE_HZ", "NOMINAL_RPM", "BEARING_CLASSES", "BearingGeometry", "BEARING_6205",
    "BEARING_DEFAULTS", "GENERATOR_VERSION", "simulate_bearing", "generate_bearing",
]

SAMPLE_RATE_HZ = 12_000.0
NOMINAL_RPM = 1797.0
BEARING_CLASSES = ("normal", "inner", "outer", "ball")
GENERATOR_VERSION = 1
#: Samples of ringing computed per impact (13.3 ms: the slowest decay has fallen below e^-6.7).
RING_SAMPLES = 160

BEARING_DEFAULTS: dict[str, Any] = {
    "n_per_class": 500,
    "n_test_per_class": 200,
    "length": 1024,
    "snr_db": 0.0,
    "test_snr_db": None,
    "seed": 0,
}


@dataclass(frozen=True)
class BearingGeometry:
    """Rolling-element bearing geometry; fault frequencies are returned as multiples of shaft speed."""

    n_balls: int = 9
    ball_diameter_mm: float = 7.94
    pitch_diameter_mm: float = 39.04
    contact_angle_deg: float = 0.0

    @property
    def _ratio(self) -> float:
        return self.ball_diameter_mm / self.pitch_diameter_mm * math.cos(math.radians(self.contact_angle_deg))

    @property
    def ftf(self) -> float:
        """Fundamental train (cage) frequency / shaft frequency: ``(1 - r) / 2``."""
        return 0.5 * (1.0 - self._ratio)

    @property
    def bpfo(self) -> float:
        """Ball-pass frequency, outer race / shaft frequency: ``n (1 - r) / 2``."""
        return 0.5 * self.n_balls * (1.0 - self._ratio)

    @property
    def bpfi(self) -> float:
        """Ball-pass frequency, inner race / shaft frequency: ``n (1 + r) / 2``."""
        return 0.5 * self.n_balls * (1.0 + self._ratio)

    @property
    def bsf(self) -> float:
        """Ball spin frequency / shaft frequency: ``D / (2 d) (1 - r^2)``."""
        return self.pitch_diameter_mm / (2.0 * self.ball_diameter_mm) * (1.0 - self._ratio**2)


#: SKF 6205-2RS, the drive-end bearing of the well-known Case Western test rig.
BEARING_6205 = BearingGeometry()


_CHUNK = 256


def _ring(times: np.ndarray, amplitude: np.ndarray, f_n: np.ndarray, zeta: np.ndarray,
          length: int, fs: np.ndarray) -> np.ndarray:
    """Sum of decaying resonances ``A_k h(t - t_k)`` sampled at ``n / fs``, ``n = 0..length-1``.

    ``times`` and ``amplitude`` are ``(F, M)`` (seconds, unitless), ``f_n``, ``zeta`` and the sample
    rates ``fs`` ``(F,)``. Each impact rings for :data:`RING_SAMPLES` samples from the first sample at
    or after ``t_k``; the fractional start is kept exactly (``tau`` is measured from ``t_k``).
    Returns ``(F, length)``.
    """
    f = times.shape[0]
    first = np.ceil(times * fs[:, None]).astype(np.int64)
    pos = first[:, :, None] + np.arange(RING_SAMPLES)                       # (F, M, R)
    tau = pos / fs[:, None, None] - times[:, :, None]
    fn = f_n[:, None, None]
    values = amplitude[:, :, None] * np.exp(-2.0 * np.pi * zeta[:, None, None] * fn * tau) \
        * np.sin(2.0 * np.pi * fn * tau)
    inside = (pos >= 0) & (pos < length)
    flat = (np.arange(f)[:, None, None] * length + pos)[inside]
    return np.bincount(flat, weights=values[inside], minlength=f * length).reshape(f, length)


def _load_zone(t: np.ndarray, freq: np.ndarray, depth: np.ndarray, phase: np.ndarray) -> np.ndarray:
    return 1.0 - depth * (1.0 - np.cos(2.0 * np.pi * freq * t + phase)) / 2.0


def simulate_bearing(rng: np.random.Generator, labels: np.ndarray, length: int,
                     snr_choices: list[float],
                     geometry: BearingGeometry = BEARING_6205,
                     nominal_rpm: float = NOMINAL_RPM,
                     resonance_hz: tuple[float, float] = (2000.0, 4000.0),
                     samples_per_rev: float | None = None) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Generate one window per label (0 normal, 1 inner, 2 outer, 3 ball) as float64 ``(N, 1, length)``.

    ``nominal_rpm`` is the shaft speed the per-window speeds scatter around (1 % spread); the
    default is the data set's 1797 rpm, other values model a machine running at another speed.
    ``resonance_hz``: the range ``(low, high)`` of the uniform draw of ``f_n`` (default the data
    set's 2-4 kHz; a narrower band models one machine's structural resonance). Its bounds change no
    other draw.

    ``samples_per_rev``: ``None`` (default) samples every window at the fixed clock
    :data:`SAMPLE_RATE_HZ`. A number samples synchronously with the shaft instead, as an ADC clocked
    by a shaft encoder with that many pulses per revolution does (order tracking): window ``i`` is
    sampled at ``samples_per_rev * f_r[i]`` Hz, so shaft harmonics and fault impacts fall at the
    same samples per period at any speed, while the structural resonance, fixed in Hz, moves in
    orders. It changes no draw.

    Returns the windows and per-window metadata arrays ``snr_db``, ``shaft_rpm``, ``resonance_hz``.
    The model is described in the module docstring; draws come from ``rng`` in a fixed order.
    """
    n = len(labels)
    rpm = float(nominal_rpm) * (1.0 + 0.01 * np.clip(rng.standard_normal(n), -3.0, 3.0))
    f_r = rpm / 60.0
    fs = np.full(n, SAMPLE_RATE_HZ) if samples_per_rev is None else float(samples_per_rev) * f_r
    t = np.arange(length)[None, :] / fs[:, None]                             # (N, length) seconds
    gain = 10.0 ** (rng.uniform(-3.0, 3.0, n) / 20.0)
    snr_db = rng.choice(np.asarray(snr_choices, dtype=np.float64), n)
    amp = np.stack([rng.uniform(0.1, 0.5, n), rng.uniform(0.05, 0.25, n), rng.uniform(0.0, 0.1, n)], 1)
    phi = rng.uniform(0.0, 2.0 * np.pi, (n, 3))
    f_n = rng.uniform(float(resonance_hz[0]), float(resonance_hz[1]), n)
    zeta = rng.uniform(0.04, 0.10, n)
    depth = rng.uniform(0.5, 0.9, n)
    psi = rng.uniform(0.0, 2.0 * np.pi, n)
    noise = rng.standard_normal((n, length))

    shaft = np.zeros((n, length))
    for h in range(3):
        shaft += amp[:, h:h + 1] * np.sin(2.0 * np.pi * (h + 1) * f_r[:, None] * t + phi[:, h:h + 1])

    orders = np.array([0.0, geometry.bpfi, geometry.bpfo, 2.0 * geometry.bsf])
    impacts = np.zeros((n, length))
    faulty = np.flatnonzero(labels != 0)
    if faulty.size:
        fr = f_r[faulty]
        period = 1.0 / (orders[labels[faulty]] * fr)                         # seconds
        ring_s = RING_SAMPLES / fs[faulty]
        window_s = length / fs[faulty]
        m = int(math.ceil(np.max((window_s + ring_s) / (period * 0.97)))) + 2  # impacts per window
        start = -ring_s - rng.uniform(0.0, 1.0, faulty.size) * period
        jitter = 1.0 + 0.01 * np.clip(rng.standard_normal((faulty.size, m)), -3.0, 3.0)
        intervals = period[:, None] * jitter
        times = start[:, None] + np.concatenate([np.zeros((faulty.size, 1)),
                                                 np.cumsum(intervals[:, :-1], axis=1)], axis=1)
        strength = rng.uniform(0.8, 1.2, (faulty.size, m))
        lab = labels[faulty][:, None]
        mod_freq = np.where(lab == 1, fr[:, None], np.where(lab == 3, geometry.ftf * fr[:, None], 0.0))
        modulation = np.where(lab == 2, 1.0,
                              _load_zone(times, mod_freq, depth[faulty][:, None], psi[faulty][:, None]))
        amplitude = strength * modulation                                     # (F, M)

        component = np.empty((faulty.size, length))
        for lo in range(0, faulty.size, _CHUNK):                              # bounded memory
            hi = min(lo + _CHUNK, faulty.size)
            component[lo:hi] = _ring(times[lo:hi], amplitude[lo:hi], f_n[faulty][lo:hi],
                                     zeta[faulty][lo:hi], length, fs[faulty][lo:hi])
        rms = np.maximum(np.sqrt(np.mean(component**2, axis=1, keepdims=True)), 1e-12)
        impacts[faulty] = component / rms

    sigma = 10.0 ** (-snr_db / 20.0)
    x = gain[:, None] * (shaft + impacts + sigma[:, None] * noise)
    meta = {"snr_db": snr_db, "shaft_rpm": rpm, "resonance_hz": f_n}
    return x[:, None, :], meta


def generate_bearing(n_per_class: int, n_test_per_class: int, length: int, snr_db: list[float],
                     test_snr_db: list[float] | None, seed: int) -> Dataset:
    """Build the SYNTHETIC ``bearing`` data set (options validated by the registry).

    Train and test come from independent child seeds of ``np.random.SeedSequence(seed)``, so the test
    split does not change when only ``n_per_class`` changes. Windows are standardised with the
    training split's mean and standard deviation and quantised with exponent -5 (+-3.97 sigma).
    """
    sp = sensor_splits(lambda rng, labels, snr: simulate_bearing(rng, labels, length, snr), len(BEARING_CLASSES),
                       n_per_class, n_test_per_class, snr_db, test_snr_db, seed)
    snr_text = sp.snr_text
    return Dataset(
        name="bearing", x_train=sp.x_train, y_train=sp.y_train, x_test=sp.x_test, y_test=sp.y_test,
        input_exponent=sp.input_exponent, num_classes=len(BEARING_CLASSES), class_names=BEARING_CLASSES,
        synthetic=True,
        description=(f"SYNTHETIC bearing vibration at 12 kHz ({length} samples, 6205-2RS geometry, "
                     f"~1797 rpm), normal/inner/outer/ball faults, SNR {snr_text}, seed {seed}"),
        citation=("generated by tintin.data.bearing (model after McFadden & Smith 1984, "
                  "J. Sound Vib. 96(1); Randall & Antoni 2011, MSSP 25(2)); not measured data"),
        source=f"tintin.data.bearing generator v{GENERATOR_VERSION}, seed {seed}",
        extras=sp.extras,
    )
