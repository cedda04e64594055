"""SYNTHETIC spectrum-sensing data: is a radio channel occupied or free? A seeded I/Q generator.

No radio data set can be had offline here, so windows of complex baseband samples are generated.
Every output is labelled SYNTHETIC. Classes: ``free`` (0) = noise only, ``occupied`` (1) = a
transmission in noise. One window holds ``length`` complex samples ``r[n]`` (sample rate normalised
to 1), delivered as two channels ``(I, Q) = (Re r, Im r)``::

    free:      r[n] = v[n]
    occupied:  r[n] = sqrt(P) * s[n] * exp(j (2 pi f_o n + theta)) + v[n]

* noise ``v``: circular complex white Gaussian of power ``N0`` (variance ``N0 / 2`` per rail); the
  noise floor ``10 log10 N0 ~ U(-spread/2, +spread/2) dB`` varies per window (``noise_spread_db``,
  default 6 dB) so that a plain energy detector with a fixed threshold is not perfect;
* ``P = N0 * 10 ** (snr_db / 10)``: ``snr_db`` is the signal-to-noise power ratio inside the window;
  ``s`` is normalised to unit mean power over the window;
* carrier frequency offset ``f_o ~ U(-0.05, 0.05)`` cycles/sample, phase ``theta ~ U(0, 2 pi)``;
* modulation, one of three with equal probability:

  - ``bpsk`` / ``qpsk``: random symbols (``+-1``; ``(+-1 +- j) / sqrt 2``), ``sps`` samples per symbol
    drawn from {4, 8}, root-raised-cosine pulse shaping with roll-off ``beta ~ U(0.2, 0.5)`` over
    8 symbols, random symbol timing;
  - ``ofdm``: 64 subcarriers with 52 used (+-1..+-26, DC and band edges empty, as in IEEE 802.11a),
    QPSK on each, cyclic prefix of 16 samples, random start inside an 80-sample symbol.

The SNR of a window is drawn from ``snr_db`` (one value, or uniformly from a list); ``free`` windows
draw one too (recorded in ``extras['*_snr_db']`` for per-SNR evaluation; it has no effect on them).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .dataset import Dataset
from .synthetic import sensor_splits

__all__ = ["SPECTRUM_CLASSES", "MODULATIONS", "SPECTRUM_DEFAULTS", "GENERATOR_VERSION",
           "rrc_taps", "simulate_spectrum", "generate_spectrum"]

SPECTRUM_CLASSES = ("free", "occupied")
#: Codes stored in ``extras['*_modulation']``.
MODULATIONS = ("none", "bpsk", "qpsk", "ofdm")
GENERATOR_VERSION = 1
RRC_SPAN_SYMBOLS = 8
SAMPLES_PER_SYMBOL = (4, 8)
OFDM_FFT, OFDM_CP = 64, 16
OFDM_USED = np.r_[1:27, 38:64]   # subcarriers +-1..+-26 in FFT order (52 used)
CFO_LIMIT = 0.05                 # cycles per sample

SPECTRUM_DEFAULTS: dict[str, Any] = {
    "n_per_class": 1000,
    "n_test_per_class": 500,
    "length": 128,
    "snr_db": 2.0,
    "test_snr_db": None,
    "noise_spread_db": 6.0,
    "seed": 0,
}


def rrc_taps(beta: np.ndarray, sps: int, span: int = RRC_SPAN_SYMBOLS) -> np.ndarray:
    """Root-raised-cosine impulse responses, one row per roll-off in ``beta`` (``(B,)``, in (0, 1]).

    ``span`` symbols long at ``sps`` samples per symbol: ``span * sps + 1`` taps, unit energy per row.
    """
    beta = np.asarray(beta, dtype=np.float64)[:, None]
    t = (np.arange(span * sps + 1) - span * sps / 2) / sps          # time in symbols
    t = np.broadcast_to(t, (beta.shape[0], t.size))
    with np.errstate(divide="ignore", invalid="ignore"):
        num = np.sin(np.pi * t * (1 - beta)) + 4 * beta * t * np.cos(np.pi * t * (1 + beta))
        den = np.pi * t * (1 - (4 * beta * t) ** 2)
        h = num / den
    at_zero = np.isclose(t, 0.0)
    at_pole = np.isclose(np.abs(4 * beta * t), 1.0)
    pole_value = beta / np.sqrt(2) * ((1 + 2 / np.pi) * np.sin(np.pi / (4 * beta))
                                      + (1 - 2 / np.pi) * np.cos(np.pi / (4 * beta)))
    h = np.where(at_zero, 1 - beta + 4 * beta / np.pi, np.where(at_pole, pole_value, h))
    return h / np.sqrt(np.sum(h**2, axis=1, keepdims=True))


def _single_carrier(rng: np.random.Generator, qpsk: np.ndarray, length: int) -> np.ndarray:
    """Pulse-shaped BPSK (``qpsk`` False) or QPSK (True) windows, complex ``(len(qpsk), length)``."""
    n = qpsk.size
    out = np.empty((n, length), dtype=np.complex128)
    sps_all = rng.choice(np.array(SAMPLES_PER_SYMBOL), n)
    beta_all = rng.uniform(0.2, 0.5, n)
    for sps in SAMPLES_PER_SYMBOL:
        idx = np.flatnonzero(sps_all == sps)
        if idx.size == 0:
            continue
        taps = rrc_taps(beta_all[idx], sps)                                    # (B, T)
        n_taps = taps.shape[1]
        n_sym = -(-(length + RRC_SPAN_SYMBOLS * sps) // sps) + 2
        bits = rng.integers(0, 2, (idx.size, n_sym, 2)) * 2 - 1
        symbols = np.where(qpsk[idx, None], (bits[..., 0] + 1j * bits[..., 1]) / np.sqrt(2), bits[..., 0])
        upsampled = np.zeros((idx.size, n_sym * sps), dtype=np.complex128)
        upsampled[:, ::sps] = symbols
        timing = rng.integers(0, sps, idx.size)
        start = (n_taps - 1) + timing                                         # past the transient
        # y[m] = sum_k taps[k] * u[m - k] evaluated for m = start .. start + length - 1
        window = np.zeros((idx.size, length), dtype=np.complex128)
        rows = np.arange(idx.size)[:, None]
        cols = start[:, None] + np.arange(length)
        for k in range(n_taps):
            window += taps[:, k:k + 1] * upsampled[rows, cols - k]
        out[idx] = window
    return out


def _ofdm(rng: np.random.Generator, n: int, length: int) -> np.ndarray:
    """OFDM windows (64 subcarriers, 52 used with QPSK, CP 16), complex ``(n, length)``."""
    sym_len = OFDM_FFT + OFDM_CP
    n_sym = -(-length // sym_len) + 1
    bits = rng.integers(0, 2, (n, n_sym, OFDM_USED.size, 2)) * 2 - 1
    grid = np.zeros((n, n_sym, OFDM_FFT), dtype=np.complex128)
    grid[:, :, OFDM_USED] = (bits[..., 0] + 1j * bits[..., 1]) / np.sqrt(2)
    body = np.fft.ifft(grid, axis=2)
    stream = np.concatenate([body[:, :, -OFDM_CP:], body], axis=2).reshape(n, n_sym * sym_len)
    start = rng.integers(0, sym_len, n)
    return stream[np.arange(n)[:, None], start[:, None] + np.arange(length)]


def simulate_spectrum(rng: np.random.Generator, labels: np.ndarray, length: int,
                      snr_choices: list[float], noise_spread_db: float
                      ) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Generate one window per label (0 free, 1 occupied) as float64 ``(N, 2, length)`` (I, Q).

    Returns the windows and per-window metadata: ``snr_db`` (float64), ``modulation`` (int8 code
    into :data:`MODULATIONS`), ``noise_floor_db`` and ``cfo`` (cycles/sample, 0 when free).
    """
    n = len(labels)
    snr_db = rng.choice(np.asarray(snr_choices, dtype=np.float64), n)
    floor_db = rng.uniform(-noise_spread_db / 2, noise_spread_db / 2, n)
    noise_power = 10.0 ** (floor_db / 10.0)
    noise = (rng.standard_normal((n, length)) + 1j * rng.standard_normal((n, length))) \
        * np.sqrt(noise_power / 2.0)[:, None]

    occupied = np.flatnonzero(labels == 1)
    modulation = np.zeros(n, dtype=np.int8)
    modulation[occupied] = rng.integers(1, len(MODULATIONS), occupied.size)
    cfo = np.zeros(n)
    cfo[occupied] = rng.uniform(-CFO_LIMIT, CFO_LIMIT, occupied.size)
    theta = rng.uniform(0.0, 2.0 * np.pi, n)

    signal = np.zeros((n, length), dtype=np.complex128)
    single = np.flatnonzero((modulation == 1) | (modulation == 2))
    if single.size:
        signal[single] = _single_carrier(rng, modulation[single] == 2, length)
    multi = np.flatnonzero(modulation == 3)
    if multi.size:
        signal[multi] = _ofdm(rng, multi.size, length)
    if occupied.size:
        s = signal[occupied]
        s /= np.sqrt(np.mean(np.abs(s) ** 2, axis=1, keepdims=True))
        rotation = np.exp(1j * (2.0 * np.pi * cfo[occupied, None] * np.arange(length) + theta[occupied, None]))
        power = noise_power[occupied] * 10.0 ** (snr_db[occupied] / 10.0)
        signal[occupied] = np.sqrt(power)[:, None] * s * rotation
    r = signal + noise
    x = np.stack([r.real, r.imag], axis=1)
    meta = {"snr_db": snr_db, "modulation": modulation, "noise_floor_db": floor_db, "cfo": cfo}
    return x, meta


