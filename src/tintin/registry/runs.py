"""Measured training runs (``tintin run`` results) as SOSA observations of a registered model."""

from __future__ import annotations

import hashlib
import json

from .errors import RegistryError
from .vocab import RUN_BASE, TINTIN_CONTEXT

_KEYS = ("target", "machine", "count_unit", "dataset", "update", "batch_size", "steps", "bit_exact",
         "instructions_per_step", "cycles_per_step", "macs_per_step", "arena_bytes", "text_bytes", "data_bytes",
         "bss_bytes", "device_eval_accuracy", "eval_samples")


def describe_run(result: dict, model: str) -> dict:
    """The observation of one ``tintin run --json`` ``result`` of the model with IRI ``model``:
    instructions (Cortex-M, QEMU) or cycles (AVR, simavr) per training step on its target, keyed
    by the hash of the measured figures (registering the same result twice adds nothing).

        doc = describe_run(json.loads(run_output), "urn:tintin:model:<sha256>")
    """
    unit = result.get("count_unit")
    per_step = result.get(f"{'cycles' if unit == 'cycles' else 'instructions'}_per_step")
    if not isinstance(per_step, (int, float)) or isinstance(per_step, bool) or not result.get("target"):
        raise RegistryError("the run result has no target or no per-step count to register")
    kept = {k: result.get(k) for k in _KEYS}
    key = hashlib.sha256(json.dumps({"model": model, **kept}, sort_keys=True, default=str).encode()).hexdigest()
    iri = RUN_BASE + key
    prop = "tt:cyclesPerTrainingStep" if unit == "cycles" else "tt:instructionsPerTrainingStep"
    doc = {
        "@context": TINTIN_CONTEXT,
        "id": iri,
        "type": ["sosa:Observation", "tt:TrainingRun"],
        "featureOfInterest": model,
        "observedProperty": prop,
        "result": float(per_step),
        "tt:target": str(result["target"]),
        "tt:updateMode": str(result.get("update") or "full"),
        "tt:batchSize": int(result.get("batch_size") or 1),
        "tt:bitExact": bool(result.get("bit_exact")),
        "tt:sha256": key,
    }
    if result.get("machine"):
        doc["tt:machine"] = str(result["machine"])
    if result.get("steps"):
        doc["tt:steps"] = int(result["steps"])
    if result.get("dataset"):
        doc["tt:dataset"] = str(result["dataset"])
    acc = result.get("device_eval_accuracy")
    if isinstance(acc, (int, float)) and not isinstance(acc, bool) and result.get("dataset"):
        doc["tt:deviceAccuracy"] = float(acc)
    if isinstance(result.get("arena_bytes"), int):
        doc["tt:arenaBytes"] = int(result["arena_bytes"])
    return doc
