"""The online learner: river's ``learn_one`` / ``predict_one`` on tintin's integer training step.

    from tintin.online import OnlineLearner
    learner = OnlineLearner(model, update="last:1", optim=OptimConfig(lr=0.05), seed=0, replay=32)
    for x, y in stream:
        y_hat = learner.predict_one(x)      # test ...
        if y is not None:
            learner.learn_one(x, y)         # ... then train
    learner.save("field/state.safetensors")

Every ``learn_one(x, y)`` is :func:`tintin.train.train_step` at batch 1 on ``(x, y)`` with the
learner's optimiser and rounding stream: the same bits as batch training over the same sequence
(and as the generated C at batch 1).

Update modes (which parameters learn; see :mod:`tintin.compile.selection`):

``full``      every parameter;
``bias``      every bias, no weight (the cheapest in SRAM);
``last:K``    the last K parameterised layers;
``tinyol``    TinyOL's setting: only the output layer learns (``last:1``) on top of the frozen
              network, and classes become predictable when their first label arrives (output rows
              reserved in the static plan; before a class is seen its row is masked out of
              ``predict_one``).

Any other update string of :func:`tintin.compile.parse_update` works too (``sparse:fc2[0:4]``).

Replay (``replay=R``, ``R > 0``): a reservoir of ``R`` labelled int8 samples (``R * (sample bytes
+ 1)`` bytes on a device). After each ``learn_one`` on the new sample the learner takes one more
batch-1 step on a stored sample, then offers the new sample to the reservoir. Slots and draws come
from the integer hash of the rounding stream (:func:`tintin.numerics.mix32`), so a device
reproduces them: the ``n``-th labelled sample (from 0) fills slot ``n`` while ``n < R``, afterwards
it replaces slot ``j = mix32(h ^ n) mod (n + 1)`` when ``j < R``; the replayed slot is
``mix32(h ^ n ^ 0x5BD1E995) mod size`` with ``h = mix32(seed ^ 0x7E9A1A7)``.
"""

from __future__ import annotations

import numpy as np

from ..compile.selection import apply_update_selection, parse_update
from ..nn import Context, Sequential
from ..numerics import QTensor, RoundingStream, Scale, mix32
from ..optim import IntegerSGD, OptimConfig
from ..train.checkpoint import CheckpointError, load_training_state, save_training_state
from ..train.step import predict_argmax, train_step
from .stream import StreamError

REPLAY_SALT = 0x7E9A1A7
DRAW_SALT = 0x5BD1E995
#: update modes with a name of their own (other update strings are accepted as they are)
UPDATE_MODES = ("full", "bias", "last:1", "last:2", "tinyol")


#: the batch-1 learning rate of a model file whose pretraining settings are unknown
FALLBACK_ONLINE_LR = 0.01


def online_lr(pretrain_lr: float, pretrain_batch_size: int) -> float:
    """The batch-1 online learning rate that keeps the per-sample step of pretraining (the linear
    scaling rule, lr proportional to batch size): ``pretrain_lr / pretrain_batch_size``, with the
    pretraining's base rate (before any decay) and no momentum. cnn1d pretrained at 0.05 with batch
    32 learns online at 0.05 / 32 = 0.0015625.

    >>> online_lr(0.05, 32)
    0.0015625
    """
    if not pretrain_lr > 0 or pretrain_batch_size < 1:
        raise StreamError(f"online_lr needs a positive learning rate and batch size, got {pretrain_lr}, "
                          f"{pretrain_batch_size}")
    return float(pretrain_lr) / int(pretrain_batch_size)


def selection_of(update: str) -> str:
    """The update selection string of a mode (``tinyol`` -> ``last:1``)."""
    return "last:1" if update == "tinyol" else update


