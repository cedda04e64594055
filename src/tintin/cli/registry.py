"""``tintin registry``: descriptions of devices and models in a local RDF graph, SPARQL queries,
and which models train on which devices (see docs/registry.md)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import List, Optional

import typer

from .app import CliError
from .common import err_console, out_console, print_json

registry_app = typer.Typer(no_args_is_help=True, help="Describe devices and models in a local knowledge graph; "
                           "query it with SPARQL; match models to devices.")

RegistryOption = typer.Option(None, "--registry", help="graph file (default: $TINTIN_REGISTRY, "
                              "$TINTIN_DATA/registry.ttl or ~/.local/share/tintin/registry.ttl)")
ArtefactArgument = typer.Argument(..., metavar="ARTEFACT", help="name, hash prefix, IRI, file or directory")
JsonOption = typer.Option(False, "--json", help="print one JSON object on stdout")


def _open(path: Optional[Path]):
    from ..registry import Registry

    return Registry(path)


def _progress(text: str) -> None:
    if err_console.is_terminal:
        err_console.print(text)


def describe_artefact(spec: str, *, registry=None, dataset: Optional[str] = None, seed: int = 0,
                      parent: Optional[str] = None, model: Optional[str] = None) -> dict:
    """The description of what ``spec`` names: an exported C project directory, a device profile
    (bundled name or .toml file), a model file, a zoo model name, or a ``tintin run --json``
    result file (with ``model``, the registered model it measured)."""
    from ..nn import model_names
    from ..registry import describe_device, describe_export, describe_model, describe_model_file, describe_run
    from ..registry import is_export_dir
    from ..targets import list_devices, load_device
    from ..targets.device_profiles import parse_device

    path = Path(spec)
    parent_iri = registry.resolve(parent) if parent is not None else None
    if path.is_dir():
        if not is_export_dir(path):
            raise CliError(f"{spec} is a directory but not an exported C project (no tt_model.h)")
        return describe_export(path)
    if path.is_file():
        if path.suffix == ".toml":
            return describe_device(parse_device(path))
        if path.suffix == ".json":
            if model is None:
                raise CliError(f"{spec}: a run result needs --model (the registered model it measured)")
            try:
                result = json.loads(path.read_text())
            except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
                raise CliError(f"{spec} is not a readable JSON run result ({type(exc).__name__})") from None
            if not isinstance(result, dict):
                raise CliError(f"{spec} is not a `tintin run --json` result (not an object)")
            return describe_run(result, registry.resolve(model))
        _progress(f"describing {spec}: planning every update mode ...")
        return describe_model_file(path, parent=parent_iri)
    if spec in list_devices():
        return describe_device(load_device(spec))
    if spec in model_names():
        from ..nn import QuantConfig
        from .common import model_from_spec

        from .options import default_optimiser

        net, _ = model_from_spec(spec, dataset, None, None, QuantConfig(), seed)
        _progress(f"describing zoo model {spec}: planning every update mode ...")
        # the optimiser state (momentum) of `tintin plan`'s defaults, so that match answers as plan does
        return describe_model(net, kind="zoo", origin="zoo", parent=parent_iri, optim=default_optimiser(spec))
    if path.suffix or "/" in spec:
        raise CliError(f"{spec} does not exist")
    raise CliError(f"{spec!r} is not a file, an export directory, a device ({', '.join(list_devices())}) "
                   f"or a zoo model ({', '.join(model_names())})")


@registry_app.command("add")
def add_command(
    artefacts: Optional[List[str]] = typer.Argument(None, metavar="MODEL_FILE|EXPORT_DIR|DEVICE|ZOO_MODEL|RUN.json...",
                                                    help="what to describe and register"),
    all_devices: bool = typer.Option(False, "--all-devices", help="also every bundled device profile"),
    dataset: Optional[str] = typer.Option(None, "--dataset", "-d", help="zoo models: data set giving the input shape "
                                          "(default as `tintin plan`)"),
    seed: int = typer.Option(0, "--seed", help="zoo models: initialisation seed"),
    parent: Optional[str] = typer.Option(None, "--parent", help="registered model these models derive from"),
    model: Optional[str] = typer.Option(None, "--model", help="run results: the registered model they measured"),
    registry: Optional[Path] = RegistryOption,
    as_json: bool = JsonOption,
):
    """Describe artefacts, validate them (SHACL) and add them to the graph.

    The same artefact (same hash) twice is added once; all or nothing."""
    from ..targets import list_devices

    specs = list(artefacts or []) + (list_devices() if all_devices else [])
    if not specs:
        raise CliError("nothing to add: give model files, export directories, devices or zoo models (or --all-devices)")
    reg = _open(registry)
    docs = [describe_artefact(s, registry=reg, dataset=dataset, seed=seed, parent=parent, model=model) for s in specs]
    results = reg.add_many(docs)
    rows = [{"artefact": s, "iri": r.iri, "kind": r.kind, "name": r.name, "added": r.added} for s, r in zip(specs, results)]
    if as_json:
        print_json({"registry": str(reg.path), "artefacts": rows})
        return
    for r in rows:
        verb = "added" if r["added"] else "already registered"
        out_console.print(f"{verb}: {r['kind']} {r['name']} <{r['iri']}>", highlight=False)


@registry_app.command("describe")
def describe_command(
    artefact: str = typer.Argument(..., metavar="MODEL_FILE|EXPORT_DIR|DEVICE|ZOO_MODEL", help="what to describe"),
    dataset: Optional[str] = typer.Option(None, "--dataset", "-d", help="zoo models: data set giving the input shape"),
    seed: int = typer.Option(0, "--seed", help="zoo models: initialisation seed"),
    registry: Optional[Path] = RegistryOption,
):
    """Print the JSON-LD description of an artefact without registering it.

    A device gets its W3C WoT Thing Description; the description is validated first."""
    from ..registry import to_graph, validate_description

    reg = _open(registry)
    doc = describe_artefact(artefact, registry=reg, dataset=dataset, seed=seed)
    validate_description(to_graph(doc), reg.graph)
    print(json.dumps(doc, indent=2))


@registry_app.command("list")
def list_command(registry: Optional[Path] = RegistryOption, as_json: bool = JsonOption):
    """List the registered devices, models, C projects and measured runs."""
    reg = _open(registry)
    rows = reg.artefacts()
    if as_json:
        print_json({"registry": str(reg.path), "artefacts": rows})
        return
    from rich.table import Table

    t = Table(title=f"registry {reg.path}")
    for col in ("kind", "name", "sha256", "iri"):
        t.add_column(col, overflow="fold")
    for r in rows:
        t.add_row(r["kind"], r["name"], (r["sha256"] or "")[:12], r["iri"])
    out_console.print(t)
    if not rows:
        out_console.print("empty: add artefacts with `tintin registry add`")


@registry_app.command("show")
def show_command(ref: str = ArtefactArgument, registry: Optional[Path] = RegistryOption,
                 as_json: bool = typer.Option(False, "--json", help="JSON-LD instead of Turtle")):
    """Print the description of one artefact (Turtle, or JSON-LD with --json).

    A model's description is shown with the runs measured on it."""
    from ..registry.vocab import PREFIXES

    reg = _open(registry)
    iri = reg.resolve(ref)
    g = reg.describe(iri)
    for run in reg.runs_of(iri):  # what was measured on a model belongs to its description
        g += reg.describe(run)
    if as_json:
        print(g.serialize(format="json-ld", context=dict(PREFIXES), auto_compact=True))
    else:
        from ..registry.store import turtle_bytes

        print(turtle_bytes(g).decode())


