"""Seeded mutations of tintin model files, for the loader's regression and fuzz tests.

A file is split into its safetensors header (a dict), the tintin metadata document (a dict) and the
tensor bytes; mutations act on the bytes, the header or the document, and :func:`assemble` writes
the result back. Values that ``json.dumps`` cannot produce (deep nesting, integers with thousands
of digits, ``1e999``) are written as sentinel strings and substituted in the text.
"""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass

import numpy as np

SENTINEL = "@@RAW{}@@"


@dataclass
class Parts:
    header: dict
    doc: dict
    data: bytes
    raw: dict  # sentinel -> JSON text


def split(blob: bytes) -> Parts:
    n = int.from_bytes(blob[:8], "little")
    header = json.loads(blob[8:8 + n])
    doc = json.loads(header["__metadata__"]["tintin"])
    return Parts(header, doc, blob[8 + n:], {})


def raw_value(parts: Parts, text: str) -> str:
    key = SENTINEL.format(len(parts.raw))
    parts.raw[key] = text
    return key


def _substitute(text: str, raw: dict, quoted: str) -> str:
    for key, value in raw.items():
        text = text.replace(quoted.format(key), value)
    return text


def assemble(parts: Parts) -> bytes:
    header = dict(parts.header)
    header["__metadata__"] = dict(header["__metadata__"],
                                  tintin=_substitute(json.dumps(parts.doc), parts.raw, '"{}"'))
    body = json.dumps(header).encode()
    body += b" " * (-len(body) % 8)
    return len(body).to_bytes(8, "little") + body + parts.data


def _paths(node, prefix=()):
    yield prefix
    if isinstance(node, dict):
        for k, v in node.items():
            yield from _paths(v, prefix + (k,))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            yield from _paths(v, prefix + (i,))


def _get(node, path):
    for k in path:
        node = node[k]
    return node


def _set(root, path, value):
    _get(root, path[:-1])[path[-1]] = value


WRONG_TYPES = ["x", 1.5, True, False, None, [], {}, -1, 0, [1, 2], {"a": 1}, "1"]
INT_CHANGES = [lambda v: v + 1, lambda v: v - 1, lambda v: v * 2, lambda v: 0, lambda v: -1, lambda v: 20000,
               lambda v: 40000, lambda v: -40000, lambda v: 127, lambda v: 128, lambda v: -129, lambda v: 2**31,
               lambda v: 2**63, lambda v: -(2**63) - 1, lambda v: 66573]
HUGE_TEXT = ["9" * 5000, "-" + "9" * 400, "1e999", "-1e999", "1" + "0" * 30, "NaN", "Infinity", "1e308", "2.5"]
VERSIONS = [" 1", "\u0661", "01", "1 ", "2", "0", "", "1.0", "+1", "\uff11", "1\n", "99999999999999999999"]
DTYPES = ["I8", "I16", "I32", "I64", "BF16", "F16", "F32", "F64", "U8", "BOOL", "F8_E4M3", "I4", "", "i8"]


