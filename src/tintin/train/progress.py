"""Training progress: a rich progress bar on a terminal, plain lines otherwise."""

from __future__ import annotations

import sys
from typing import Protocol


class Progress(Protocol):
    def start(self, epochs: int, steps_per_epoch: int, title: str) -> None: ...
    def step(self, epoch: int, step: int, loss: float, accuracy: float) -> None: ...
    def epoch_end(self, epoch: int, metrics: dict) -> None: ...
    def close(self) -> None: ...


class SilentProgress:
    def start(self, epochs, steps_per_epoch, title): pass
    def step(self, epoch, step, loss, accuracy): pass
    def epoch_end(self, epoch, metrics): pass
    def close(self): pass


class LineProgress:
    """One line per epoch (for logs, pipes and CI)."""

    def __init__(self, stream=None):
        self.stream = stream or sys.stderr

    def start(self, epochs, steps_per_epoch, title):
        self.epochs = epochs
        print(f"{title}: {epochs} epochs x {steps_per_epoch} steps", file=self.stream, flush=True)

    def step(self, epoch, step, loss, accuracy):
        pass

    def epoch_end(self, epoch, metrics):
        parts = [f"epoch {epoch + 1}/{self.epochs}"]
        parts += [f"{k} {v:.4f}" if isinstance(v, float) else f"{k} {v}" for k, v in metrics.items()]
        print("  ".join(parts), file=self.stream, flush=True)

    def close(self):
        pass


class RichProgress:
    """A live bar with epoch, loss and accuracy."""

    def __init__(self, console=None):
        from rich.console import Console
        self.console = console or Console(stderr=True)

    def start(self, epochs, steps_per_epoch, title):
        from rich.progress import (BarColumn, MofNCompleteColumn, Progress as RP, TextColumn,
                                   TimeElapsedColumn, TimeRemainingColumn)
        self.epochs = epochs
        self.steps = steps_per_epoch
        self.bar = RP(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                      TextColumn("loss {task.fields[loss]:.4f}  acc {task.fields[acc]:.3f}"),
                      TimeElapsedColumn(), TimeRemainingColumn(), console=self.console, transient=False)
        self.bar.start()
        self.task = self.bar.add_task(f"{title} epoch 1/{epochs}", total=epochs * steps_per_epoch, loss=0.0, acc=0.0)

    def step(self, epoch, step, loss, accuracy):
        self.bar.update(self.task, advance=1, loss=loss, acc=accuracy,
                        description=f"epoch {epoch + 1}/{self.epochs}")

    def epoch_end(self, epoch, metrics):
        text = "  ".join(f"{k} {v:.4f}" if isinstance(v, float) else f"{k} {v}" for k, v in metrics.items())
        self.bar.console.print(f"epoch {epoch + 1}/{self.epochs}  {text}")

    def close(self):
        self.bar.stop()


def auto_progress(enabled: bool = True) -> Progress:
    """Rich bar on an interactive terminal, plain lines when not, nothing when disabled."""
    if not enabled:
        return SilentProgress()
    if sys.stderr.isatty():
        return RichProgress()
    return LineProgress()
