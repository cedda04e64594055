"""The float32 twin of the online learner (PyTorch) and a river learner: the baselines a stream
evaluation puts beside integer online learning.

:class:`FloatOnlineLearner` starts from the same weights as the integer model (dequantised,
:func:`tintin.reference.float_twin`), trains the same parameters (same update mode; row subsets
through gradient masks) with float32 SGD at batch 1, using the learning rate the integer update
really applies (:meth:`tintin.optim.IntegerSGD.effective_lr`) and the same momentum
``beta = 1 - 2**-k``.

:func:`river_learner` is river's multinomial logistic regression on standardised raw inputs
(``StandardScaler | SoftmaxRegression``): the ecosystem's usual online learner, as an anchor.
"""

from __future__ import annotations

import numpy as np

from ..nn import Sequential
from ..optim import IntegerSGD, OptimConfig
from ..reference.twin import _torch, float_twin


class FloatOnlineLearner:
    """river's ``learn_one`` / ``predict_one`` on the float32 twin of ``model``."""

    def __init__(self, model: Sequential, optim: OptimConfig | None = None, seed: int = 0, tinyol: bool = False,
                 known_classes=(), threads: int | None = 1):
        """``threads``: PyTorch's intra-op threads (process-wide; ``None`` leaves them alone). One
        thread suits batch-1 steps of small models: more only add synchronisation."""
        torch = _torch()
        self.torch = torch
        if threads:
            torch.set_num_threads(threads)
        torch.manual_seed(seed)
        optim = optim or OptimConfig()
        self.net = float_twin(model)
        params = list(self.net.parameters())
        ours = model.parameters()
        if len(params) != len(ours) or any(tuple(a.shape) != b.value.m.shape for a, b in zip(params, ours)):
            raise NotImplementedError(f"the float twin of {model.name} does not mirror its parameters")
        trained = []
        for tp, p in zip(params, ours):
            tp.requires_grad_(p.trainable)
            if p.trainable:
                trained.append(tp)
                if p.trainable_rows is not None:
                    mask = torch.zeros(tp.shape)
                    mask[torch.as_tensor(p.trainable_rows)] = 1.0
                    tp.register_hook(lambda g, mask=mask: g * mask)
        lr = IntegerSGD([], optim, model.config.scale_mode).effective_lr()
        momentum = 1.0 - 2.0 ** -optim.momentum_shift if optim.momentum_shift else 0.0
        self.opt = torch.optim.SGD(trained, lr=lr, momentum=momentum) if trained else None
        self.scale = 2.0 ** model.input_exponent
        self.tinyol = tinyol
        self.seen = np.zeros(model.output_shape_[0], dtype=bool)
        self.seen[np.asarray(list(known_classes), dtype=np.int64)] = True
        self.net.train()

    def _input(self, x):
        return self.torch.tensor(np.asarray(x, dtype=np.float32)[None] * self.scale)

    def predict_one(self, x) -> int:
        with self.torch.no_grad():
            out = self.net(self._input(x))[0].numpy()
        if self.tinyol and self.seen.any():
            out = np.where(self.seen, out, -np.inf)
        return int(np.argmax(out))

    def learn_one(self, x, y) -> "FloatOnlineLearner":
        if y is None:
            return self
        self.seen[int(y)] = True
        if self.opt is None:
            return self
        torch = self.torch
        self.opt.zero_grad(set_to_none=True)
        loss = torch.nn.functional.cross_entropy(self.net(self._input(x)), torch.tensor([int(y)]))
        loss.backward()
        self.opt.step()
        return self


def river_learner():
    """``StandardScaler | SoftmaxRegression`` from river (raises MissingExtraError without it)."""
    try:
        from river import linear_model, preprocessing
    except ImportError:
        from ..reference import MissingExtraError
        raise MissingExtraError("river is not installed: pip install river (or pip install 'tintin[online]')") from None
    return preprocessing.StandardScaler() | linear_model.SoftmaxRegression()


def river_features(x: np.ndarray, scale: float) -> dict[int, float]:
    """One sample as river's feature dict (real values, flattened)."""
    return dict(enumerate((np.asarray(x, dtype=np.float64).ravel() * scale).tolist()))
