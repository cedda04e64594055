"""Training state on the host: save it, restore it, resume bit for bit.

A *training-state file* (``.safetensors``, no pickle) holds everything a run needs to continue as
if it had never stopped:

* tensors ``param:<name>`` (the master mantissas: int8 / int16 weights, int32 biases) and
  ``momentum:<name>`` (int64, when integer momentum is on), ``remainder:<name>`` (int8, the
  error-feedback remainder of :mod:`tintin.optim.sgd`, when it is on), ``row_exp:<name>`` (int8, the
  per-row weight exponents of :mod:`tintin.numerics.scale_rows`, when the model has them), plus free ``array:<name>`` tensors of
  the owner (e.g. the online learner's replay buffer);
* metadata ``format`` = ``"tintin-training-state"``, ``format_version`` = ``1`` and ``tintin`` = JSON
  with the model ``spec``, every parameter's scale ``[S, U, D]``, bits and trainable rows, and the
  owner's ``state``: for :func:`tintin.train.fit` the training settings, the rounding stream
  ``(seed, step)`` (the optimiser step), the position in the data order ``(epoch, step)`` (the
  learning-rate schedule follows from the epoch), the running sums of the epoch and the history.

Files are written atomically: a temporary file in the same directory, flushed and fsynced, renamed
over the old one, then the directory is fsynced; an interrupted save leaves the previous state.

:class:`FitCheckpointer` plugs into :func:`tintin.train.fit`: it saves every ``every`` steps, and
while it is active Ctrl-C (SIGINT) no longer kills the step in the middle: the step finishes, the
state is saved and :class:`TrainingInterrupted` (exit status 130) is raised. A second Ctrl-C stops at once.

    ckpt = FitCheckpointer("runs/a/checkpoint.safetensors", every=100)
    fit(model, x, y, config, checkpointer=ckpt)            # interrupted: state saved
    fit(model2, x, y, config, checkpointer=FitCheckpointer(ckpt.path, every=100, resume=True))
"""

from __future__ import annotations

import json
import os
import signal
import threading
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from tintin.errors import TintinError

from ..numerics import QTensor, Scale

FORMAT_NAME = "tintin-training-state"
FORMAT_VERSION = 1


class CheckpointError(TintinError, ValueError):
    """A training-state file is missing, corrupt, or belongs to another model or run."""


class TrainingInterrupted(TintinError):
    """Training stopped on Ctrl-C after saving a resumable state (exit status 130).

    A :class:`TintinError`, not a ``KeyboardInterrupt``: the state is consistent and saved, so
    callers (and the command line) handle it like any other tintin error."""

    exit_code = 130


