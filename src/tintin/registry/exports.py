"""Descriptions of exported C projects (the directories ``tintin export`` writes).

An exported project carries one training configuration: its update mode, batch size and planned
arena (``TT_ARENA_BYTES`` in ``tt_model.h``, the planner's figure), its parameters with their
integer scales (``tt_model.c``). It carries no flash estimate and no layer list, so its
description has neither. It is keyed by the SHA-256 of its generated files.
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

from .errors import RegistryError
from .models import _config_node, iri_part, model_iri
from .vocab import TINTIN_CONTEXT

_DTYPE_BITS = {1: 8, 2: 16, 3: 32, 4: 64}
_ROLE = {0: "frozen", 1: "trained", 2: "momentum", 3: "row_exp"}


def is_export_dir(path: str | Path) -> bool:
    path = Path(path)
    return path.is_dir() and (path / "tt_model.h").is_file() and (path / "tt_model.c").is_file()


def export_hash(path: str | Path) -> str:
    """SHA-256 over the relative names and contents of the project's files (``build/`` excluded)."""
    root = Path(path)
    h = hashlib.sha256()
    for p in sorted(q for q in root.rglob("*") if q.is_file() and "build" not in q.relative_to(root).parts):
        h.update(str(p.relative_to(root).as_posix()).encode() + b"\0")
        h.update(hashlib.sha256(p.read_bytes()).digest())
    return h.hexdigest()


def _define(header: str, name: str, path: Path) -> str:
    m = re.search(rf"^#define {name}\s+(\S+)", header, re.M)
    if not m:
        raise RegistryError(f"{path}: no {name} in tt_model.h (not a tintin export?)")
    return m.group(1)


def _int(text: str) -> int:
    return int(text.strip("()").rstrip("uUlL"))


def read_export(path: str | Path) -> dict:
    """What an exported project says about itself: model name, update mode, batch size, arena
    bytes, parameters (name, bits, count, role, scale exponents)."""
    root = Path(path)
    if not is_export_dir(root):
        raise RegistryError(f"{root} is not an exported C project (no tt_model.h / tt_model.c)")
    header = (root / "tt_model.h").read_text(errors="replace")
    source = (root / "tt_model.c").read_text(errors="replace")
    info = {"model": _define(header, "TT_MODEL_NAME", root).strip('"'),
            "update": _define(header, "TT_MODEL_UPDATE", root).strip('"'),
            "batch_size": _int(_define(header, "TT_BATCH_SIZE", root)),
            "arena_bytes": _int(_define(header, "TT_ARENA_BYTES", root)),
            "input_exponent": _int(_define(header, "TT_INPUT_EXPONENT", root))}
    params = []
    entry = re.compile(r'info->name = "([^"]+)";\s*info->dtype = (\d+)u;\s*info->role = (\d+)u;\s*'
                       r'info->count = (\d+)u;')
    for name, dtype, role, count in entry.findall(source):
        ident = re.sub(r"\W", "_", name)
        scale = re.search(rf"tt_pscale\.{ident}\.S = (-?\d+); tt_pscale\.{ident}\.U = (-?\d+); "
                          rf"tt_pscale\.{ident}\.D = (-?\d+);", source)
        params.append({"name": name, "bits": _DTYPE_BITS.get(int(dtype), 0), "role": _ROLE.get(int(role), "?"),
                       "count": int(count), "scale": tuple(int(v) for v in scale.groups()) if scale else None})
    if not params:
        raise RegistryError(f"{root}: no parameter table in tt_model.c (not a tintin export?)")
    info["parameters"] = params
    return info


def describe_export(path: str | Path) -> dict:
    """The JSON-LD description of an exported C project."""
    from ..numerics import Scale

    root = Path(path)
    info = read_export(root)
    sha = export_hash(root)
    iri = model_iri(sha)
    params = [p for p in info["parameters"] if p["role"] not in ("momentum", "row_exp")]
    tensors = []
    for p in params:
        t = {"id": f"{iri}#tensor/{iri_part(p['name'])}", "type": "tt:QuantisedTensor", "name": p["name"],
             "tt:bits": p["bits"], "tt:elementCount": p["count"], "nnet:isTrainable": p["role"] == "trained"}
        if p["scale"] is not None:
            S, U, D = p["scale"]
            t.update({"tt:scaleExponentS": S, "tt:scaleExponentU": U, "tt:scaleExponentD": D,
                      "tt:scaleValue": float(Scale.from_tuple(p["scale"]).to_float())})
        tensors.append(t)
    weights = [p["bits"] for p in params if p["name"].endswith("weight")]
    config = _config_node(iri, {"update": info["update"], "peak_sram_bytes": info["arena_bytes"]})
    config["tt:batchSize"] = info["batch_size"]
    doc = {
        "@context": TINTIN_CONTEXT,
        "id": iri,
        "type": ["nnet:NeuralNetwork", "tt:CProject"],
        "name": info["model"],
        "tt:sha256": sha,
        "tt:artefactKind": "c-project",
        "tt:importOrigin": "tintin export",
        "tt:location": str(root.resolve()),
        "tt:inputScaleExponent": info["input_exponent"],
        "tt:parameterCount": sum(p["count"] for p in params),
        "tensors": tensors,
        "trainingConfigurations": [config],
    }
    if weights:
        doc["tt:weightBits"] = max(weights)
    return doc
