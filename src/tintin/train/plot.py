"""Training curves as a PNG: loss and accuracy per epoch, integer training beside its float32 twin.

    from tintin.train.plot import history_png
    png = history_png({"integer": [vars(r) for r in result.history], "float": None})
    open("history.png", "wb").write(png)

Needs matplotlib (the ``plot`` extra); without it :class:`PlotUnavailableError` says how to install it.
"""

from __future__ import annotations

import io

from tintin.errors import TintinError


class PlotUnavailableError(TintinError, RuntimeError):
    """matplotlib (the ``plot`` extra) is not installed."""


def history_png(history: dict, title: str = "training") -> bytes:
    """The PNG bytes of the curves in ``history`` (``{"integer": [...], "float": [...] | None}``, each
    a list of per-epoch dicts with ``train_loss``, ``train_accuracy`` and optionally
    ``test_accuracy``, as ``tintin train`` writes to ``history.json``)."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise PlotUnavailableError("no training-curve plot: matplotlib is not installed "
                                   "(pip install 'tintin[plot]')") from None
    fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(10, 4))
    for label, style in (("integer", "-"), ("float", "--")):
        records = history.get(label) or []
        if not records:
            continue
        epochs = [r["epoch"] + 1 for r in records]
        ax_loss.plot(epochs, [r["train_loss"] for r in records], style, marker="o", ms=3, label=f"{label} train")
        ax_acc.plot(epochs, [r["train_accuracy"] for r in records], style, marker="o", ms=3, label=f"{label} train")
        tested = [(r["epoch"] + 1, r["test_accuracy"]) for r in records if r.get("test_accuracy") is not None]
        if tested:
            ax_acc.plot(*zip(*tested), style, marker="s", ms=4, label=f"{label} test")
    ax_loss.set(xlabel="epoch", ylabel="training loss", title="loss")
    ax_acc.set(xlabel="epoch", ylabel="accuracy", title="accuracy", ylim=(0, 1))
    for ax in (ax_loss, ax_acc):
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle(title)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100)
    plt.close(fig)
    return buf.getvalue()