class ReplayBuffer:
    """A seeded reservoir of ``capacity`` labelled int8 samples (see the module docstring)."""

    def __init__(self, capacity: int, sample_shape: tuple[int, ...], seed: int):
        if capacity < 1:
            raise StreamError(f"replay capacity must be at least 1, got {capacity}")
        self.capacity = int(capacity)
        self.x = np.zeros((capacity, *sample_shape), dtype=np.int8)
        self.y = np.zeros(capacity, dtype=np.int64)
        self.offered = 0  # labelled samples offered so far
        self._hash = mix32((int(seed) ^ REPLAY_SALT) & 0xFFFFFFFF)

    @property
    def size(self) -> int:
        return min(self.offered, self.capacity)

    @property
    def nbytes(self) -> int:
        """Bytes on a device: int8 samples and one byte per label."""
        return self.x.nbytes + self.capacity

    def draw(self) -> int | None:
        """Slot of the sample to replay now (``None`` while empty)."""
        if self.size == 0:
            return None
        return mix32(self._hash ^ (self.offered & 0xFFFFFFFF) ^ DRAW_SALT) % self.size

    def offer(self, x: np.ndarray, y: int) -> None:
        n = self.offered
        slot = n if n < self.capacity else mix32(self._hash ^ (n & 0xFFFFFFFF)) % (n + 1)
        if slot < self.capacity:
            self.x[slot] = x
            self.y[slot] = y
        self.offered = n + 1


