"""Update selection: which parameters (and which of their rows) a training program trains.

Grammar (terms joined by ``+`` are united)::

    full              every parameter
    bias              every bias, no weight
    none              nothing (forward and loss only)
    last:K            every parameter of the last K parameterised layers
    sparse:ITEM,...   ITEM = LAYER | LAYER.weight | LAYER.bias, each optionally with [ROWS]
                      (``fc1.weight[0:8]`` or ``fc1[0:8].weight``), ROWS = a:b | i | a:b,i,...
                      (output rows / channels, 0-based, b exclusive): e.g.
                      ``sparse:fc2,fc1[0:32]``, ``bias+last:1``

Rows select entries along axis 0 of a parameter (output units of a Linear, output channels of a
convolution); a layer item with rows applies them to the layer's weight and bias. A parameter
given explicit rows is trained through :attr:`tintin.nn.Parameter.trainable_rows` even when the
rows cover it entirely: row updates saturate instead of rescaling the tensor, so frozen rows stay
bit-identical.

:func:`apply_update_selection` writes the selection into a model's ``trainable`` /
``trainable_rows`` flags, so :func:`tintin.train.train_step` and the compiled program train the
same thing.
"""

from __future__ import annotations

from tintin.errors import TintinError

import re
from dataclasses import dataclass

import numpy as np


class UpdateSelectionError(TintinError, ValueError):
    """A malformed update string, or one that does not fit the model."""


@dataclass(frozen=True)
class _Term:
    kind: str  # full | bias | none | last | item
    count: int = 0  # last:K
    layer: str = ""  # item
    param: str | None = None  # item: "weight" / "bias" / None (both)
    rows: tuple[tuple[int, int], ...] | None = None  # item: half-open ranges


_NAME = r"[A-Za-z_][A-Za-z0-9_\-]*(?:\.[A-Za-z0-9_\-]+)*"
_ITEM = re.compile(rf"^(?P<name>{_NAME})(?:\[(?P<rows>[^\[\]]*)\])?(?:\.(?P<suffix>weight|bias))?$")


def _split_items(text: str, whole: str) -> list[str]:
    """Split on commas outside brackets."""
    items, depth, cur = [], 0, []
    for ch in text:
        if ch == "[":
            depth += 1
        elif ch == "]":
            depth -= 1
            if depth < 0:
                raise UpdateSelectionError(f"unbalanced ']' in update {whole!r}")
        if ch == "," and depth == 0:
            items.append("".join(cur))
            cur = []
        else:
            cur.append(ch)
    if depth != 0:
        raise UpdateSelectionError(f"unbalanced '[' in update {whole!r}")
    items.append("".join(cur))
    return [i.strip() for i in items]


def _parse_rows(text: str, whole: str) -> tuple[tuple[int, int], ...]:
    ranges = []
    for part in text.split(","):
        part = part.strip()
        m = re.fullmatch(r"(\d+)\s*:\s*(\d+)", part) or re.fullmatch(r"(\d+)", part)
        if not m:
            raise UpdateSelectionError(f"bad row range {part!r} in update {whole!r} (use a:b, i or a:b,i)")
        a = int(m.group(1))
        b = int(m.group(2)) if m.lastindex == 2 else a + 1
        if b <= a:
            raise UpdateSelectionError(f"empty row range {part!r} in update {whole!r} (a:b needs b > a)")
        ranges.append((a, b))
    return tuple(ranges)


def _parse_term(text: str, whole: str) -> list[_Term]:
    if text in ("full", "bias", "none"):
        return [_Term(text)]
    if text.startswith("last:"):
        k = text[5:].strip()
        if not k.isdigit() or int(k) < 1:
            raise UpdateSelectionError(f"last:K needs a positive integer K, got {text!r} in update {whole!r}")
        return [_Term("last", count=int(k))]
    if text.startswith("sparse:"):
        body = text[7:].strip()
        if not body:
            raise UpdateSelectionError(f"sparse: needs at least one layer, e.g. sparse:fc2,fc1[0:32] (got {whole!r})")
        terms = []
        for item in _split_items(body, whole):
            m = _ITEM.match(item)
            if not item or not m:
                raise UpdateSelectionError(f"bad sparse item {item!r} in update {whole!r} "
                                           "(use LAYER, LAYER.weight, LAYER.bias, optionally [a:b])")
            name, param = m.group("name"), m.group("suffix")
            if param is None and (name.endswith(".weight") or name.endswith(".bias")):
                name, param = name.rsplit(".", 1)
            elif param is not None and (name.endswith(".weight") or name.endswith(".bias")):
                raise UpdateSelectionError(f"bad sparse item {item!r} in update {whole!r} (two parameter names)")
            rows = _parse_rows(m.group("rows"), whole) if m.group("rows") is not None else None
            terms.append(_Term("item", layer=name, param=param, rows=rows))
        return terms
    raise UpdateSelectionError(f"unknown update {text!r} in {whole!r} (full, bias, none, last:K, sparse:LAYER[a:b],...)")


