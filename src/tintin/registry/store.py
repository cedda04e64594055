"""The registry: one RDF graph in a Turtle file, read and written atomically; no server.

Where: ``--registry PATH``, else ``$TINTIN_REGISTRY``, else ``$TINTIN_DATA/registry.ttl`` when
``TINTIN_DATA`` is set, else ``$XDG_DATA_HOME/tintin/registry.ttl`` (``~/.local/share/...``).
Turtle because it is the plain, diffable form of RDF that every tool reads; JSON-LD is the
exchange form (``export`` / ``import``, and every description is written as JSON-LD).

Every artefact has one IRI (``urn:tintin:device:<name>``, ``urn:tintin:model:<sha256>``,
``urn:tintin:run:<sha256>``) and every node of its description an IRI under it
(``<artefact>#...``), so removing an artefact removes exactly its triples.
"""

from __future__ import annotations

import contextlib
import copy
import json
import os
import warnings
from dataclasses import dataclass
from pathlib import Path

from .errors import RegistryError, require_rdf
from .vocab import DEVICE_BASE, MODEL_BASE, PREFIXES, RUN_BASE, TD_CONTEXT_SUBSET, TD_CONTEXT_URL

GRAPH_FILE = "registry.ttl"


def default_registry_path() -> Path:
    env = os.environ.get("TINTIN_REGISTRY")
    if env:
        return Path(env).expanduser()
    data = os.environ.get("TINTIN_DATA")
    if data:
        return Path(data).expanduser() / GRAPH_FILE
    xdg = os.environ.get("XDG_DATA_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".local" / "share"
    return base / "tintin" / GRAPH_FILE


def _offline_context(ctx):
    """``ctx`` with the TD 1.1 context URL replaced by :data:`TD_CONTEXT_SUBSET` (nothing fetched)."""
    if isinstance(ctx, list):
        return [_offline_context(c) for c in ctx]
    if ctx == TD_CONTEXT_URL:
        return copy.deepcopy(TD_CONTEXT_SUBSET)
    if isinstance(ctx, str):
        raise RegistryError(f"remote JSON-LD context {ctx!r} cannot be fetched offline; inline it")
    return ctx


def new_graph():
    import rdflib

    g = rdflib.Graph()
    for prefix, ns in PREFIXES.items():
        g.bind(prefix, ns, override=True, replace=True)
    return g


def to_graph(doc: dict | list):
    """The RDF graph of a JSON-LD description (a dict, or a list of them)."""
    require_rdf()
    docs = doc if isinstance(doc, list) else [doc]
    g = new_graph()
    for d in docs:
        if not isinstance(d, dict):
            raise RegistryError("a JSON-LD description must be an object")
        d = dict(d)
        if "@context" in d:
            d["@context"] = _offline_context(d["@context"])
        try:
            with warnings.catch_warnings():  # rdflib's JSON-LD parser uses its own deprecated ConjunctiveGraph
                warnings.simplefilter("ignore", DeprecationWarning)
                g.parse(data=json.dumps(d), format="json-ld")
        except RegistryError:
            raise
        except Exception as exc:  # rdflib raises many types on malformed JSON-LD
            raise RegistryError(f"not valid JSON-LD: {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}") from None
    return g


def artefact_of(iri: str) -> str:
    """The artefact IRI a node IRI belongs to (the part before ``#``)."""
    return str(iri).split("#", 1)[0]


def _atomic_write(path: Path, data: bytes) -> None:
    from ..io.model_file import atomic_write_bytes

    atomic_write_bytes(path, data)
    try:  # the rename is durable once the directory is synced
        fd = os.open(path.parent, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def turtle_bytes(graph) -> bytes:
    """``graph`` as Turtle with every ``xsd:double`` written in full (rdflib's Turtle shorthand
    keeps 7 significant digits: 174944.33333333334 would come back as 174944.3)."""
    import io

    from rdflib import XSD, Literal
    from rdflib.plugins.serializers import turtle

    class ExactTurtleSerializer(turtle.TurtleSerializer):
        def label(self, node, position):
            if isinstance(node, Literal) and node.datatype == XSD.double:
                return node._literal_n3(use_plain=False,
                                        qname_callback=lambda dt: self.get_pname(dt, turtle._GEN_QNAME_FOR_DT))
            return super().label(node, position)

    buf = io.BytesIO()
    ExactTurtleSerializer(graph).serialize(buf, encoding="utf-8")
    return buf.getvalue()


@dataclass(frozen=True)
class AddResult:
    iri: str
    kind: str
    name: str
    added: bool  # False: the same artefact (same hash) was already there


class Registry:
    """The registry graph in the Turtle file ``path``.

        reg = Registry("/tmp/reg.ttl")
        reg.add(describe_device(load_device("rp2040")))
        reg.query("SELECT ?d WHERE { ?d a tt:Microcontroller }")
    """

    def __init__(self, path: str | os.PathLike | None = None):
        require_rdf()
        self.path = Path(path).expanduser() if path is not None else default_registry_path()
        self._graph = None

    # ---- file
    @property
    def graph(self):
        if self._graph is None:
            self._graph = self._read()
        return self._graph

    def _read(self):
        g = new_graph()
        if self.path.is_dir():
            raise RegistryError(f"registry {self.path} is a directory; give a file path")
        if self.path.exists():
            try:
                g.parse(self.path, format="turtle")
            except OSError as exc:
                raise RegistryError(f"cannot read registry {self.path}: {exc.strerror or exc}") from None
            except Exception as exc:
                raise RegistryError(f"registry {self.path} is corrupt (not Turtle: {type(exc).__name__})") from None
        return g

    @contextlib.contextmanager
    def _locked(self):
        """Exclusive lock for a read-modify-write (a ``.lock`` file beside the graph)."""
        import fcntl

        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fh = open(self.path.with_name(self.path.name + ".lock"), "a")
        except OSError as exc:
            raise RegistryError(f"cannot write registry {self.path}: {exc.strerror or exc}") from None
        with fh:
            fcntl.flock(fh, fcntl.LOCK_EX)
            self._graph = self._read()  # what others committed meanwhile
            yield self._graph

    def save(self) -> None:
        data = turtle_bytes(self.graph)
        try:
            _atomic_write(self.path, data)
        except OSError as exc:
            raise RegistryError(f"cannot write registry {self.path}: {exc.strerror or exc}") from None

    # ---- artefacts
    def contains(self, iri: str) -> bool:
        from rdflib import URIRef

        return (URIRef(iri), None, None) in self.graph

    def add(self, doc: dict) -> AddResult:
        """Validate ``doc`` (JSON-LD) under the shapes, against what the graph already holds, and
        add it. The same artefact (same IRI, same hash) twice adds nothing; a different
        description under a registered device name is refused."""
        return self.add_many([doc])[0]

    def add_many(self, docs: list[dict]) -> list[AddResult]:
        """:meth:`add` for several descriptions, all or none (one write)."""
        from rdflib import URIRef

        from .validate import validate_description

        results, batch = [], new_graph()
        with self._locked() as graph:
            for doc in docs:
                g = to_graph(doc)
                iri = str(doc["id"])
                kind, name = _kind_and_name(doc)
                if (URIRef(iri), None, None) not in g:
                    raise RegistryError(f"the description of {iri} says nothing about it (missing @context terms?)")
                present = graph if self.contains(iri) else batch if (URIRef(iri), None, None) in batch else None
                if present is not None:
                    if _sha(present, iri) != _sha(g, iri):
                        raise RegistryError(f"{kind} {name!r} is already registered with a different description "
                                            f"(remove it first: tintin registry remove {name})")
                    results.append(AddResult(iri, kind, name, False))
                    continue
                for t in g:
                    batch.add(t)
                results.append(AddResult(iri, kind, name, True))
            if len(batch):
                validate_description(batch, graph)  # one SHACL run for all of them
                for t in batch:
                    graph.add(t)
                self.save()
        return results

    def remove(self, iri: str) -> list[str]:
        """Remove artefact ``iri`` and the runs measured on it; returns the removed IRIs. A model
        another registered model derives from is refused."""
        from rdflib import URIRef

        from .vocab import PROV

        with self._locked() as g:
            if not self.contains(iri):
                raise RegistryError(f"{iri} is not in the registry")
            children = [str(s) for s in g.subjects(URIRef(PROV + "wasDerivedFrom"), URIRef(iri))
                        if artefact_of(s) != iri]
            if children:
                raise RegistryError(f"{iri} is the parent of {children[0]}: remove that first")
            gone = [iri] + self.runs_of(iri)
            for a in gone:
                for s in {s for s in g.subjects() if artefact_of(s) == a}:
                    g.remove((s, None, None))
            self.save()
        return gone

    def runs_of(self, iri: str) -> list[str]:
        """The IRIs of the runs measured on model ``iri``."""
        from rdflib import URIRef

        from .vocab import SOSA

        return sorted({artefact_of(s) for s in self.graph.subjects(URIRef(SOSA + "hasFeatureOfInterest"), URIRef(iri))})

    def resolve(self, ref: str) -> str:
        """The artefact IRI ``ref`` names: an IRI, a device name, a model name (if unique), a hash
        or hash prefix (at least 6 hex digits), or a file / export directory (by its hash)."""
        rows = self.artefacts()
        if ref in {r["iri"] for r in rows}:
            return ref
        p = Path(ref)
        if p.exists():
            from .exports import export_hash, is_export_dir
            from .models import file_hash

            sha = export_hash(p) if is_export_dir(p) else file_hash(p) if p.is_file() else None
            hit = [r for r in rows if r["sha256"] == sha]
            if hit:
                return hit[0]["iri"]
            raise RegistryError(f"{ref} is not in the registry (add it with: tintin registry add {ref})")
        hit = [r for r in rows if r["name"] == ref and r["kind"] == "device"] or \
            [r for r in rows if r["name"] == ref and r["kind"] != "run"]
        if not hit and len(ref) >= 6 and all(c in "0123456789abcdef" for c in ref.lower()):
            hit = [r for r in rows if (r["sha256"] or "").startswith(ref.lower())]
        if not hit:
            raise RegistryError(f"{ref!r} is not in the registry (see: tintin registry list)")
        if len(hit) > 1:
            raise RegistryError(f"{ref!r} names {len(hit)} artefacts; use a hash prefix: "
                                + ", ".join(r["sha256"][:12] for r in hit[:5]))
        return hit[0]["iri"]

    def artefacts(self) -> list[dict]:
        """Every registered artefact: iri, kind (device, model-file, zoo, c-project, run), name, sha256."""
        from rdflib import URIRef
        from rdflib.namespace import RDF

        from .vocab import NNET, SCHEMA, TT

        g, tt = self.graph, lambda term: URIRef(TT + term)
        rows = []
        for a in g.subjects(RDF.type, tt("Microcontroller")):
            rows.append((str(a), "device", g.value(a, tt("deviceName")), g.value(a, tt("sha256"))))
        for a in g.subjects(RDF.type, URIRef(NNET + "NeuralNetwork")):
            rows.append((str(a), g.value(a, tt("artefactKind")), g.value(a, URIRef(SCHEMA + "name")),
                         g.value(a, tt("sha256"))))
        for a in g.subjects(RDF.type, tt("TrainingRun")):
            rows.append((str(a), "run", g.value(a, tt("target")), g.value(a, tt("sha256"))))
        out = [{"iri": iri, "kind": str(kind), "name": str(name), "sha256": str(sha) if sha is not None else None}
               for iri, kind, name, sha in rows]
        return sorted(out, key=lambda r: (r["kind"], r["name"], r["iri"]))

    def describe(self, iri: str):
        """The subgraph of artefact ``iri`` (its own nodes)."""
        out = new_graph()
        for s, p, o in self.graph:
            if artefact_of(s) == iri:
                out.add((s, p, o))
        return out

    def query(self, sparql: str):
        """Run a SPARQL query (the prefixes of :data:`PREFIXES` are predeclared)."""
        try:
            return self.graph.query(sparql, initNs=PREFIXES)
        except Exception as exc:
            text = str(exc).splitlines()[0] if str(exc) else ""
            raise RegistryError(f"bad SPARQL query: {type(exc).__name__}: {text[:200]}") from None

    # ---- exchange
    def export_jsonld(self) -> str:
        """The whole graph as JSON-LD (expanded IRIs, with the prefixes as context)."""
        return self.graph.serialize(format="json-ld", context=dict(PREFIXES), auto_compact=True)

    def import_jsonld(self, text: str) -> int:
        """Add every triple of a JSON-LD document (as :meth:`export_jsonld` writes) after validating
        the union of the registry and the document under the shapes; returns the number of triples
        added."""
        from .validate import validate_description

        try:
            doc = json.loads(text)
        except json.JSONDecodeError as exc:
            raise RegistryError(f"not JSON: {exc.msg} at line {exc.lineno}") from None
        g = to_graph(doc)
        with self._locked() as graph:
            before = len(graph)
            validate_description(g, graph)
            for t in g:
                graph.add(t)
            self.save()
            return len(graph) - before


def _sha(graph, iri: str):
    from rdflib import URIRef

    from .vocab import TT

    return graph.value(URIRef(iri), URIRef(TT + "sha256"))


def _kind_and_name(doc: dict) -> tuple[str, str]:
    iri = str(doc.get("id", ""))
    if iri.startswith(DEVICE_BASE):
        return "device", str(doc.get("tt:deviceName", iri))
    if iri.startswith(MODEL_BASE):
        return str(doc.get("tt:artefactKind", "model")), str(doc.get("name", iri))
    if iri.startswith(RUN_BASE):
        return "run", str(doc.get("tt:target", iri))
    raise RegistryError(f"description id {iri!r} is not a tintin artefact IRI")
