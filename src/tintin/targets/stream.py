"""Test-then-train on a target: a stream of samples predicted and learnt one at a time by the
generated training program at batch 1, compared bit for bit with the simulator.

    from tintin.targets.stream import run_stream_on_target
    report = run_stream_on_target(model, "cortex-m0", x=xs, labels=ys, labelled=mask, update="last:1",
                                  optim=OptimConfig(lr=0.01), seed=0, work_dir="build/stream")
    report.bit_exact, report.predictions, report.per_sample   # True, [..], instructions per sample

For every sample ``j`` in order the device predicts it (``tt_forward`` and the first maximum of the
int8 logits), then, when ``labelled[j]``, learns it (``tt_train_step`` at batch 1). The samples are
embedded in flash (:func:`tintin.codegen.driver.render_stream_driver`). The simulator runs the same
sequence (:class:`tintin.compile.ProgramExecutor` for the steps, ``model.forward`` for the
predictions); every prediction, every step's loss and prediction and the final parameters (and
momentum) are compared.

``mask_unseen`` is TinyOL's rule: once any class has been seen (``known_classes`` at the start, then
each learnt label), only seen classes are predicted.
"""

from __future__ import annotations

import copy
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from tintin.codegen import Project
from tintin.codegen.driver import render_stream_driver
from tintin.targets.build import check_no_softfloat
from tintin.targets.compare import Reference, compare, parse_output, reference_entries
from tintin.targets.errors import TargetError
from tintin.targets.ondevice import build_driver_program, prepare_project
from tintin.targets.run import run

__all__ = ["StreamDeviceReport", "run_stream_on_target", "simulate_stream"]


@dataclass
class StreamDeviceReport:
    """One stream run on a target: the device's predictions, its counts and the comparison.

    ``predict_counts[j]``: instructions (Cortex-M) or cycles (AVR) of predicting sample ``j``;
    ``learn_counts``: of each training step, in stream order (labelled samples only). Empty on the
    host, which counts nothing."""

    target: str
    machine: str
    count_unit: str | None
    update: str
    samples: int
    labelled: int
    bit_exact: bool
    mismatches: list
    predictions: list
    predict_counts: list
    learn_counts: list
    planned_arena_bytes: int
    text_bytes: int
    data_bytes: int
    bss_bytes: int
    stack_used_bytes: int | None
    softfloat_symbols: list
    build_seconds: float = 0.0
    run_seconds: float = 0.0
    reference_seconds: float = 0.0
    losses: list = field(default_factory=list)

    @property
    def per_sample(self) -> float | None:
        """Mean instructions (AVR: cycles) per stream sample: its prediction plus, when labelled,
        its training step; None on the host."""
        if not self.predict_counts:
            return None
        return (sum(self.predict_counts) + sum(self.learn_counts)) / self.samples

    @property
    def per_prediction(self) -> float | None:
        return float(np.mean(self.predict_counts)) if self.predict_counts else None

    @property
    def per_learn(self) -> float | None:
        return float(np.mean(self.learn_counts)) if self.learn_counts else None

    def to_dict(self) -> dict:
        d = asdict(self)
        d.update(per_sample=self.per_sample, per_prediction=self.per_prediction, per_learn=self.per_learn)
        return d


def _masked_first_max(logits: np.ndarray, seen: np.ndarray, mask_unseen: bool) -> int:
    m = logits.astype(np.int32)
    if mask_unseen and seen.any():
        m = np.where(seen, m, np.iinfo(np.int32).min)
    return int(np.argmax(m))


def simulate_stream(model, project: Project, *, x, labels, labelled, seed: int, mask_unseen: bool = False,
                    known_classes=()) -> Reference:
    """The stream on the simulator, as the device runs it: ``evals`` holds every prediction,
    ``steps`` every training step (loss, its scale, prediction), ``entries`` the final parameters."""
    from tintin.compile import ProgramExecutor
    from tintin.nn import Context
    from tintin.numerics import QTensor, RoundingStream, Scale

    program, plan = project.program, project.plan
    m = copy.deepcopy(model)
    ex = ProgramExecutor(program, plan, poison=False)
    ex.load(m)
    ctx = Context(mode=program.scale_mode, training=True, stream=RoundingStream(seed))
    ctx_eval = Context(mode=program.scale_mode, training=False)
    seen = np.zeros(model.output_shape_[0], dtype=bool)
    seen[np.asarray(list(known_classes), dtype=np.int64)] = True
    steps, evals = [], []
    for j in range(len(x)):
        out = m.forward(QTensor(np.asarray(x[j:j + 1], dtype=np.int8), Scale(m.input_exponent)), ctx_eval)
        evals.append(_masked_first_max(out.m[0], seen, mask_unseen))
        if labelled[j]:
            y = int(labels[j])
            res = ex.step(np.asarray(x[j:j + 1]), np.array([y], dtype=np.int64), ctx)
            steps.append((int(res.loss.total), res.loss.scale.as_tuple(), [int(v) for v in res.predictions]))
            seen[y] = True
            ex.store(m)
    return Reference(steps, evals, reference_entries(ex, m, project), program.macs)


