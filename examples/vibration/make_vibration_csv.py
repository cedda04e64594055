"""Write ``vibration_features.csv``: a SYNTHETIC 3-axis vibration-feature set for the own-data walkthrough
(docs/own-data.md). Seeded; running it again writes the same bytes.

Each row is one machine state seen by a 3-axis accelerometer on a motor bearing housing, summarised
as four features per axis (x, y radial; z axial), in g:

* ``amp1x``: amplitude of the shaft-rate (1x) line, ``amp2x``: of its second harmonic (2x),
* ``hf``: RMS of the high-frequency band (bearing resonances), ``kurt``: kurtosis of the signal.

Classes (the last column, ``condition``), 40 rows each:

* ``normal``: small 1x and 2x, low ``hf``, kurtosis about 3 (Gaussian-like);
* ``imbalance``: large 1x on the radial axes x and y;
* ``misalignment``: large 2x, strongest on the axial axis z, and raised axial 1x;
* ``bearing``: raised ``hf`` on every axis and impulsive signal (kurtosis 5 to 10).

Every amplitude is scattered per row by a log-normal factor (sigma 0.6 in log space: sensor mounting,
load, speed), so the classes overlap a little. This is not measured data: results on it say nothing
about real machines.

    python examples/vibration/make_vibration_csv.py    # writes examples/vibration/vibration_features.csv
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

SEED = 0
ROWS_PER_CLASS = 40
AXES = ("x", "y", "z")
CLASSES = ("normal", "imbalance", "misalignment", "bearing")
# typical (amp1x, amp2x, hf) per axis in g, per class
TYPICAL = {
    "normal":       {"amp1x": (0.05, 0.05, 0.02), "amp2x": (0.02, 0.02, 0.02), "hf": (0.03, 0.03, 0.03)},
    "imbalance":    {"amp1x": (0.30, 0.28, 0.04), "amp2x": (0.03, 0.03, 0.02), "hf": (0.03, 0.03, 0.03)},
    "misalignment": {"amp1x": (0.10, 0.10, 0.18), "amp2x": (0.12, 0.12, 0.25), "hf": (0.03, 0.03, 0.03)},
    "bearing":      {"amp1x": (0.06, 0.06, 0.03), "amp2x": (0.03, 0.03, 0.02), "hf": (0.15, 0.15, 0.10)},
}
KURTOSIS = {"normal": (3.0, 0.3), "imbalance": (2.8, 0.3), "misalignment": (3.2, 0.4), "bearing": (7.0, 1.5)}
SCATTER = 0.6


def rows(rng: np.random.Generator) -> list[list[str]]:
    out = []
    for condition in CLASSES:
        for _ in range(ROWS_PER_CLASS):
            row = []
            for axis in range(len(AXES)):
                for feature in ("amp1x", "amp2x", "hf"):
                    value = TYPICAL[condition][feature][axis] * rng.lognormal(0.0, SCATTER)
                    row.append(f"{value:.3f}")
                mean, spread = KURTOSIS[condition]
                row.append(f"{max(1.5, rng.normal(mean, spread)):.3f}")
            out.append(row + [condition])
    order = rng.permutation(len(out))
    return [out[i] for i in order]


def main() -> Path:
    rng = np.random.default_rng(SEED)
    header = [f"{axis}_{feature}" for axis in AXES for feature in ("amp1x", "amp2x", "hf", "kurt")] + ["condition"]
    lines = [f"# SYNTHETIC 3-axis motor vibration features (g), 4 conditions, made by "
             f"examples/vibration/make_vibration_csv.py with seed {SEED}; not measured data",
             ",".join(header)]
    lines += [",".join(r) for r in rows(rng)]
    path = Path(__file__).with_name("vibration_features.csv")
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


if __name__ == "__main__":
    print(f"wrote {main()}")