@registry_app.command("remove")
def remove_command(ref: str = ArtefactArgument, registry: Optional[Path] = RegistryOption, as_json: bool = JsonOption):
    """Remove an artefact (and the runs measured on it) from the graph."""
    reg = _open(registry)
    gone = reg.remove(reg.resolve(ref))
    if as_json:
        print_json({"registry": str(reg.path), "removed": gone})
        return
    for iri in gone:
        out_console.print(f"removed <{iri}>", highlight=False)


def _python(term):
    if term is None:
        return None
    from rdflib import Literal

    if isinstance(term, Literal):
        v = term.toPython()
        return v if isinstance(v, (int, float, bool, str)) else str(v)
    return str(term)


@registry_app.command("query")
def query_command(sparql: str = typer.Argument(..., metavar="SPARQL", help="a SPARQL 1.1 query (prefixes tt:, td:, "
                                               "nnet:, sosa:, schema:, prov:, om:, xsd: are declared), or @FILE"),
                  registry: Optional[Path] = RegistryOption, as_json: bool = JsonOption):
    """Run a SPARQL query on the graph."""
    if sparql.startswith("@"):
        try:
            sparql = Path(sparql[1:]).read_text()
        except OSError as exc:
            raise CliError(f"cannot read {sparql[1:]}: {exc.strerror or exc}") from None
    reg = _open(registry)
    res = reg.query(sparql)
    if res.type == "ASK":
        if as_json:
            print_json({"boolean": bool(res.askAnswer)})
        else:
            print("yes" if res.askAnswer else "no")
        return
    if res.type in ("CONSTRUCT", "DESCRIBE"):
        from ..registry.store import turtle_bytes

        print(res.graph.serialize(format="json-ld") if as_json else turtle_bytes(res.graph).decode())
        return
    variables = [str(v) for v in res.vars]
    rows = [{v: _python(row[v]) for v in variables} for row in res]
    if as_json:
        print_json({"variables": variables, "rows": rows})
        return
    from rich.table import Table

    t = Table()
    for v in variables:
        t.add_column(v, overflow="fold")
    for r in rows:
        t.add_row(*["" if r[v] is None else str(r[v]) for v in variables])
    out_console.print(t)
    out_console.print(f"{len(rows)} rows")


