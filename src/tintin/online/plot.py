"""PNG of windowed prequential accuracy over a stream, drift points marked."""

from __future__ import annotations

import io
from pathlib import Path

from ..train.checkpoint import atomic_write
from .prequential import StreamComparison

COLOURS = {"frozen": "#7f7f7f", "integer": "#d62728", "float": "#1f77b4", "river": "#2ca02c"}
LABELS = {"frozen": "frozen (no learning)", "integer": "integer online (tintin)", "float": "float32 online (PyTorch)",
          "river": "river SoftmaxRegression"}


def plot_windowed_accuracy(result: StreamComparison, path: str | Path) -> Path:
    """Write the windowed accuracy of every learner of ``result`` to ``path`` (PNG, atomically).
    Needs matplotlib (``pip install 'tintin[plot]'``)."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as exc:  # pragma: no cover - optional extra
        from ..reference import MissingExtraError
        raise MissingExtraError("plotting needs matplotlib (pip install 'tintin[plot]')") from exc
    stream = result.stream
    fig, ax = plt.subplots(figsize=(9, 4.2))
    for name, score in result.scores.items():
        ax.plot(range(1, len(score.correct) + 1), 100 * score.windowed, color=COLOURS.get(name),
                label=f"{LABELS.get(name, name)}: {100 * score.accuracy:.1f}%", linewidth=1.2)
    for i, d in enumerate(stream.drift_points):
        ax.axvline(d, color="black", linestyle="--", linewidth=0.8, label="drift point" if i == 0 else None)
    ax.set_xlabel("sample")
    ax.set_ylabel(f"accuracy over the last {result.window} samples (%)")
    ax.set_ylim(0, 101)
    ax.set_xlim(0, len(stream))
    ax.set_title(f"{stream.info.get('dataset', '')} {stream.name}, update {result.update}, "
                 f"label rate {stream.label_rate:.2f}", fontsize=10)
    ax.legend(loc="lower left", fontsize=8)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110)
    plt.close(fig)
    return atomic_write(path, buf.getvalue())
