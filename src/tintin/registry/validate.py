"""SHACL validation of descriptions (pyshacl) before they enter the graph."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from .errors import DescriptionRejected

SHAPES_FILE = Path(__file__).resolve().parent / "shapes.ttl"


@lru_cache(maxsize=1)
def shapes_graph():
    import rdflib

    g = rdflib.Graph()
    g.parse(SHAPES_FILE, format="turtle")
    return g


def _short(term) -> str:
    from .vocab import PREFIXES

    text = str(term)
    for prefix, ns in PREFIXES.items():
        if text.startswith(ns):
            return f"{prefix}:{text[len(ns):]}"
    return text


def violations(data) -> list[str]:
    """One line per SHACL violation of the graph ``data`` (empty: it conforms), sorted."""
    import pyshacl
    from rdflib import Namespace
    from rdflib.namespace import RDF

    sh = Namespace("http://www.w3.org/ns/shacl#")
    conforms, results, _ = pyshacl.validate(data, shacl_graph=shapes_graph(), inference="none",
                                            advanced=False, allow_warnings=False)
    if conforms:
        return []
    lines = []
    for r in results.subjects(RDF.type, sh.ValidationResult):
        focus = results.value(r, sh.focusNode)
        message = results.value(r, sh.resultMessage)
        value = results.value(r, sh.value)
        line = f"<{focus}>: {message}"
        if value is not None:
            line += f" (got {_short(value)})"
        lines.append(line)
    return sorted(set(lines))


def validate_description(description, graph=None) -> None:
    """Raise :class:`DescriptionRejected` (one line) unless ``description`` conforms to the
    shapes. References to other artefacts (a parent model, the model a run measured) must resolve
    in ``description`` or in ``graph`` (the registry so far)."""
    from rdflib import URIRef

    from .store import new_graph

    data = new_graph()
    for t in description:
        data.add(t)
    if graph is not None:  # the descriptions of the artefacts it points to (already valid)
        from .store import artefact_of

        known = {artefact_of(s) for s in description.subjects()}
        for target in {artefact_of(o) for o in description.objects()
                       if isinstance(o, URIRef) and str(o).startswith("urn:tintin:")} - known:
            for s in {s for s in graph.subjects() if artefact_of(s) == target}:
                for t in graph.triples((s, None, None)):
                    data.add(t)
    found = violations(data)
    if found:
        more = f" (and {len(found) - 1} more)" if len(found) > 1 else ""
        raise DescriptionRejected(f"description rejected: {found[0]}{more}")
