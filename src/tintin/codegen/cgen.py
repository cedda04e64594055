"""Small helpers that write C99 source text: identifiers, integer literals, constant arrays."""

from __future__ import annotations

from tintin.errors import TintinError

import re

import numpy as np

#: C element type of each IR dtype
CTYPE = {"int8": "int8_t", "uint8": "uint8_t", "int16": "int16_t", "uint16": "uint16_t", "int32": "int32_t",
         "int64": "int64_t"}


class CodegenError(TintinError, ValueError):
    """A program, model or option the code generator cannot turn into C (one-line message)."""


def c_ident(name: str) -> str:
    """A C identifier for a tintin buffer or parameter name (``fc1.weight.grad_tile`` ->
    ``fc1_weight_grad_tile``); names starting with a digit get a leading underscore."""
    ident = re.sub(r"[^0-9A-Za-z_]", "_", name)
    return f"_{ident}" if ident[:1].isdigit() else ident


class IdentTable:
    """Unique C identifiers for a set of names (collisions get a numeric suffix)."""

    def __init__(self):
        self._by_name: dict[str, str] = {}
        self._used: set[str] = set()

    def __getitem__(self, name: str) -> str:
        ident = self._by_name.get(name)
        if ident is None:
            base = c_ident(name)
            ident, k = base, 2
            while ident in self._used:
                ident, k = f"{base}_{k}", k + 1
            self._by_name[name] = ident
            self._used.add(ident)
        return ident


def c_int(value: int, ctype: str = "int32_t") -> str:
    """An integer literal valid for ``ctype`` on 16-bit-int targets (AVR) too."""
    v = int(value)
    if ctype == "int64_t":
        if v == -(1 << 63):
            return "INT64_MIN"
        return f"{v}LL"
    if ctype in ("int32_t",) and v == -(1 << 31):
        return "INT32_MIN"
    if ctype in ("int32_t", "uint32_t") and abs(v) > 32767:
        return f"{v}L" if ctype == "int32_t" else f"{v}UL"
    return str(v)


def c_size(value: int) -> str:
    """A ``size_t`` literal."""
    return f"{int(value)}u"


def c_scale(scale) -> str:
    """A ``tt_scale_t`` initialiser ``{S, U, D}``."""
    return f"{{{int(scale.S)}, {int(scale.U)}, {int(scale.D)}}}"


def c_array_body(values, ctype: str, per_line: int = 24, indent: str = "    ") -> str:
    """The comma-separated elements of a C array initialiser, ``per_line`` per line."""
    flat = np.asarray(values).ravel()
    if flat.size == 0:
        return indent + "0"
    if ctype in ("int8_t", "uint8_t", "int16_t", "uint16_t"):
        items = [str(int(v)) for v in flat.tolist()]
    else:
        items = [c_int(v, ctype) for v in flat.tolist()]
    lines = []
    for i in range(0, len(items), per_line):
        lines.append(indent + ", ".join(items[i:i + per_line]))
    return ",\n".join(lines)


def c_array(ctype: str, name: str, values, *, const: bool = True, static: bool = True, rom: bool = False,
            per_line: int = 24) -> str:
    """A complete constant array definition; ``rom`` places it in flash on AVR (``TT_ROM``)."""
    flat = np.asarray(values).ravel()
    qual = ("static " if static else "") + ("const " if const else "")
    attr = " TT_ROM" if rom else ""
    n = max(flat.size, 1)
    return f"{qual}{ctype} {name}[{n}]{attr} = {{\n{c_array_body(flat, ctype, per_line)}\n}};\n"


def comment(text: str) -> str:
    """A C comment (``*/`` inside the text is defused)."""
    return "/* " + text.replace("*/", "* /") + " */"
