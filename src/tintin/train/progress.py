"""Training progress: a rich progress bar on a terminal, plain lines otherwise.

``fit(..., progress=...)`` takes a :class:`Progress` or one of these words:

* ``"auto"`` (the default of :func:`tintin.train.fit`): a live bar when stderr is a terminal,
  nothing otherwise (a library call in a script, a test or a pipe stays quiet);
* ``True``: a live bar on a terminal, :class:`LineProgress` lines otherwise (what ``tintin train``
  shows in a pipe or a CI log: a line at least every 10 seconds with steps done, rate and ETA);
* ``False`` or ``None``: nothing.
"""

from __future__ import annotations

import sys
import time
from typing import Protocol, Union


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


def _duration(seconds: float) -> str:
    seconds = int(round(seconds))
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds // 3600}h{seconds // 60 % 60:02d}m"


class LineProgress:
    """Plain lines for logs, pipes and CI: one per epoch, and within an epoch one at least every
    ``interval`` seconds with the steps done, the rate and the time left (ETA) of the whole run.

    ``clock``: the time source in seconds (``time.monotonic``; tests pass their own)."""

    def __init__(self, stream=None, interval: float = 10.0, clock=time.monotonic):
        self.stream = stream or sys.stderr
        self.interval = interval
        self.clock = clock

    def start(self, epochs, steps_per_epoch, title):
        self.epochs = epochs
        self.steps_per_epoch = steps_per_epoch
        self.t_start = self.t_last = self.clock()
        print(f"{title}: {epochs} epochs x {steps_per_epoch} steps", file=self.stream, flush=True)

    def step(self, epoch, step, loss, accuracy):
        now = self.clock()
        if now - self.t_last < self.interval:
            return
        self.t_last = now
        total = self.epochs * self.steps_per_epoch
        done = epoch * self.steps_per_epoch + step + 1
        rate = done / max(now - self.t_start, 1e-9)
        eta = (total - done) / rate
        print(f"epoch {epoch + 1}/{self.epochs}  step {step + 1}/{self.steps_per_epoch}  "
              f"({100 * done / total:.1f}% of {total} steps)  {rate:,.1f} steps/s  ETA {_duration(eta)}  "
              f"loss {loss:.4f}  train_acc {accuracy:.4f}", file=self.stream, flush=True)

    def epoch_end(self, epoch, metrics):
        parts = [f"epoch {epoch + 1}/{self.epochs}"]
        parts += [f"{k} {v:.4f}" if isinstance(v, float) else f"{k} {v}" for k, v in metrics.items()]
        print("  ".join(parts), file=self.stream, flush=True)

    def close(self):
        pass


class RichProgress:
    """A live bar with epoch, loss and accuracy. The bar is redrawn at most every ``refresh``
    seconds, so that fast steps (batch 1) are not slowed down by drawing."""

    def __init__(self, console=None, refresh: float = 0.1, clock=time.monotonic):
        from rich.console import Console
        self.console = console or Console(stderr=True)
        self.refresh = refresh
        self.clock = clock

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
        self.pending, self.t_last = 0, self.clock()

    def step(self, epoch, step, loss, accuracy):
        self.pending += 1
        now = self.clock()
        if now - self.t_last >= self.refresh or step == self.steps - 1:
            self.bar.update(self.task, advance=self.pending, loss=loss, acc=accuracy,
                            description=f"epoch {epoch + 1}/{self.epochs}")
            self.pending, self.t_last = 0, now

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


ProgressSetting = Union[Progress, str, bool, None]


def resolve_progress(setting: ProgressSetting) -> Progress:
    """The :class:`Progress` a ``progress=`` argument names (see the module docstring)."""
    if setting is None or setting is False:
        return SilentProgress()
    if setting is True:
        return auto_progress(True)
    if isinstance(setting, str):
        if setting != "auto":
            raise ValueError(f"progress must be 'auto', True, False, None or a Progress object, got {setting!r}")
        return RichProgress() if sys.stderr.isatty() else SilentProgress()
    return setting