def parse_accuracy(text: Optional[str]) -> Optional[float]:
    """``"0.9"`` or ``"90%"`` -> 0.9."""
    if text is None:
        return None
    t = text.strip()
    try:
        value = float(t[:-1]) / 100 if t.endswith("%") else float(t)
    except ValueError:
        raise CliError(f"bad --min-accuracy {text!r}: use a fraction like 0.9 or a percentage like 90%") from None
    if not 0 <= value <= 1:
        raise CliError(f"--min-accuracy must be in [0, 1] or [0%, 100%], got {text}")
    return value


@registry_app.command("match")
def match_command(
    model: Optional[str] = typer.Option(None, "--model", "-m", help="only this model (name, hash prefix, file)"),
    device: Optional[str] = typer.Option(None, "--device", help="only this device"),
    update: Optional[str] = typer.Option(None, "--update", "-u", help="only this update mode (full, bias, last:1, ...)"),
    min_accuracy: Optional[str] = typer.Option(None, "--min-accuracy", help="only models with a recorded accuracy "
                                               "at least this (0.9 or 90%)"),
    reserve: int = typer.Option(0, "--reserve", help="SRAM bytes to keep free (as `tintin plan --reserve`)"),
    fitting: bool = typer.Option(False, "--fits", help="only the combinations that fit"),
    registry: Optional[Path] = RegistryOption,
    as_json: bool = JsonOption,
):
    """Which models train on which devices with which update mode, from the graph alone.

    The planned peak SRAM and flash of each update mode against each device's capacities."""
    from ..registry import match

    reg = _open(registry)
    rows = match(reg, model=model, device=device, update=update, min_accuracy=parse_accuracy(min_accuracy),
                 reserve=reserve)
    if fitting:
        rows = [r for r in rows if r["fits"]]
    if as_json:
        print_json({"registry": str(reg.path), "matches": rows})
        return
    from rich.table import Table

    t = Table(title="models x devices x update modes (planned, batch 1)")
    for col in ("model", "sha256", "device", "update", "fits", "peak SRAM", "SRAM", "flash", "flash cap.", "accuracy",
                "measured / step"):
        t.add_column(col, justify="right" if col not in ("model", "sha256", "device", "update", "fits") else "left")
    for r in rows:
        verdict = "?" if r["fits"] is None else "[green]yes[/green]" if r["fits"] else "[red]no[/red]"
        measured = f"{r['measured_per_step']:,.0f} {r['measured_unit']}" if r["measured_per_step"] is not None else ""
        t.add_row(r["model"], r["sha256"][:12], r["device"], r["update"], verdict, f"{r['peak_sram_bytes']:,}",
                  f"{r['sram_capacity']:,}", "?" if r["flash_bytes"] is None else f"{r['flash_bytes']:,}",
                  f"{r['flash_capacity']:,}", "" if r["accuracy"] is None else f"{r['accuracy']:.2%}", measured)
    out_console.print(t)
    if not rows:
        out_console.print("no matches: register devices and models with `tintin registry add`")


@registry_app.command("export")
def export_command(out: Path = typer.Argument(..., metavar="FILE", help="JSON-LD file to write"),
                   registry: Optional[Path] = RegistryOption):
    """Write the whole graph as JSON-LD."""
    from ..registry.store import _atomic_write

    reg = _open(registry)
    try:
        _atomic_write(out, reg.export_jsonld().encode())
    except OSError as exc:
        raise CliError(f"cannot write {out}: {exc.strerror or exc}") from None
    out_console.print(f"wrote {len(reg.graph):,} triples to {out}")


@registry_app.command("import")
def import_command(src: Path = typer.Argument(..., metavar="FILE", help="JSON-LD file (as `export` writes)"),
                   registry: Optional[Path] = RegistryOption):
    """Validate a JSON-LD graph under the shapes and add it."""
    try:
        text = src.read_text()
    except (OSError, UnicodeDecodeError) as exc:
        raise CliError(f"cannot read {src}: {getattr(exc, 'strerror', None) or exc}") from None
    reg = _open(registry)
    added = reg.import_jsonld(text)
    out_console.print(f"added {added:,} triples to {reg.path}")


def register(app: typer.Typer) -> None:
    app.add_typer(registry_app, name="registry")


def register_run(model, model_spec: str, result: dict, registry: Optional[Path] = None) -> str:
    """Register the model a ``tintin run`` trained (a model file by its hash, a zoo model by its
    content) and the run's measured count per step; returns the run's IRI."""
    from ..registry import describe_model, describe_model_file, describe_run, model_content_hash, model_iri

    reg = _open(registry)
    path = Path(model_spec)
    if path.is_file():
        doc = describe_model_file(path)
    else:
        doc = describe_model(model, sha256=model_content_hash(model), kind="zoo", origin="zoo")
    run = describe_run(result, model_iri(doc["tt:sha256"]))
    reg.add_many([doc, run])
    return run["id"]