def atomic_write(path: str | os.PathLike, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically (:func:`tintin.io.atomic.atomic_write_bytes`: temp file,
    fsync, rename, fsync of the directory, temporaries removed); an unwritable path raises
    :class:`CheckpointError`."""
    from ..io.atomic import OutputWriteError, atomic_write_bytes

    try:
        return atomic_write_bytes(path, data)
    except OutputWriteError as exc:
        raise CheckpointError(str(exc)) from None


def _canonical(obj) -> str:
    return json.dumps(obj, sort_keys=True)


def save_training_state(path: str | os.PathLike, model, state: dict,
                        arrays: dict[str, np.ndarray] | None = None) -> Path:
    """Save ``model``'s parameters (values, scales, momentum, trainable rows), the JSON-able
    ``state`` and extra ``arrays`` to ``path`` atomically."""
    from safetensors.numpy import save

    tensors: dict[str, np.ndarray] = {}
    params = {}
    for p in model.parameters():
        tensors[f"param:{p.name}"] = np.ascontiguousarray(p.value.m)
        if p.momentum is not None:
            tensors[f"momentum:{p.name}"] = np.ascontiguousarray(p.momentum.astype(np.int64))
        if p.remainder is not None:
            tensors[f"remainder:{p.name}"] = np.ascontiguousarray(p.remainder.astype(np.int8))
        if p.row_exp is not None:
            tensors[f"row_exp:{p.name}"] = np.ascontiguousarray(p.row_exp.astype(np.int8))
        params[p.name] = {"scale": list(p.value.scale.as_tuple()), "bits": p.bits, "trainable": p.trainable,
                          "trainable_rows": None if p.trainable_rows is None else [int(r) for r in p.trainable_rows]}
        if p.remainder is not None and p.feedback_bits != 8:  # 8-bit remainders are written as before
            params[p.name]["feedback_bits"] = p.feedback_bits
    for name, arr in (arrays or {}).items():
        tensors[f"array:{name}"] = np.ascontiguousarray(arr)
    doc = {"spec": model.spec(), "parameters": params, "state": state}
    from ..io.model_file import canonical_safetensors

    blob = save(tensors, metadata={"format": FORMAT_NAME, "format_version": str(FORMAT_VERSION),
                                   "tintin": json.dumps(doc, sort_keys=True)})
    return atomic_write(path, canonical_safetensors(blob))  # same state, same bytes


def read_training_state(path: str | os.PathLike) -> tuple[dict, dict[str, np.ndarray]]:
    """``(document, tensors)`` of a training-state file, validated (no model needed)."""
    from safetensors import SafetensorError
    from safetensors.numpy import load

    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"training state not found: {path}")
    data = path.read_bytes()
    try:
        tensors = load(data)
        header = json.loads(data[8:8 + int.from_bytes(data[:8], "little")])
    except (SafetensorError, ValueError, UnicodeDecodeError, OverflowError) as exc:
        raise CheckpointError(f"{path} is not a valid training state (corrupt or truncated: "
                              f"{str(exc).splitlines()[0][:80]})") from None
    meta = header.get("__metadata__") or {} if isinstance(header, dict) else {}
    if meta.get("format") != FORMAT_NAME:
        raise CheckpointError(f"{path} is not a tintin training state")
    if meta.get("format_version") != str(FORMAT_VERSION):
        raise CheckpointError(f"{path}: training-state version {meta.get('format_version')!r} is not supported "
                              f"(this tintin reads {FORMAT_VERSION})")
    try:
        doc = json.loads(meta["tintin"])
        doc["spec"], doc["parameters"], doc["state"]
    except (KeyError, TypeError, json.JSONDecodeError):
        raise CheckpointError(f"{path}: training-state metadata is missing or corrupt") from None
    return doc, tensors


def load_training_state(path: str | os.PathLike, model) -> tuple[dict, dict[str, np.ndarray]]:
    """Restore the parameters saved in ``path`` into ``model`` (which must have the same spec);
    returns ``(state, arrays)`` as given to :func:`save_training_state`."""
    from ..io.model_file import remainder_bits, remainder_problem, stored_value_range

    doc, tensors = read_training_state(path)
    if _canonical(doc["spec"]) != _canonical(json.loads(json.dumps(model.spec()))):
        raise CheckpointError(f"{path} holds the state of another model ({doc['spec'].get('name')!r} with other "
                              "layers or settings)")
    restored = []
    for p in model.parameters():
        m = tensors.get(f"param:{p.name}")
        entry = doc["parameters"].get(p.name)
        if m is None or entry is None or m.shape != p.value.m.shape or m.dtype != p.value.m.dtype:
            raise CheckpointError(f"{path}: parameter {p.name} is missing or has the wrong shape or type")
        try:
            scale = Scale.from_tuple(entry["scale"])
        except (KeyError, TypeError, ValueError):
            raise CheckpointError(f"{path}: parameter {p.name} has no valid scale") from None
        mom = tensors.get(f"momentum:{p.name}")
        if mom is not None and (mom.shape != m.shape or mom.dtype != np.int64):
            raise CheckpointError(f"{path}: momentum of {p.name} has the wrong shape or type")
        rem = tensors.get(f"remainder:{p.name}")
        if rem is not None and (rem.shape != m.shape or rem.dtype != np.int8):
            raise CheckpointError(f"{path}: error-feedback remainder of {p.name} has the wrong shape or type")
        feedback_bits = remainder_bits(entry, rem is not None, p.name, lambda msg: CheckpointError(f"{path}: {msg}"))
        problem = None if rem is None else remainder_problem(f"remainder:{p.name}", rem, feedback_bits)
        if problem:
            raise CheckpointError(f"{path}: {problem}")
        row_exp = tensors.get(f"row_exp:{p.name}")
        if (row_exp is None) != (p.row_exp is None) or row_exp is not None and (
                row_exp.shape != m.shape[:1] or row_exp.dtype != np.int8 or row_exp.size and (
                    int(row_exp.min()) < 0 or int(row_exp.max()) > p.row_limit)):
            raise CheckpointError(f"{path}: per-row exponents of {p.name} are missing, unexpected or out of "
                                  f"[0, {p.row_limit}]")
        for arr, is_momentum in ((m, False), (mom, True)):
            limit, what = stored_value_range(p, momentum=is_momentum)
            if arr is not None and arr.size and (int(arr.min()) < -limit or int(arr.max()) > limit):
                raise CheckpointError(f"{path}: {p.name} holds values outside [{-limit}, {limit}] ({what})")
        restored.append((p, m, scale, mom, rem, entry, row_exp, feedback_bits))
    for p, m, scale, mom, rem, entry, row_exp, feedback_bits in restored:
        p.assign(QTensor(m.copy(), scale))
        if row_exp is not None:
            p.row_exp = row_exp.copy()
        p.momentum = None if mom is None else mom.copy()
        p.remainder = None if rem is None else rem.copy()
        p.feedback_bits = feedback_bits
        p.trainable = bool(entry.get("trainable", True))
        rows = entry.get("trainable_rows")
        p.trainable_rows = None if rows is None else np.asarray(rows, dtype=np.int64)
        p.grad = None
    arrays = {k[len("array:"):]: v for k, v in tensors.items() if k.startswith("array:")}
    return doc["state"], arrays


@dataclass
class FitPosition:
    """Where :func:`tintin.train.fit` is: epoch, steps done in it and the epoch's running sums, the
    finished epochs' history and totals."""

    epoch: int = 0
    step: int = 0
    loss_sum: float = 0.0
    correct: int = 0
    seen: int = 0
    epoch_seconds: float = 0.0
    history: list = field(default_factory=list)
    train_seconds: float = 0.0
    samples: int = 0

    def to_dict(self) -> dict:
        d = dict(vars(self))
        d["history"] = [dict(vars(h)) for h in self.history]
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "FitPosition":
        from .loop import EpochRecord

        d = dict(d)
        d["history"] = [EpochRecord(**h) for h in d.get("history", [])]
        return cls(**d)


class FitCheckpointer:
    """Saves :func:`tintin.train.fit`'s state to ``path`` every ``every`` training steps
    (counted by the rounding stream; 0: only on Ctrl-C) and, with ``resume=True``, continues from the state saved there.

    ``info``: JSON-able data stored beside the state (e.g. the command line settings)."""

    def __init__(self, path: str | os.PathLike, every: int = 0, resume: bool = False, info: dict | None = None,
                 catch_sigint: bool = True):
        if every < 0:
            raise CheckpointError(f"checkpoint interval must be >= 0 steps, got {every}")
        self.path = Path(path)
        self.every = int(every)
        self.resume = resume
        self.info = info or {}
        self.catch_sigint = catch_sigint
        self.stop_requested = False
        self.saves = 0
        self._previous_handler = None
        self._installed = False

    # -- called by fit ----------------------------------------------------------------------------
    def begin(self, model, optimizer, ctx, config) -> FitPosition | None:
        self.model, self.ctx, self.config = model, ctx, config
        position = None
        if self.resume:
            state, _ = load_training_state(self.path, model)
            if state.get("kind") != "fit":
                raise CheckpointError(f"{self.path} is not the state of a fit run")
            if _canonical(state.get("config")) != _canonical(json.loads(json.dumps(config.to_dict()))):
                raise CheckpointError(f"{self.path} was written with other training settings")
            try:
                position = FitPosition.from_dict(state["position"])
                ctx.stream.step = int(state["stream"]["step"])
            except (KeyError, TypeError, ValueError):
                raise CheckpointError(f"{self.path}: training position is missing or corrupt") from None
        self._install_handler()
        return position

    def step_done(self, position: FitPosition) -> None:
        """After every step: save when due or when Ctrl-C was pressed (then raise)."""
        steps = self.ctx.stream.step
        if self.stop_requested:
            self.save(position)
            raise TrainingInterrupted(f"interrupted: training state saved to {self.path} (continue with --resume)")
        if self.every and steps % self.every == 0:
            self.save(position)

    def save(self, position: FitPosition) -> Path:
        state = {"kind": "fit", "config": self.config.to_dict(), "position": position.to_dict(),
                 "stream": {"seed": self.ctx.stream.seed, "step": self.ctx.stream.step}, "info": self.info}
        self.saves += 1
        return save_training_state(self.path, self.model, state)

    def close(self) -> None:
        if self._installed:
            signal.signal(signal.SIGINT, self._previous_handler if self._previous_handler is not None
                          else signal.default_int_handler)
            self._installed = False

    # -- Ctrl-C -----------------------------------------------------------------------------------
    def _install_handler(self) -> None:
        if not self.catch_sigint or threading.current_thread() is not threading.main_thread():
            return

        def handler(signum, frame):
            if self.stop_requested:  # second Ctrl-C: stop now
                raise KeyboardInterrupt
            self.stop_requested = True

        self._previous_handler = signal.signal(signal.SIGINT, handler)
        self._installed = True