@dataclass(frozen=True)
class UpdateSelection:
    """A parsed update string (see the module docstring). ``resolve(model)`` gives the parameters."""

    text: str
    terms: tuple[_Term, ...]

    def resolve(self, model) -> dict[str, np.ndarray | None]:
        """Parameter name -> trained rows (int64 indices, sorted) or None (all rows), for every
        trained parameter of ``model``, in ``model.parameters()`` order."""
        params = model.parameters()
        by_layer = parameterised_layers(model)
        chosen: dict[str, np.ndarray | None] = {}

        def add(p, rows):
            if p.name in chosen and chosen[p.name] is None:
                return
            if rows is None:
                chosen[p.name] = None
            else:
                old = chosen.get(p.name)
                chosen[p.name] = rows if old is None and p.name not in chosen else np.union1d(old, rows)

        for term in self.terms:
            if term.kind == "full":
                for p in params:
                    add(p, None)
            elif term.kind == "bias":
                biases = [p for p in params if p.kind == "bias"]
                if not biases:
                    raise UpdateSelectionError(f"update {self.text!r}: model {model.name!r} has no bias parameters")
                for p in biases:
                    add(p, None)
            elif term.kind == "last":
                names = list(by_layer)
                if term.count > len(names):
                    raise UpdateSelectionError(f"update {self.text!r}: model {model.name!r} has only {len(names)} "
                                               f"parameterised layers ({', '.join(names)})")
                for name in names[len(names) - term.count:]:
                    for p in by_layer[name]:
                        add(p, None)
            elif term.kind == "item":
                if term.layer not in by_layer:
                    raise UpdateSelectionError(f"update {self.text!r}: no parameterised layer {term.layer!r} "
                                               f"(layers: {', '.join(by_layer)})")
                targets = [p for p in by_layer[term.layer] if term.param is None or p.kind == term.param]
                if not targets:
                    raise UpdateSelectionError(f"update {self.text!r}: layer {term.layer!r} has no {term.param}")
                for p in targets:
                    if term.rows is None:
                        add(p, None)
                        continue
                    n = p.value.m.shape[0]
                    for a, b in term.rows:
                        if b > n:
                            raise UpdateSelectionError(f"update {self.text!r}: rows {a}:{b} out of range for "
                                                       f"{p.name} ({n} rows)")
                    rows = np.unique(np.concatenate([np.arange(a, b, dtype=np.int64) for a, b in term.rows]))
                    add(p, rows)
        if not chosen and not any(t.kind == "none" for t in self.terms):
            raise UpdateSelectionError(f"update {self.text!r} selects no parameter of {model.name!r}")
        order = {p.name: i for i, p in enumerate(params)}
        return {name: chosen[name] for name in sorted(chosen, key=order.__getitem__)}


def parse_update(text: str | UpdateSelection) -> UpdateSelection:
    """Parse an update string; raises :class:`UpdateSelectionError` with a one-line message."""
    if isinstance(text, UpdateSelection):
        return text
    if not isinstance(text, str) or not text.strip():
        raise UpdateSelectionError("empty update selection (full, bias, none, last:K, sparse:LAYER[a:b],...)")
    whole = text.strip()
    terms: list[_Term] = []
    for part in whole.split("+"):
        part = part.strip()
        if not part:
            raise UpdateSelectionError(f"empty term in update {whole!r}")
        terms.extend(_parse_term(part, whole))
    if any(t.kind == "none" for t in terms) and len(terms) > 1:
        raise UpdateSelectionError(f"'none' cannot be combined with other terms in update {whole!r}")
    return UpdateSelection(whole, tuple(terms))


def parameterised_layers(model) -> dict[str, list]:
    """Layer name -> its parameters, for every layer that has parameters, in model order.

    Layers are found from parameter names (``<layer>.<param>``), so layers nested inside blocks
    count as well."""
    out: dict[str, list] = {}
    for p in model.parameters():
        layer = p.name.rsplit(".", 1)[0] if "." in p.name else p.name
        out.setdefault(layer, []).append(p)
    return out


def model_selection(model) -> dict[str, np.ndarray | None]:
    """The selection a model's current ``trainable`` / ``trainable_rows`` flags express."""
    return {p.name: (None if p.trainable_rows is None else np.asarray(p.trainable_rows, dtype=np.int64))
            for p in model.parameters() if p.trainable}


def apply_update_selection(model, update: str | UpdateSelection) -> dict[str, np.ndarray | None]:
    """Set every parameter's ``trainable`` / ``trainable_rows`` from ``update``; returns the
    resolved selection (parameter name -> rows or None)."""
    chosen = parse_update(update).resolve(model)
    for p in model.parameters():
        p.trainable = p.name in chosen
        rows = chosen.get(p.name)
        p.trainable_rows = None if rows is None else rows.copy()
    return chosen