def mutate_document(parts: Parts, rng: np.random.Generator) -> str:
    doc = parts.doc
    paths = [p for p in _paths(doc) if p]
    path = paths[rng.integers(len(paths))]
    value = _get(doc, path)
    op = rng.choice(["type", "huge", "nest", "delete", "add", "int", "int", "int", "list", "rows", "scale"])
    if op == "type":
        _set(doc, path, copy.deepcopy(WRONG_TYPES[rng.integers(len(WRONG_TYPES))]))
    elif op == "huge":
        _set(doc, path, raw_value(parts, HUGE_TEXT[rng.integers(len(HUGE_TEXT))]))
    elif op == "nest":
        depth = int(rng.choice([40, 3000, 20000]))
        _set(doc, path, raw_value(parts, "[" * depth + "]" * depth))
    elif op == "delete":
        parent = _get(doc, path[:-1])
        del parent[path[-1]]
    elif op == "add":
        target = value if isinstance(value, dict) else _get(doc, path[:-1])
        if isinstance(target, dict):
            target["unexpected"] = 1
        else:
            target.append(copy.deepcopy(target[0]) if target else 1)
    elif op == "int":
        ints = [p for p in paths if type(_get(doc, p)) is int]
        path = ints[rng.integers(len(ints))]
        _set(doc, path, INT_CHANGES[rng.integers(len(INT_CHANGES))](_get(doc, path)))
    elif op == "list":
        lists = [p for p in paths if isinstance(_get(doc, p), list) and len(_get(doc, p)) > 1]
        seq = _get(doc, lists[rng.integers(len(lists))])
        i, j = rng.integers(len(seq), size=2)
        if rng.random() < 0.5:
            seq[i], seq[j] = seq[j], seq[i]
        else:
            seq.insert(int(i), copy.deepcopy(seq[j]))
    elif op == "rows":
        params = doc["parameters"]
        name = list(params)[rng.integers(len(params))]
        params[name]["trainable_rows"] = copy.deepcopy([[0, 0], [-1], [10**6], ["1"], [1.0], [], [0, 1, 2],
                                                        [3, 1], 5, "0", [True]][rng.integers(11)])
    else:
        params = doc["parameters"]
        name = list(params)[rng.integers(len(params))]
        params[name]["scale"][rng.integers(3)] = int(rng.choice([40000, -40000, 129, -129, 3, -1, 64, 65, 16001]))
    return f"doc {op} {'/'.join(map(str, path))}"


def mutate_header(parts: Parts, rng: np.random.Generator) -> str:
    names = [k for k in parts.header if k != "__metadata__"]
    name = names[rng.integers(len(names))]
    entry = parts.header[name]
    op = rng.choice(["dtype", "shape", "offsets", "version", "format", "drop", "rename"])
    if op == "dtype":
        entry["dtype"] = DTYPES[rng.integers(len(DTYPES))]
    elif op == "shape":
        shape = entry["shape"]
        choice = rng.integers(5)
        if choice == 0 and shape:
            shape[rng.integers(len(shape))] += int(rng.choice([-1, 1, 20000]))
        elif choice == 1:
            entry["shape"] = shape[::-1]
        elif choice == 2:
            entry["shape"] = shape + [1]
        elif choice == 3:
            entry["shape"] = shape[1:]
        else:
            entry["shape"] = [int(np.prod(shape))]
    elif op == "offsets":
        entry["data_offsets"][rng.integers(2)] += int(rng.choice([-8, -1, 1, 8, 10**9]))
    elif op == "version":
        parts.header["__metadata__"]["format_version"] = VERSIONS[rng.integers(len(VERSIONS))]
    elif op == "format":
        parts.header["__metadata__"]["format"] = "tintin-modem"
    elif op == "drop":
        del parts.header[name]
    else:
        parts.header[name + "x"] = parts.header.pop(name)
    return f"header {op} {name}"


def mutate(blob: bytes, rng: np.random.Generator) -> tuple[bytes, str]:
    """One seeded mutation of a model file: ``(bytes, description)``."""
    kind = rng.choice(["flip", "truncate", "header", "document", "document", "document", "values"])
    if kind == "flip":
        out = bytearray(blob)
        for _ in range(rng.integers(1, 5)):
            out[rng.integers(len(out))] = int(rng.integers(256))
        return bytes(out), "bytes flipped"
    if kind == "truncate":
        cut = int(rng.integers(len(blob)))
        return blob[:cut], f"truncated to {cut}"
    parts = split(blob)
    if kind == "header":
        what = mutate_header(parts, rng)
    elif kind == "document":
        what = mutate_document(parts, rng)
    else:  # a stored value at an extreme: -128 weights, saturated biases, huge momentum
        data = bytearray(parts.data)
        names = [k for k in parts.header if k != "__metadata__"]
        name = names[rng.integers(len(names))]
        entry = parts.header[name]
        start, stop = entry["data_offsets"]
        size = {"I8": 1, "I16": 2, "I32": 4, "I64": 8}[entry["dtype"]]
        if stop > start:
            at = start + size * int(rng.integers((stop - start) // size))
            data[at:at + size] = (-(1 << (8 * size - 1)) if rng.random() < 0.7 else (1 << (8 * size - 1)) - 1
                                  ).to_bytes(size, "little", signed=True)
        parts.data = bytes(data)
        what = f"extreme value in {name}"
    return assemble(parts), what
