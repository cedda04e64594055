"""Which models train on which devices with which update mode, answered from the graph alone.

A model fits a device with an update mode when the planned peak SRAM (plus ``reserve`` bytes)
is at most the device's SRAM and the flash planned for the device's core is at most its flash:
the rule of ``tintin plan --device`` (:func:`tintin.compile.fit.check_fit`). ``fits`` is None when
the description has no flash figure for the core (exported C projects).
"""

from __future__ import annotations

from .errors import RegistryError

MATCH_QUERY = """
SELECT ?model ?modelName ?sha ?kind ?device ?deviceName ?core ?update ?sram ?sramCapacity ?flash ?flashCapacity
       ?accuracy ?target ?measured ?measuredProperty
WHERE {
  ?model a nnet:NeuralNetwork ; schema:name ?modelName ; tt:sha256 ?sha ; tt:artefactKind ?kind ;
         tt:hasTrainingConfiguration ?cfg .
  ?cfg tt:updateMode ?update ; tt:batchSize 1 ; tt:peakSram/om:hasNumericalValue ?sram .
  ?device a tt:Microcontroller ; tt:deviceName ?deviceName ; tt:core ?core ;
          tt:sramCapacity/om:hasNumericalValue ?sramCapacity ; tt:flashCapacity/om:hasNumericalValue ?flashCapacity .
  OPTIONAL { ?cfg tt:flashRequirement ?fr . ?fr tt:forCore ?core ; tt:flash/om:hasNumericalValue ?flash . }
  OPTIONAL { ?model tt:hasEvaluation/tt:accuracy ?accuracy . }
  OPTIONAL { ?device tt:emulatorTarget ?target . }
  OPTIONAL { ?run a tt:TrainingRun ; sosa:hasFeatureOfInterest ?model ; tt:target ?target ; tt:updateMode ?update ;
                  tt:batchSize 1 ; sosa:hasSimpleResult ?measured ; sosa:observedProperty ?measuredProperty . }
  FILTERS
}
ORDER BY ?modelName ?sha ?deviceName ?update
"""


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
    filters = []
    if model is not None:
        filters.append(f"FILTER(?model = <{registry.resolve(model)}>)")
    if device is not None:
        iri = registry.resolve(device)
        filters.append(f"FILTER(?device = <{iri}>)")
    if update is not None:
        filters.append(f"FILTER(?update = {_literal(update)})")
    query = MATCH_QUERY.replace("FILTERS", "\n  ".join(filters))
    rows: dict[tuple, dict] = {}
    for r in registry.query(query):
        key = (str(r.model), str(r.device), str(r.update))
        sram, flash = int(r.sram), (int(r.flash) if r.flash is not None else None)
        row = rows.get(key)
        if row is None:
            sram_cap, flash_cap = int(r.sramCapacity), int(r.flashCapacity)
            sram_ok = sram + reserve <= sram_cap
            fits = None if flash is None else (sram_ok and flash <= flash_cap)
            if flash is None and not sram_ok:
                fits = False
            row = rows[key] = {
                "model": str(r.modelName), "model_iri": str(r.model), "sha256": str(r.sha), "kind": str(r.kind),
                "device": str(r.deviceName), "core": str(r.core), "update": str(r.update), "fits": fits,
                "peak_sram_bytes": sram, "sram_needed": sram + reserve, "sram_capacity": sram_cap,
                "sram_margin": sram_cap - sram - reserve, "flash_bytes": flash, "flash_capacity": flash_cap,
                "flash_margin": None if flash is None else flash_cap - flash, "accuracy": None,
                "target": str(r.target) if r.target is not None else None, "measured_per_step": None,
                "measured_unit": None}
        if r.accuracy is not None:
            acc = float(r.accuracy)
            row["accuracy"] = acc if row["accuracy"] is None else max(row["accuracy"], acc)
        if r.measured is not None and row["measured_per_step"] is None:
            row["measured_per_step"] = float(r.measured)
            row["measured_unit"] = "cycles" if str(r.measuredProperty).endswith("cyclesPerTrainingStep") \
                else "instructions"
    out = list(rows.values())
    if min_accuracy is not None:
        out = [r for r in out if r["accuracy"] is not None and r["accuracy"] >= min_accuracy]
    return out
