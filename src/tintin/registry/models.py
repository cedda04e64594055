"""Model descriptions (JSON-LD): architecture, quantisation, per-update-mode memory plans,
accuracy and source.

The memory figures come from the compiler and planner that ``tintin plan`` uses
(:func:`tintin.compile.compile_program`, :func:`tintin.compile.plan_memory`,
:func:`tintin.compile.cost.flash_estimate`): batch size 1, the greedy planner and the default
compile options, like ``tintin plan MODEL --update U`` without further options.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import numpy as np

from .vocab import MODEL_BASE, TINTIN_CONTEXT, measure

DEFAULT_PLANNER = "greedy"
"""The planner of ``tintin plan`` by default, used for every planned figure."""


def model_iri(sha256: str) -> str:
    return MODEL_BASE + sha256


def model_content_hash(model) -> str:
    """SHA-256 of a model's content: its spec, every parameter's scale, bits, trainability and
    mantissas. Equal models (zoo builds with the same seed and shape) get equal hashes."""
    h = hashlib.sha256()
    params = {p.name: {"scale": list(p.value.scale.as_tuple()), "bits": p.bits, "kind": p.kind,
                       "trainable": p.trainable,
                       "rows": None if p.trainable_rows is None else [int(r) for r in p.trainable_rows]}
              for p in model.parameters()}
    h.update(json.dumps({"spec": model.spec(), "parameters": params}, sort_keys=True).encode())
    for p in model.parameters():
        m = np.ascontiguousarray(p.value.m)
        h.update(f"{p.name}:{m.dtype.str}:{m.shape}".encode())
        h.update(m.tobytes())
    return h.hexdigest()


def file_hash(path: str | os.PathLike) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def iri_part(text) -> str:
    """``text`` made safe as one segment of a node IRI (percent-encoded)."""
    from urllib.parse import quote

    return quote(str(text), safe="-._~+:@")


def _scale_value(s) -> float:
    return float(s.to_float())


def plan_update_modes(model, updates=None, cores=None, optim=None) -> list[dict]:
    """For each update mode that compiles for ``model`` (default: ``full``, ``last:K`` ...,
    ``bias+last:1``, ``bias``, as :func:`tintin.compile.fit.candidate_updates`): the planned peak
    SRAM, trained-parameter bytes, MACs per step and the flash needed on each core of ``cores``
    (default: every core of the device profiles). Modes that do not apply are left out."""
    from ..compile import CompileError, CompileOptions, UpdateSelectionError, compile_program, plan_memory
    from ..compile.cost import flash_estimate, program_cost
    from ..compile.fit import candidate_updates
    from ..compile.ir import BufferKind, Memory

    if cores is None:
        from ..targets.device_profiles import load_cores

        cores = list(load_cores())
    out = []
    for update in updates or candidate_updates(model):
        try:
            program = compile_program(model, update, 1, optim=optim, options=CompileOptions())
        except (CompileError, UpdateSelectionError):
            continue
        plan = plan_memory(program, DEFAULT_PLANNER)
        cost = program_cost(program)
        trained = sum(b.nbytes for b in program.buffers.values()
                      if b.memory is Memory.SRAM and b.kind is BufferKind.PARAMETER)
        out.append({"update": update, "program_update": program.update, "peak_sram_bytes": plan.arena_bytes,
                    "trained_parameter_bytes": trained, "macs_per_step": int(cost.macs),
                    "forward_macs": int(cost.totals().get("forward", {}).get("macs", 0)),
                    "flash_bytes": {core: flash_estimate(program, plan, core).total for core in cores}})
    return out


def _config_node(iri: str, entry: dict) -> dict:
    node = iri + "#update/" + iri_part(entry["update"])
    d = {"id": node, "type": "tt:TrainingConfiguration", "tt:updateMode": entry["update"], "tt:batchSize": 1,
         "tt:planner": entry.get("planner", DEFAULT_PLANNER),
         "tt:peakSram": measure(node + "/sram", int(entry["peak_sram_bytes"]), "byte")}
    if entry.get("trained_parameter_bytes") is not None:
        d["tt:trainedParameterBytes"] = int(entry["trained_parameter_bytes"])
    if entry.get("macs_per_step") is not None:
        d["tt:macsPerTrainingStep"] = int(entry["macs_per_step"])
    flash = entry.get("flash_bytes") or {}
    if flash:
        d["flashRequirements"] = [{"id": f"{node}/flash/{iri_part(core)}", "type": "tt:FlashRequirement", "tt:forCore": core,
                                   "tt:flash": measure(f"{node}/flash/{iri_part(core)}/bytes", int(n), "byte")}
                                  for core, n in sorted(flash.items())]
    return d


def _evaluation_nodes(iri: str, evaluations: list[dict]) -> list[dict]:
    out = []
    for e in evaluations:
        node = f"{iri}#accuracy/{iri_part(e['dataset'])}/{iri_part(e.get('evaluated_on', 'simulator'))}"
        out.append({"id": node, "type": "tt:Evaluation", "tt:dataset": e["dataset"],
                    "tt:accuracy": float(e["accuracy"]), "tt:evaluatedOn": e.get("evaluated_on", "simulator")})
    return out


def describe_model(model, *, sha256: str | None = None, kind: str = "model", origin: str = "tintin",
                   location: str | None = None, evaluations=(), parent: str | None = None,
                   created: str | None = None, updates=None, plans: list[dict] | None = None, optim=None) -> dict:
    """The JSON-LD description of ``model`` (an :class:`tintin.nn.Sequential`).

    ``sha256`` keys it (default: :func:`model_content_hash`); ``kind`` is ``model-file`` or
    ``zoo``; ``origin`` says where it came from (``zoo``, ``tintin train``, ``onnx``, ...);
    ``evaluations`` are ``{"dataset", "accuracy" (0..1), "evaluated_on"}``; ``parent`` is the IRI
    of the model it was derived from. ``plans`` (from :func:`plan_update_modes`) are computed when
    not given.

        from tintin.nn import build_model
        doc = describe_model(build_model("mlp", (1, 8, 8), 10, seed=0))
        [c["tt:updateMode"] for c in doc["trainingConfigurations"]]   # ['full', 'last:1', ...]
    """
    sha256 = sha256 or model_content_hash(model)
    iri = model_iri(sha256)
    plans = plan_update_modes(model, updates, optim=optim) if plans is None else plans
    forward_macs = next((p["forward_macs"] for p in plans if "forward_macs" in p), None)
    layers = []
    for i, (name, typ, shape, count) in enumerate(model.summary()):
        layers.append({"id": f"{iri}#layer/{i}", "type": "nnet:Layer", "name": name, "tt:layerIndex": i,
                       "tt:layerType": typ, "tt:outputShape": "x".join(map(str, shape)),
                       "tt:parameterCount": int(count),
                       "nnet:isTrainable": any(p.trainable for p in model.layers[i].parameters())})
    tensors = []
    for p in model.parameters():
        s = p.value.scale
        S, U, D = s.as_tuple()
        tensors.append({"id": f"{iri}#tensor/{iri_part(p.name)}", "type": "tt:QuantisedTensor", "name": p.name,
                        "tt:tensorKind": p.kind, "tt:bits": int(p.bits), "tt:elementCount": int(p.value.m.size),
                        "tt:scaleExponentS": int(S), "tt:scaleExponentU": int(U), "tt:scaleExponentD": int(D),
                        "tt:scaleValue": _scale_value(s), "nnet:isTrainable": bool(p.trainable)})
    doc = {
        "@context": TINTIN_CONTEXT,
        "id": iri,
        "type": ["nnet:NeuralNetwork", "tt:TrainableModel"],
        "name": model.name,
        "tt:sha256": sha256,
        "tt:artefactKind": kind,
        "tt:importOrigin": origin,
        "tt:inputShape": "x".join(map(str, model.input_shape)),
        "tt:inputScaleExponent": int(model.input_exponent),
        "tt:loss": model.loss,
        "tt:scaleFormat": model.config.scale_mode.value,
        "tt:weightBits": int(model.config.weight_bits),
        "tt:parameterCount": int(model.num_parameters()),
        "layers": layers,
        "tensors": tensors,
        "trainingConfigurations": [_config_node(iri, p) for p in plans],
    }
    if forward_macs is not None:
        doc["tt:macsPerInference"] = int(forward_macs)
    if location:
        doc["tt:location"] = str(location)
    if created:
        doc["schema:dateCreated"] = str(created)
    if evaluations:
        doc["evaluations"] = _evaluation_nodes(iri, list(evaluations))
    if parent:
        doc["derivedFrom"] = parent
    return doc


def info_evaluations(info: dict) -> list[dict]:
    """Accuracy figures a model file's ``info`` carries (``tintin train`` writes ``dataset`` and
    ``test_accuracy``)."""
    acc, ds = info.get("test_accuracy"), info.get("dataset")
    if isinstance(acc, (int, float)) and not isinstance(acc, bool) and isinstance(ds, str) and 0 <= acc <= 1:
        return [{"dataset": ds, "accuracy": float(acc), "evaluated_on": "simulator"}]
    return []


def info_origin(info: dict) -> str:
    """Where a model file came from, from its ``info``: ``import_origin`` / ``origin`` if set,
    ``tintin train`` when it holds training settings, else ``model file``."""
    for key in ("import_origin", "origin", "imported_from"):
        if isinstance(info.get(key), str) and info[key]:
            return info[key]
    return "tintin train" if "train" in info else "model file"


def describe_model_file(path: str | os.PathLike, parent: str | None = None, plans=None) -> dict:
    """The description of a model file, keyed by the SHA-256 of the file. ``parent``: the IRI of
    the model it derives from (default: ``info["parent_sha256"]`` when the file names one)."""
    from ..io import load_model

    path = Path(path)
    model, info = load_model(path)
    parent_hash = info.get("parent_sha256")
    if parent is None and isinstance(parent_hash, str) and parent_hash:
        parent = model_iri(parent_hash)
    return describe_model(model, sha256=file_hash(path), kind="model-file", origin=info_origin(info),
                          location=str(path.resolve()), evaluations=info_evaluations(info), parent=parent,
                          created=info.get("created") if isinstance(info.get("created"), str) else None, plans=plans)
