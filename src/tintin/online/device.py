"""A stream on an emulated microcontroller: the generated training program learns it test-then-train
at batch 1, and every prediction is compared with the simulator's :class:`OnlineLearner`.

    from tintin.online.device import stream_on_target
    d = stream_on_target(model, stream, "cortex-m0", update="last:1", optim=OptimConfig(lr=0.01), seed=0)
    d["bit_exact"], d["instructions_per_sample"], d["count_unit"]

The device runs :func:`tintin.targets.stream.run_stream_on_target` (predict each sample, then learn it
when its label arrived; TinyOL's mask of unseen classes with ``update="tinyol"``). ``bit_exact``
holds when the device matches the simulator's program run (every prediction, step loss and final
parameter byte) and its predictions equal the :class:`OnlineLearner`'s on the same stream.
"""

from __future__ import annotations

import copy

import numpy as np

from .learner import OnlineLearner, selection_of
from .prequential import prequential
from .stream import Stream, StreamError


def stream_on_target(model, stream: Stream, target: str, *, update: str = "full", optim=None, seed: int = 0,
                     replay: int = 0, learner_predictions: np.ndarray | None = None, work_dir=None,
                     model_spec: str | None = None) -> dict:
    """Run ``stream`` on ``target`` from ``model`` (not changed) and compare it with an
    :class:`OnlineLearner` of the same settings; ``learner_predictions`` (the learner's predictions
    on this stream, when already computed) saves running the learner again.

    Returns a dict: ``bit_exact``, ``instructions_per_sample`` (mean of prediction plus, when labelled,
    training step; ``None`` on the host), ``count_unit`` (``"instructions"`` on Cortex-M,
    ``"cycles"`` on AVR), ``instructions_per_prediction``, ``instructions_per_learn``, ``mismatches``
    and the device's sizes. Replay is not run on a device yet (``replay > 0`` is refused)."""
    from tintin.targets.stream import run_stream_on_target

    if replay:
        raise StreamError("a stream with a replay buffer does not run on a target yet (use --replay 0 with --target)")
    known = stream.initial_classes
    if learner_predictions is None:
        learner = OnlineLearner(copy.deepcopy(model), update, optim, seed, 0, known_classes=known)
        learner_predictions = np.zeros(len(stream), dtype=np.int64)
        prequential(stream, learner.predict_one, learner.learn_one, None, learner_predictions)
    report = run_stream_on_target(model, target, x=stream.x, labels=stream.y, labelled=stream.labelled,
                                  update=selection_of(update), optim=optim, seed=seed,
                                  mask_unseen=update == "tinyol", known_classes=known, work_dir=work_dir,
                                  model_spec=model_spec)
    mismatches = list(report.mismatches)
    device = np.asarray(report.predictions, dtype=np.int64)
    if device.shape != learner_predictions.shape:
        mismatches.append(f"device made {device.size} predictions, the online learner {learner_predictions.size}")
    else:
        differ = np.flatnonzero(device != learner_predictions)
        if differ.size:
            i = int(differ[0])
            mismatches.append(f"{differ.size} predictions differ from the online learner's (first at sample {i}: "
                              f"{int(device[i])} on the device, {int(learner_predictions[i])} in the simulator)")
    return {"target": target, "machine": report.machine, "bit_exact": not mismatches, "mismatches": mismatches,
            "count_unit": report.count_unit, "instructions_per_sample": report.per_sample,
            "instructions_per_prediction": report.per_prediction, "instructions_per_learn": report.per_learn,
            "samples": report.samples, "labelled": report.labelled, "arena_bytes": report.planned_arena_bytes,
            "text_bytes": report.text_bytes, "data_bytes": report.data_bytes, "bss_bytes": report.bss_bytes,
            "stack_used_bytes": report.stack_used_bytes, "softfloat_symbols": report.softfloat_symbols,
            "build_seconds": round(report.build_seconds, 3), "run_seconds": round(report.run_seconds, 3)}