def generate_spectrum(n_per_class: int, n_test_per_class: int, length: int, snr_db: list[float],
                      test_snr_db: list[float] | None, noise_spread_db: float, seed: int) -> Dataset:
    """Build the SYNTHETIC ``spectrum`` data set (options validated by the registry).

    Train and test use independent child seeds of ``np.random.SeedSequence(seed)``. I and Q are
    standardised with the training split's per-channel statistics (not per window: absolute energy
    stays informative, as for a real receiver with fixed gain) and quantised with exponent -5.
    """
    sp = sensor_splits(lambda rng, labels, snr: simulate_spectrum(rng, labels, length, snr, noise_spread_db), len(SPECTRUM_CLASSES),
                       n_per_class, n_test_per_class, snr_db, test_snr_db, seed)
    snr_text = sp.snr_text
    return Dataset(
        name="spectrum", x_train=sp.x_train, y_train=sp.y_train, x_test=sp.x_test, y_test=sp.y_test,
        input_exponent=sp.input_exponent, num_classes=len(SPECTRUM_CLASSES), class_names=SPECTRUM_CLASSES,
        synthetic=True,
        description=(f"SYNTHETIC spectrum sensing: {length} I/Q samples, free (noise) vs occupied "
                     f"(BPSK/QPSK/OFDM), SNR {snr_text}, noise floor +-{noise_spread_db / 2:g} dB, seed {seed}"),
        citation="generated by tintin.data.spectrum; not measured data",
        source=f"tintin.data.spectrum generator v{GENERATOR_VERSION}, seed {seed}",
        extras=sp.extras,
    )
