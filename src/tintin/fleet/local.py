"""What one device does in a round, without Flower: train from the received model, evaluate.

The integer device trains with the simulator, :func:`tintin.train.train_step` (the unit the
generated C reproduces bit for bit), at batch ``batch_size`` for ``local_steps`` steps over its
own samples in a seeded order (cycling when the steps outnumber the batches). Its rounding
stream and sample order are seeded by ``(seed, round, device)`` alone, so a device's update does
not depend on which Flower node trains it nor on the other devices.

The float device is the PyTorch float32 twin of the same model (:func:`tintin.reference.float_twin`)
with float32 SGD at the learning rate the integer update really applies, the same steps, batch
size and sample order.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass

import numpy as np

from ..data import check_model_fits
from ..nn import Context, Sequential, build_model
from ..nn.zoo import ZOO, UnknownModelError, model_names
from ..numerics import QTensor, RoundingStream, Scale
from ..optim import IntegerSGD, OptimConfig
from ..train import evaluate
from ..train.step import train_step
from .aggregation import ClientTensors, TensorSpec, displaced
from .errors import FleetError


def fleet_model(model: str | Sequential, source, seed: int = 0, config=None) -> Sequential:
    """The initial model of a fleet: a zoo model name built for the source's samples (a classifier,
    or with an MSE head and one output per target for regression), or a given model checked
    against the source."""
    if getattr(config, "row_scales", False) or isinstance(model, Sequential) and any(
            p.row_exp is not None for p in model.parameters()):
        raise FleetError("fleets aggregate one scale per weight tensor: per-row weight scales are not supported")
    if isinstance(model, Sequential):
        check_model_fits(source, model)
        return copy.deepcopy(model)
    if model not in ZOO:
        raise UnknownModelError(f"unknown model {model!r} (available: {', '.join(model_names())})")
    if source.task == "classification":
        return build_model(model, source.sample_shape, source.num_classes, config, seed=seed,
                           input_exponent=source.input_exponent)
    rng = np.random.default_rng(np.random.SeedSequence([seed, 1]))
    from ..nn import QuantConfig

    config = config or QuantConfig()
    net = ZOO[model](tuple(source.sample_shape), int(source.num_classes), config, rng)
    return Sequential(net.layers, net.input_shape, config, loss="mse", name=net.name,
                      input_exponent=source.input_exponent)


def tensor_specs(model: Sequential) -> list[TensorSpec]:
    return [TensorSpec(p.name, p.kind, p.bits, tuple(p.value.m.shape)) for p in model.parameters()]


def get_params(model: Sequential, names=None) -> ClientTensors:
    """``{name: (mantissas, scale)}`` of the model's parameters (copies)."""
    return {p.name: (p.value.m.copy(), p.value.scale) for p in model.parameters() if names is None or p.name in names}


def set_params(model: Sequential, params: ClientTensors) -> None:
    """Assign parameters (by name; dtypes and shapes checked)."""
    for p in model.parameters():
        if p.name in params:
            m, s = params[p.name]
            m = np.asarray(m)
            if m.shape != p.value.m.shape:
                raise FleetError(f"{p.name}: received shape {m.shape}, the model has {p.value.m.shape}")
            p.assign(QTensor(m.astype(p.value.m.dtype), s))
            p.momentum = None


def device_seed(seed: int, server_round: int, device: int) -> int:
    """The 32-bit seed of a device's rounding stream and sample order in a round."""
    return int(np.random.SeedSequence([int(seed), int(server_round), int(device)]).generate_state(1)[0])


@dataclass(frozen=True)
class LocalPlan:
    """How a device trains in a round: ``local_steps`` (None: one pass over its samples) batch
    steps of ``batch_size`` samples, with these optimiser settings. ``shots``: the device trains
    on only ``shots`` of its samples, a fresh seeded draw every round (:func:`round_samples`), as
    an unseen device adapts on K samples: Reptile's inner loop on a few-shot task (None: all of
    its samples). ``query_steps``: first-order MAML (FOMAML): after its ``local_steps`` on the
    ``shots`` support draw, the device takes ``query_steps`` more steps (same batch size and
    optimiser, their own seed: :func:`query_plan`, :func:`query_seed`) on a disjoint query draw of
    ``shots`` samples (:func:`query_samples`) and returns the received model moved by the
    displacement of those query steps alone, exactly (:func:`tintin.fleet.aggregation.displaced`;
    0: off). ``query_shots``: the size of that query draw (None: ``shots``, as many as the support
    draw; a larger draw, up to every sample beyond the support draw, estimates the device's whole
    distribution, classes the support draw missed included)."""

    batch_size: int = 8
    local_steps: int | None = None
    optim: OptimConfig = OptimConfig(lr=0.05)
    shots: int | None = None
    query_steps: int = 0
    query_shots: int | None = None

    def steps_for(self, n: int) -> int:
        return self.local_steps if self.local_steps is not None else max(1, math.ceil(n / self.batch_size))