def run_stream_on_target(model, target: str, *, x, labels, labelled, update: str = "full", optim=None,
                         options=None, seed: int = 0, mask_unseen: bool = False, known_classes=(),
                         work_dir=None, opt: str = "-O2", timeout_s: float = 600.0,
                         model_spec: str | None = None) -> StreamDeviceReport:
    """Run the stream ``x`` (int8 ``(N, *input_shape)``) test-then-train on ``target`` with the
    ``update`` selection, the optimiser ``optim`` and rounding seed ``seed``, and compare it with
    the simulator (see the module docstring). ``labels`` ``(N,)`` are used where ``labelled`` ``(N,)``
    is true. ``model`` itself is not changed. The project and build go to ``work_dir`` (a temporary
    directory, removed afterwards, when None).

    Raises :class:`TargetError` (a ``TintinError``) on bad input, and the errors of
    :func:`tintin.targets.run_on_target` (missing toolchain, :class:`DoesNotFitError`, build or run
    failures).

    >>> from tintin import data
    >>> from tintin.nn import build_model
    >>> from tintin.targets.stream import run_stream_on_target
    >>> ds = data.load("digits")
    >>> model = build_model("mlp", ds.sample_shape, ds.num_classes, seed=0, input_exponent=ds.input_exponent)
    >>> labelled = np.arange(8) % 2 == 0
    >>> r = run_stream_on_target(model, "host", x=ds.x_test[:8], labels=ds.y_test[:8], labelled=labelled)
    >>> r.bit_exact, len(r.predictions), r.labelled
    (True, 8, 4)
    """
    x = np.asarray(x)
    if x.dtype != np.int8 or x.ndim < 1 or tuple(x.shape[1:]) != tuple(model.input_shape) or len(x) == 0:
        raise TargetError(f"stream samples must be int8 of shape (N, {', '.join(map(str, model.input_shape))}) "
                          f"with N >= 1, got {x.dtype} {tuple(x.shape)}")
    labelled = np.asarray(labelled, dtype=bool).ravel()
    labels = np.asarray(labels).ravel()
    if labelled.shape != (len(x),) or labels.shape != (len(x),):
        raise TargetError(f"a stream of {len(x)} samples needs {len(x)} labels and label flags")
    if model.loss != "cross_entropy":
        raise TargetError("a stream runs on a classifier (cross-entropy loss)")
    classes = model.output_shape_[0]
    y = labels[labelled].astype(np.int64)
    if y.size and (y.min() < 0 or y.max() >= classes):
        raise TargetError(f"labels must be in [0, {classes})")
    if work_dir is None:
        with tempfile.TemporaryDirectory(prefix="tintin-stream-") as tmp:
            return run_stream_on_target(model, target, x=x, labels=labels, labelled=labelled, update=update,
                                        optim=optim, options=options, seed=seed, mask_unseen=mask_unseen,
                                        known_classes=known_classes, work_dir=tmp, opt=opt, timeout_s=timeout_s,
                                        model_spec=model_spec)
    work = Path(work_dir)
    t0 = time.perf_counter()
    tgt, project = prepare_project(model, target, work, update=update, batch_size=1, optim=optim, options=options,
                                   model_spec=model_spec)
    drv = render_stream_driver(project.model, x_samples=x, labels=np.where(labelled, labels, 0), labelled=labelled,
                               seed=seed, mask_unseen=mask_unseen, known_classes=known_classes)
    built = build_driver_program(project, target, drv, work, opt=opt, model_spec=model_spec)
    build_s = time.perf_counter() - t0
    t1 = time.perf_counter()
    res = run(target, built, timeout_s=timeout_s)
    run_s = time.perf_counter() - t1
    dev = parse_output(res.stdout, classifier=True)
    t2 = time.perf_counter()
    ref = simulate_stream(model, project, x=x, labels=labels, labelled=labelled, seed=seed, mask_unseen=mask_unseen,
                          known_classes=known_classes)
    ref_s = time.perf_counter() - t2
    n_learn = int(labelled.sum())
    mismatches = compare(dev, ref, project, steps=n_learn, n_eval=len(x), classifier=True)
    predict_counts, learn_counts = [], []
    counts = list(res.counts)
    if counts:  # marks bracket each prediction and each training step: every other count is one
        k = 0
        for j in range(len(x)):
            predict_counts.append(counts[k] if k < len(counts) else 0)
            k += 2
            if labelled[j]:
                learn_counts.append(counts[k] if k < len(counts) else 0)
                k += 2
    return StreamDeviceReport(
        target=target, machine=res.machine, count_unit=res.count_unit, update=project.program.update,
        samples=len(x), labelled=n_learn, bit_exact=not mismatches, mismatches=mismatches,
        predictions=[int(e[1]) for e in dev.evals], predict_counts=predict_counts, learn_counts=learn_counts,
        planned_arena_bytes=project.plan.arena_bytes, text_bytes=built.text_bytes, data_bytes=built.data_bytes,
        bss_bytes=built.bss_bytes, stack_used_bytes=res.stack_used_bytes,
        softfloat_symbols=check_no_softfloat(built) if tgt.family != "host" else [],
        build_seconds=build_s, run_seconds=run_s, reference_seconds=ref_s, losses=[s[1] for s in dev.steps])
