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
"""

from __future__ import annotations

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