#: the salt of a device's few-shot draw in a round (the sample order uses the bare seed)
_SHOTS_SALT = 7
#: the salt of the sample order of a device's query steps (FOMAML)
_QUERY_SALT = 13


def round_samples(n: int, plan: LocalPlan, seed: int) -> np.ndarray:
    """The indices of the samples a device trains on in a round: all ``n`` of them, or, with
    ``plan.shots = K``, the first ``min(K, n)`` of a permutation seeded by ``(seed, 7)`` (``seed``:
    the device's round seed, :func:`device_seed`)."""
    if plan.shots is None:
        return np.arange(n)
    perm = np.random.default_rng(np.random.SeedSequence([int(seed), _SHOTS_SALT])).permutation(n)
    return np.sort(perm[:min(int(plan.shots), n)])


def query_samples(n: int, plan: LocalPlan, seed: int) -> np.ndarray:
    """The query draw of a FOMAML device in a round: the next ``min(Q, n - K)`` samples of the
    permutation whose first K are the support draw (:func:`round_samples`), so the two never
    overlap (``Q``: ``plan.query_shots``, or K when it is None). A device with no sample beyond
    its support draw cannot take query steps."""
    if plan.shots is None:
        raise FleetError("query steps need a few-shot support draw (shots)")
    k = int(plan.shots)
    if n <= k:
        raise FleetError(f"a device with {n} samples has none left for a query draw beyond its {k} support samples")
    q = k if plan.query_shots is None else int(plan.query_shots)
    perm = np.random.default_rng(np.random.SeedSequence([int(seed), _SHOTS_SALT])).permutation(n)
    return np.sort(perm[k:k + min(q, n - k)])


def sample_order(n: int, steps: int, batch_size: int, seed: int) -> list[np.ndarray]:
    """The batches of a device's local steps: seeded permutations of its ``n`` samples, cycled."""
    rng = np.random.default_rng(seed)
    need = steps * batch_size
    order = np.concatenate([rng.permutation(n) for _ in range(max(1, math.ceil(need / n)))])[:need]
    return [order[i:i + batch_size] for i in range(0, need, batch_size)]


def train_device(model: Sequential, x: np.ndarray, y: np.ndarray, plan: LocalPlan, seed: int,
                 target_exponent: int | None = None) -> dict:
    """Train ``model`` in place on one device's samples; returns its mean training loss per step."""
    if len(x) == 0:
        raise FleetError("a device without training samples cannot train")
    received = get_params(model) if plan.query_steps else None
    sgd = IntegerSGD(model.parameters(), plan.optim, model.config.scale_mode)
    ctx = Context(mode=model.config.scale_mode, training=True, stream=RoundingStream(seed))
    losses = []
    pick = round_samples(len(x), plan, seed)
    xs, ys = x[pick], y[pick]
    for batch in sample_order(len(xs), plan.steps_for(len(xs)), plan.batch_size, seed):
        res = train_step(model, sgd, xs[batch], ys[batch], ctx, target_exponent or 0)
        losses.append(res.loss.to_float())
    info = {"train_loss": float(np.mean(losses)), "steps": len(losses)}
    if not plan.query_steps:
        return info
    # FOMAML: the query steps' displacement at the adapted weights, applied to the received model
    adapted = get_params(model)
    q = query_samples(len(x), plan, seed)
    query = train_device(model, x[q], y[q], query_plan(plan), query_seed(seed), target_exponent)
    queried = get_params(model)
    mode = model.config.scale_mode
    set_params(model, {t.name: displaced(received[t.name], adapted[t.name], queried[t.name], t, mode)
                       for t in tensor_specs(model)})
    return {**info, "query_loss": query["train_loss"], "query_steps": query["steps"]}


def query_plan(plan: LocalPlan) -> LocalPlan:
    """The plan of a FOMAML device's query steps: ``plan.query_steps`` steps at the same batch
    size and optimiser over the whole query draw."""
    return LocalPlan(batch_size=plan.batch_size, local_steps=plan.query_steps, optim=plan.optim)


def query_seed(seed: int) -> int:
    """The rounding stream and sample order seed of a FOMAML device's query steps (its own, not
    the support steps' continued)."""
    return int(np.random.SeedSequence([int(seed), _QUERY_SALT]).generate_state(1)[0])


