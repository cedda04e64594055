"""Which models train on which devices with which update mode, answered from the graph alone.

A model fits a device with an update mode when the planned peak SRAM (plus ``reserve`` bytes)
is at most the device's SRAM and the flash planned for the device's core is at most its flash:
the rule of ``tintin plan --device`` (:func:`tintin.compile.fit.check_fit`). ``fits`` is None when
the description has no flash figure for the core (exported C projects).
"""

from __future__ import annotations

from .errors import RegistryError

CONFIG_QUERY = """
SELECT ?model ?modelName ?sha ?kind ?update ?sram ?core ?flash WHERE {
  ?model a nnet:NeuralNetwork ; schema:name ?modelName ; tt:sha256 ?sha ; tt:artefactKind ?kind ;
         tt:hasTrainingConfiguration ?cfg .
  ?cfg tt:updateMode ?update ; tt:batchSize 1 ; tt:peakSram ?peak . ?peak om:hasNumericalValue ?sram .
  OPTIONAL { ?cfg tt:flashRequirement ?fr . ?fr tt:forCore ?core ; tt:flash ?fm . ?fm om:hasNumericalValue ?flash . }
  FILTERS
}"""
"""Every training configuration at batch size 1 with its planned peak SRAM and flash per core."""

DEVICE_QUERY = """
SELECT ?device ?deviceName ?core ?sramCapacity ?flashCapacity ?target WHERE {
  ?device a tt:Microcontroller ; tt:deviceName ?deviceName ; tt:core ?core ;
          tt:sramCapacity ?sc ; tt:flashCapacity ?fc .
  ?sc om:hasNumericalValue ?sramCapacity . ?fc om:hasNumericalValue ?flashCapacity .
  OPTIONAL { ?device tt:emulatorTarget ?target . }
  FILTERS
}"""
"""Every device with its core, capacities and emulator target."""

ACCURACY_QUERY = """
SELECT ?model (MAX(?accuracy) AS ?best) WHERE { ?model tt:hasEvaluation ?e . ?e tt:accuracy ?accuracy . }
GROUP BY ?model"""

RUN_QUERY = """
SELECT ?model ?target ?update ?measured ?property WHERE {
  ?run a tt:TrainingRun ; sosa:hasFeatureOfInterest ?model ; tt:target ?target ; tt:updateMode ?update ;
       tt:batchSize 1 ; sosa:hasSimpleResult ?measured ; sosa:observedProperty ?property .
} ORDER BY ?run"""

MATCH_QUERY = """
SELECT ?modelName ?deviceName ?update ?sram ?sramCapacity ?flash ?flashCapacity ?fits WHERE {
  ?model a nnet:NeuralNetwork ; schema:name ?modelName ; tt:hasTrainingConfiguration ?cfg .
  ?cfg tt:updateMode ?update ; tt:batchSize 1 ; tt:peakSram/om:hasNumericalValue ?sram ;
       tt:flashRequirement ?fr .
  ?device a tt:Microcontroller ; tt:deviceName ?deviceName ; tt:core ?core ;
          tt:sramCapacity/om:hasNumericalValue ?sramCapacity ; tt:flashCapacity/om:hasNumericalValue ?flashCapacity .
  ?fr tt:forCore ?core ; tt:flash/om:hasNumericalValue ?flash .
  BIND(?sram <= ?sramCapacity && ?flash <= ?flashCapacity AS ?fits)
} ORDER BY ?modelName ?deviceName ?update"""
"""The match as one SPARQL query (for reading and for other tools; :func:`match` runs the four
smaller queries above and joins them, which rdflib evaluates several times faster)."""


def _literal(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def match(registry, *, model: str | None = None, device: str | None = None, update: str | None = None,
          min_accuracy: float | None = None, reserve: int = 0) -> list[dict]:
    """One row per (model, device, update mode) in the graph: ``fits``, ``peak_sram_bytes``,
    ``flash_bytes``, the capacities, the best recorded accuracy and the measured instructions or
    cycles per step on the device's emulator target when a run was registered.

    ``model`` / ``device``: anything :meth:`Registry.resolve` accepts; ``update``: a mode as
    written (``full``, ``bias``, ``last:1``); ``min_accuracy`` in [0, 1]: only models with a
    recorded accuracy at least that."""
    if reserve < 0:
        raise RegistryError(f"--reserve must be >= 0, got {reserve}")
    if min_accuracy is not None and not 0 <= min_accuracy <= 1:
        raise RegistryError(f"--min-accuracy must be in [0, 1] (or a percentage like 90%), got {min_accuracy}")
    model_filters, device_filters = [], []
    if model is not None:
        model_filters.append(f"FILTER(?model = <{registry.resolve(model)}>)")
    if update is not None:
        model_filters.append(f"FILTER(?update = {_literal(update)})")
    if device is not None:
        device_filters.append(f"FILTER(?device = <{registry.resolve(device)}>)")
    configs: dict[tuple[str, str], dict] = {}
    for r in registry.query(CONFIG_QUERY.replace("FILTERS", "\n  ".join(model_filters))):
        c = configs.setdefault((str(r.model), str(r.update)), {
            "model": str(r.modelName), "model_iri": str(r.model), "sha256": str(r.sha), "kind": str(r.kind),
            "update": str(r.update), "sram": int(r.sram), "flash": {}})
        if r.core is not None and r.flash is not None:
            c["flash"][str(r.core)] = int(r.flash)
    devices = [{"iri": str(r.device), "name": str(r.deviceName), "core": str(r.core),
                "sram": int(r.sramCapacity), "flash": int(r.flashCapacity),
                "target": str(r.target) if r.target is not None else None}
               for r in registry.query(DEVICE_QUERY.replace("FILTERS", "\n  ".join(device_filters)))]
    accuracy = {str(r.model): float(r.best) for r in registry.query(ACCURACY_QUERY) if r.best is not None}
    runs: dict[tuple[str, str, str], tuple[float, str]] = {}
    for r in registry.query(RUN_QUERY):
        unit = "cycles" if str(r.property).endswith("cyclesPerTrainingStep") else "instructions"
        runs.setdefault((str(r.model), str(r.target), str(r.update)), (float(r.measured), unit))
    out = []
    for c in sorted(configs.values(), key=lambda c: (c["model"], c["sha256"], c["update"])):
        acc = accuracy.get(c["model_iri"])
        if min_accuracy is not None and (acc is None or acc < min_accuracy):
            continue
        for d in sorted(devices, key=lambda d: d["name"]):
            sram, flash = c["sram"], c["flash"].get(d["core"])
            sram_ok = sram + reserve <= d["sram"]
            fits = (sram_ok and flash <= d["flash"]) if flash is not None else (None if sram_ok else False)
            measured, unit = runs.get((c["model_iri"], d["target"], c["update"]), (None, None))
            out.append({
                "model": c["model"], "model_iri": c["model_iri"], "sha256": c["sha256"], "kind": c["kind"],
                "device": d["name"], "core": d["core"], "update": c["update"], "fits": fits,
                "peak_sram_bytes": sram, "sram_needed": sram + reserve, "sram_capacity": d["sram"],
                "sram_margin": d["sram"] - sram - reserve, "flash_bytes": flash, "flash_capacity": d["flash"],
                "flash_margin": None if flash is None else d["flash"] - flash, "accuracy": acc,
                "target": d["target"], "measured_per_step": measured, "measured_unit": unit})
    return out