class OnlineLearner:
    """Wraps a :class:`tintin.nn.Sequential` for sample-by-sample learning (river's API).

    ``model`` is trained in place. ``optim``: the optimiser settings (the learning rate of epoch 0
    is used throughout: a stream has no epochs). ``seed``: the rounding stream's seed.
    ``replay``: reservoir capacity (0: no replay). ``update_kernel``: an optional bit-identical
    native weight update (see :class:`tintin.optim.IntegerSGD`). ``known_classes``: classes the
    model already predicts (pretrained), counted as seen.

    >>> from tintin import data
    >>> from tintin.nn import build_model
    >>> from tintin.online import OnlineLearner
    >>> ds = data.load("digits")
    >>> model = build_model("mlp", ds.sample_shape, ds.num_classes, seed=0, input_exponent=ds.input_exponent)
    >>> learner = OnlineLearner(model, update="last:1")
    >>> correct = 0
    >>> for x, y in zip(ds.x_train[:300], ds.y_train[:300]):   # test, then train
    ...     correct += learner.predict_one(x) == y
    ...     _ = learner.learn_one(x, y)
    >>> learner.samples_learnt, 0 <= learner.predict_one(ds.x_test[0]) < 10
    (300, True)
    """

    def __init__(self, model: Sequential, update: str = "full", optim: OptimConfig | None = None, seed: int = 0,
                 replay: int = 0, update_kernel=None, known_classes=()):
        if model.loss != "cross_entropy":
            raise StreamError("the online learner needs a classifier (cross-entropy loss)")
        self.model = model
        self.update = update
        self.selection = apply_update_selection(model, parse_update(selection_of(update)))
        self.optim = optim or OptimConfig()
        self.seed = int(seed)
        self.optimizer = IntegerSGD(model.parameters(), self.optim, model.config.scale_mode, update_kernel)
        self.ctx = Context(mode=model.config.scale_mode, training=True, stream=RoundingStream(seed))
        self.replay = ReplayBuffer(replay, model.input_shape, seed) if replay else None
        self.num_classes = model.output_shape_[0]
        self.seen_classes = np.zeros(self.num_classes, dtype=bool)
        self.seen_classes[np.asarray(list(known_classes), dtype=np.int64)] = True
        self.samples_learnt = 0

    # -- river's API -------------------------------------------------------------------------------
    def _check(self, x) -> np.ndarray:
        x = np.asarray(x)
        if x.dtype != np.int8 or tuple(x.shape) != self.model.input_shape:
            raise StreamError(f"a sample must be int8 of shape {self.model.input_shape}, got "
                              f"{x.dtype} {tuple(x.shape)}")
        return x

    def logits(self, x) -> QTensor:
        """The int8 output of the model for one sample (batch 1, inference)."""
        x = self._check(x)
        ctx = Context(mode=self.model.config.scale_mode, training=False)
        return self.model.forward(QTensor(x[None], Scale(self.model.input_exponent)), ctx)

    def predict_one(self, x) -> int:
        """The predicted class of one int8 sample (the first maximum of the int8 logits, as on the
        device; in ``tinyol`` mode among the classes seen so far, once any has been seen)."""
        m = self.logits(x).m[0].astype(np.int32)
        if self.update == "tinyol" and self.seen_classes.any():
            m = np.where(self.seen_classes, m, np.iinfo(np.int32).min)
        return int(predict_argmax(m[None])[0])

    def predict_proba_one(self, x) -> dict[int, float]:
        """Class probabilities (host-side float softmax of the dequantised int8 logits)."""
        out = self.logits(x)
        v = out.m[0].astype(np.float64) * out.scale.to_float()
        if self.update == "tinyol" and self.seen_classes.any():
            v = np.where(self.seen_classes, v, -np.inf)
        e = np.exp(v - v.max())
        p = e / e.sum()
        return {i: float(p[i]) for i in range(self.num_classes)}

    def learn_one(self, x, y: int | None) -> "OnlineLearner":
        """One integer training step at batch 1 on ``(x, y)`` (then one replay step, when the
        learner keeps a replay buffer). ``y=None`` (no label) learns nothing."""
        if y is None:
            return self
        x = self._check(x)
        y = int(y)
        if not 0 <= y < self.num_classes:
            raise StreamError(f"label {y} outside [0, {self.num_classes})")
        self._step(x, y)
        if self.replay is not None:
            slot = self.replay.draw()
            if slot is not None:
                self._step(self.replay.x[slot], int(self.replay.y[slot]))
            self.replay.offer(x, y)
        self.seen_classes[y] = True
        self.samples_learnt += 1
        return self

    def _step(self, x: np.ndarray, y: int) -> None:
        train_step(self.model, self.optimizer, x[None], np.array([y], dtype=np.int64), self.ctx)

    # -- training state ----------------------------------------------------------------------------
    def state(self) -> dict:
        return {"kind": "online_learner", "update": self.update, "optim": self.optim.to_dict(), "seed": self.seed,
                "stream_step": self.ctx.stream.step, "samples_learnt": self.samples_learnt,
                "seen_classes": [int(c) for c in np.flatnonzero(self.seen_classes)],
                "replay": None if self.replay is None else {"capacity": self.replay.capacity,
                                                             "offered": self.replay.offered}}

    def save(self, path) -> None:
        """Save the whole learning state (weights, scales, momentum, rounding-stream step, samples
        learnt, seen classes, replay buffer) atomically."""
        arrays = {} if self.replay is None else {"replay_x": self.replay.x, "replay_y": self.replay.y}
        save_training_state(path, self.model, self.state(), arrays)

    @classmethod
    def restore(cls, path, model: Sequential, update_kernel=None) -> "OnlineLearner":
        """A learner continuing from ``path`` on ``model`` (same architecture; its parameters are
        replaced by the saved ones). Continuing gives the bits of a learner never stopped."""
        state, arrays = load_training_state(path, model)
        if state.get("kind") != "online_learner":
            raise CheckpointError(f"{path} is not the state of an online learner")
        try:
            replay = state["replay"]
            learner = cls.__new__(cls)
            learner.model = model
            learner.update = state["update"]
            learner.selection = {p.name: p.trainable_rows for p in model.parameters() if p.trainable}
            learner.optim = OptimConfig.from_dict(state["optim"])
            learner.seed = int(state["seed"])
            learner.optimizer = IntegerSGD(model.parameters(), learner.optim, model.config.scale_mode, update_kernel)
            learner.ctx = Context(mode=model.config.scale_mode, training=True,
                                  stream=RoundingStream(learner.seed, int(state["stream_step"])))
            learner.replay = None
            if replay is not None:
                learner.replay = ReplayBuffer(int(replay["capacity"]), model.input_shape, learner.seed)
                learner.replay.offered = int(replay["offered"])
                if arrays["replay_x"].shape != learner.replay.x.shape:
                    raise ValueError("replay buffer shape")
                learner.replay.x[...] = arrays["replay_x"]
                learner.replay.y[...] = arrays["replay_y"]
            learner.num_classes = model.output_shape_[0]
            learner.seen_classes = np.zeros(learner.num_classes, dtype=bool)
            learner.seen_classes[np.asarray(state["seen_classes"], dtype=np.int64)] = True
            learner.samples_learnt = int(state["samples_learnt"])
        except (KeyError, TypeError, ValueError, IndexError) as exc:
            raise CheckpointError(f"{path}: online-learner state is missing or corrupt ({exc})") from None
        return learner
