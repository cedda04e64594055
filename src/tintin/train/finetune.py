"""The learning-rate rule of fine-tuning: a model that starts trained ends every run on small steps.

A fine-tuning run (``tintin train --init``, or :func:`fit` on an imported model) is short, often a
few epochs at batch size 1. At a constant rate its accuracy does not settle: each step at batch 1
moves the decision boundaries by the size of the rate, and the test accuracy of the last step is
one draw from an oscillation. On the transfer bench (``bench/results/transfer.md``: the last layer
of a depthwise-separable CNN retrained on new classes at lr 0.05, batch 1) the test accuracy swings
by 10-15 points between checkpoints 100 steps apart in the second epoch, in float PyTorch and in
integers alike, so the result of a run depends on where its last step falls.

The rule: a fine-tuning run of ``E >= 2`` epochs multiplies the rate by the zoo's
:data:`tintin.nn.zoo.DECAY_FACTOR` after each fraction :data:`tintin.nn.zoo.DECAY_AT` of the run
(rounded to whole epochs, at least one epoch at the starting rate and a decay only where an epoch
is left after it), as full training does from 10 epochs on (:class:`tintin.nn.TrainingDefaults`).
Full training of a new model keeps its own rule, unchanged: short from-scratch runs stop before
converging, where a decay only slows them down; a fine-tuned model starts near a solution.

The width rule (:func:`finetune_wide_layers`, :func:`widen_finetuned_layers`): a partial update
(one that trains the weights of some layers and leaves the weights of others frozen, e.g.
``last:K``) gives the layers whose weights it trains int16 master weights
(:func:`tintin.nn.widen.widen_layers`: the same values, eight more bits below the int8 step). In a
short fine-tuning run the decayed rate makes most updates of the trained layer smaller than one
int8 step: on the transfer bench (the DS-CNN's last layer, ``last:1``) 75-79 % of the updates with
a non-zero gradient rounded to zero in the second epoch (median 0.02-0.1 of an int8 step), and
the weight scale had coarsened by about 2**3 since the import as the new classes' rows grew. The
int16 master keeps those steps; the cost is one byte per trained weight (the trained layers only).
Full and bias-only updates are not changed: a full update would pay a byte for every weight.
"""

from __future__ import annotations

from ..nn.sequential import Sequential
from ..nn.widen import widen_layers
from ..nn.zoo import DECAY_AT, DECAY_FACTOR

#: the shortest fine-tuning run that decays: one epoch at the starting rate, one after the decay
FINETUNE_DECAY_MIN_EPOCHS = 2


def finetune_lr_schedule(epochs: int, lr: float) -> tuple[tuple[int, float], ...]:
    """The ``OptimConfig.lr_schedule`` of a fine-tuning run of ``epochs`` epochs starting at ``lr``:
    ``((epoch, rate), ...)``, the rate times ``DECAY_FACTOR`` after each fraction ``DECAY_AT`` of
    the run, as whole epochs in ``[1, epochs)``; ``()`` for a one-epoch run.

    >>> from tintin.train import finetune_lr_schedule
    >>> finetune_lr_schedule(2, 0.05)      # the second epoch at a fifth of the rate
    ((1, 0.01),)
    >>> finetune_lr_schedule(10, 0.05)     # as the zoo's rule: after half and after 80 %
    ((5, 0.01), (8, 0.002))
    >>> finetune_lr_schedule(1, 0.05)
    ()
    """
    if epochs < 1:
        raise ValueError(f"epochs must be at least 1, got {epochs}")
    if not lr > 0:
        raise ValueError(f"learning rate must be positive, got {lr}")
    if epochs < FINETUNE_DECAY_MIN_EPOCHS:
        return ()
    out: list[tuple[int, float]] = []
    for frac in DECAY_AT:
        epoch = min(max(int(round(frac * epochs)), 1), epochs - 1)
        if out and epoch <= out[-1][0]:
            continue  # no epoch left between two decays: the run keeps the first
        out.append((epoch, float(f"{lr * DECAY_FACTOR ** (len(out) + 1):.12g}")))
    return tuple(out)


def finetune_wide_layers(model: Sequential) -> tuple[str, ...]:
    """The layers the width rule gives int16 master weights in a fine-tuning run of ``model`` whose
    update is already selected (``Parameter.trainable``, ``trainable_rows``, e.g. by
    :func:`tintin.compile.apply_update_selection`): the layers whose int8 weights train in every
    row, when at least one other weight stays frozen; ``()`` for a full, bias-only or row-sparse
    update.

    >>> from tintin.compile import apply_update_selection
    >>> from tintin.nn import build_model
    >>> from tintin.train import finetune_wide_layers
    >>> model = build_model("mlp", (1, 8, 8), 10, seed=0)
    >>> _ = apply_update_selection(model, "last:1")
    >>> finetune_wide_layers(model)
    ('fc2',)
    >>> _ = apply_update_selection(model, "full")
    >>> finetune_wide_layers(model)
    ()
    """
    weights = [p for p in model.parameters() if p.kind == "weight"]
    if all(p.trainable for p in weights):
        return ()
    return tuple(p.name.rsplit(".", 1)[0] for p in weights
                 if p.trainable and p.trainable_rows is None and p.bits == 8 and p.row_exp is None)


def widen_finetuned_layers(model: Sequential) -> tuple[str, ...]:
    """Apply the width rule to ``model`` in place (after its update is selected): the layers of
    :func:`finetune_wide_layers` get int16 master weights with the same values. Returns them.

    >>> from tintin.compile import apply_update_selection
    >>> from tintin.nn import build_model
    >>> from tintin.train import widen_finetuned_layers
    >>> model = build_model("mlp", (1, 8, 8), 10, seed=0)
    >>> _ = apply_update_selection(model, "last:1")
    >>> widen_finetuned_layers(model), model.config.wide_layers, model.layers[-1].weight.bits
    (('fc2',), ('fc2',), 16)
    """
    return widen_layers(model, finetune_wide_layers(model))
