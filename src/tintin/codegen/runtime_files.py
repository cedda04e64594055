"""Which runtime ``.c`` files a generated project needs: the files that define the symbols its sources
reference, and, transitively, the symbols those files reference.

A project is compiled and linked as a whole (``make example``, a firmware build without
``--gc-sections``), so every file it contains must find every function it calls. The selection
therefore follows the symbols, not the program's ops:

>>> from tintin.codegen.runtime_files import runtime_files_for
>>> [f for f in runtime_files_for(["st = tt_relu_forward_s8(x, 4, y);"]) if f.endswith(".c")]
['tt_activation.c', 'tt_numerics.c', 'tt_tables.c']
>>> [f for f in runtime_files_for(["st = tt_linear_forward_x4_s8(...);"]) if f.endswith(".c")]
['tt_dot.c', 'tt_internal.c', 'tt_linear.c', 'tt_numerics.c', 'tt_tables.c']
"""

from __future__ import annotations

import re
from functools import lru_cache
from typing import Iterable

from . import RUNTIME_DIR

_COMMENT = re.compile(r"/\*.*?\*/|//[^\n]*", re.S)
_IDENT = re.compile(r"\btt_\w+\b")
#: an external definition at column 0: a type, then the name, then "(" or "[" (not a prototype)
_DEFINITION = re.compile(r"^(?!static\b|extern\b|typedef\b)[A-Za-z_][\w \t\*]*?\b(tt_\w+)\s*[\(\[]", re.M)
#: static inline functions of the headers: their calls land in whichever file calls them
_INLINE = re.compile(r"^static inline [^\n]*?\b(tt_\w+)\s*\((.*?)^\}", re.S | re.M)
#: tables defined by a header in the one file that asks for the definitions (tt_tables.c)
_IMPLEMENTED_BY = {"tt_tables.c": "tt_tables.h"}


def _strip(text: str) -> str:
    return _COMMENT.sub(" ", text)


def _definitions(text: str) -> set[str]:
    """Names defined at file scope: a function whose signature reaches "{" before any ";", or a
    declaration with ``__attribute__((alias(...)))`` (another name of a function defined there)."""
    out = set()
    for m in _DEFINITION.finditer(text):
        brace, semi = text.find("{", m.end()), text.find(";", m.end())
        if (brace != -1 and (semi == -1 or brace < semi)) or (semi != -1 and "alias(" in text[m.end():semi]):
            out.add(m.group(1))
    return out


def _inline_refs(root) -> dict[str, set[str]]:
    """Header inline function -> the names its body uses."""
    out: dict[str, set[str]] = {}
    for h in sorted(root.glob("*.h")):
        for m in _INLINE.finditer(_strip(h.read_text())):
            out.setdefault(m.group(1), set()).update(_IDENT.findall(m.group(2)))
    return out


@lru_cache(maxsize=None)
def _index(runtime_dir: str) -> tuple[dict[str, str], dict[str, frozenset[str]], dict[str, set[str]]]:
    """``(symbol -> defining .c file, .c file -> symbols it references, header inline function ->
    names it uses)``."""
    root = type(RUNTIME_DIR)(runtime_dir)
    inline_refs = _inline_refs(root)
    defined: dict[str, str] = {}
    refs: dict[str, frozenset[str]] = {}
    for c in sorted(root.glob("*.c")):
        text = _strip(c.read_text())
        names = _definitions(text)
        if c.name in _IMPLEMENTED_BY:
            header = _strip((root / _IMPLEMENTED_BY[c.name]).read_text())
            names |= {m.group(1) for m in re.finditer(r"^const\b[^;=]*?\b(tt_\w+)\s*\[[^;]*?=", header, re.M)}
        for n in names:
            defined[n] = c.name
        refs[c.name] = frozenset(_expand(set(_IDENT.findall(text)), inline_refs))
    return defined, refs, inline_refs


def _expand(names: set[str], inline_refs: dict[str, set[str]]) -> set[str]:
    """``names`` plus everything the header inline functions among them call (transitively)."""
    out, todo = set(names), [n for n in names if n in inline_refs]
    while todo:
        for n in inline_refs[todo.pop()]:
            if n not in out:
                out.add(n)
                if n in inline_refs:
                    todo.append(n)
    return out


def runtime_files_for(texts: Iterable[str]) -> list[str]:
    """Runtime ``.c`` files that C sources ``texts`` need (the closure over referenced symbols),
    sorted, followed by every runtime header."""
    defined, refs, inline_refs = _index(str(RUNTIME_DIR))
    wanted: set[str] = set()
    for t in texts:
        wanted |= _expand(set(_IDENT.findall(_strip(t))), inline_refs)
    files: set[str] = set()
    todo = sorted({defined[n] for n in wanted if n in defined})
    while todo:
        f = todo.pop()
        if f in files:
            continue
        files.add(f)
        todo += [defined[n] for n in refs[f] if n in defined and defined[n] not in files]
    headers = sorted(p.name for p in RUNTIME_DIR.glob("*.h"))
    return sorted(files) + headers