def train_device_on_target(model: Sequential, x: np.ndarray, y: np.ndarray, plan: LocalPlan, seed: int,
                           target: str, target_exponent: int | None = None) -> None:
    """:func:`train_device` executed by the model's generated C program on an emulated
    microcontroller (:func:`tintin.fleet.device_client.local_update_on_target`): the same samples,
    batches, rounding stream and integer update, so the same bits (tested); ``model`` takes the
    parameters the device reports."""
    from .device_client import local_update_on_target

    if len(x) == 0:
        raise FleetError("a device without training samples cannot train")
    if plan.query_steps:
        raise FleetError("emulated devices run the local steps of fedavg and reptile, not FOMAML's query steps")
    pick = round_samples(len(x), plan, seed)
    x, y = x[pick], y[pick]
    steps = plan.steps_for(len(x))
    order = np.concatenate(sample_order(len(x), steps, plan.batch_size, seed))
    trained = local_update_on_target(model, x, y, target=target, steps=steps, seed=seed, optim=plan.optim,
                                     target_exponent=target_exponent, order=order, batch_size=plan.batch_size)
    set_params(model, get_params(trained))


def predict_values(model: Sequential, x: np.ndarray, batch_size: int = 256) -> np.ndarray:
    """Real-valued outputs (host floats, for reporting) of a regression model."""
    ctx = Context(mode=model.config.scale_mode, training=False)
    outs = []
    for i in range(0, len(x), batch_size):
        out = model.forward(QTensor(x[i:i + batch_size], Scale(model.input_exponent)), ctx)
        outs.append(out.m.astype(np.float64) * out.scale.to_float())
    return np.concatenate(outs).reshape(len(x), -1)


def evaluate_device(model: Sequential, x: np.ndarray, y: np.ndarray, task: str, target_exponent: int | None) -> dict:
    """``{"count", "correct"}`` (classification) or ``{"count", "sse"}`` (regression, real units)."""
    if len(x) == 0:
        return {"count": 0, "correct": 0} if task == "classification" else {"count": 0, "sse": 0.0}
    if task == "classification":
        ev = evaluate(model, x, y)
        return {"count": int(ev.count), "correct": int(ev.correct)}
    pred = predict_values(model, x)
    target = np.asarray(y, dtype=np.float64).reshape(len(x), -1) * 2.0 ** target_exponent
    return {"count": int(len(x)), "sse": float(((pred - target) ** 2).mean(axis=1).sum())}


# -- the float32 twin -----------------------------------------------------------------------------
def float_arrays(net) -> dict[str, np.ndarray]:
    return {k: v.detach().numpy().astype(np.float32).copy() for k, v in net.state_dict().items()}


def load_float(net, arrays: dict[str, np.ndarray]) -> None:
    import torch

    net.load_state_dict({k: torch.tensor(np.asarray(v, dtype=np.float32)) for k, v in arrays.items()})


def train_float_device(net, model: Sequential, x: np.ndarray, y: np.ndarray, plan: LocalPlan, seed: int,
                       task: str, target_exponent: int | None) -> dict:
    """float32 SGD on the twin ``net`` with the integer device's steps, batches and learning rate."""
    import torch

    torch.manual_seed(seed & 0x7FFFFFFF)
    lr = IntegerSGD([], plan.optim, model.config.scale_mode).effective_lr()
    opt = torch.optim.SGD(net.parameters(), lr=lr)
    pick = round_samples(len(x), plan, seed)
    x, y = x[pick], y[pick]
    xs = torch.tensor(np.asarray(x, dtype=np.float32) * 2.0 ** model.input_exponent)
    if task == "classification":
        ys = torch.tensor(np.asarray(y, dtype=np.int64))
    else:
        ys = torch.tensor(np.asarray(y, dtype=np.float32).reshape(len(y), -1) * 2.0 ** target_exponent)
    net.train()
    losses = []
    for batch in sample_order(len(x), plan.steps_for(len(x)), plan.batch_size, seed):
        b = torch.as_tensor(batch)
        opt.zero_grad(set_to_none=True)
        out = net(xs[b])
        loss = (torch.nn.functional.cross_entropy(out, ys[b]) if task == "classification"
                else torch.nn.functional.mse_loss(out, ys[b]))
        loss.backward()
        opt.step()
        losses.append(float(loss))
    return {"train_loss": float(np.mean(losses)), "steps": len(losses)}


def evaluate_float(net, model: Sequential, x: np.ndarray, y: np.ndarray, task: str, target_exponent: int | None) -> dict:
    import torch

    if len(x) == 0:
        return {"count": 0, "correct": 0} if task == "classification" else {"count": 0, "sse": 0.0}
    net.eval()
    with torch.no_grad():
        out = net(torch.tensor(np.asarray(x, dtype=np.float32) * 2.0 ** model.input_exponent)).numpy()
    net.train()
    if task == "classification":
        return {"count": int(len(x)), "correct": int((out.argmax(1) == np.asarray(y)).sum())}
    target = np.asarray(y, dtype=np.float64).reshape(len(x), -1) * 2.0 ** target_exponent
    return {"count": int(len(x)), "sse": float(((out - target) ** 2).mean(axis=1).sum())}
