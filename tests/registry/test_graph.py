"""The graph file: idempotent adds, atomic writes, JSON-LD round trip, removal, one-line errors."""

from __future__ import annotations

import json

import pytest
from registry_helpers import require_registry_extra, run_cli

require_registry_extra()

from rdflib import Graph  # noqa: E402
from rdflib.compare import isomorphic  # noqa: E402

from tintin.registry import Registry, RegistryError, describe_device, to_graph  # noqa: E402
from tintin.targets import load_device  # noqa: E402

# rdflib's own JSON-LD parser uses its deprecated ConjunctiveGraph
pytestmark = pytest.mark.filterwarnings("ignore:ConjunctiveGraph is deprecated:DeprecationWarning")


def test_adding_the_same_artefacts_twice_changes_nothing(registry_copy, capsys):
    before = registry_copy.read_bytes()
    code, out, err = run_cli(capsys, "registry", "add", "--all-devices", "mlp", "lenet5", "--registry", registry_copy,
                             "--json")
    assert code == 0, err
    assert not any(a["added"] for a in json.loads(out)["artefacts"])
    assert registry_copy.read_bytes() == before


def test_same_artefact_twice_in_one_call_is_added_once(tmp_path):
    reg = Registry(tmp_path / "r.ttl")
    doc = describe_device(load_device("rp2040"))
    first, second = reg.add_many([doc, doc])
    assert first.added and not second.added
    assert len(Registry(tmp_path / "r.ttl").graph) == len(to_graph(doc))


def test_a_changed_device_profile_is_refused_not_merged(tmp_path):
    reg = Registry(tmp_path / "r.ttl")
    doc = describe_device(load_device("rp2040"))
    reg.add(doc)
    changed = json.loads(json.dumps(doc))
    changed["tt:sha256"] = "f" * 64
    changed["tt:sramCapacity"]["om:hasNumericalValue"] = 1024
    with pytest.raises(RegistryError, match="already registered with a different description"):
        reg.add(changed)


def test_jsonld_round_trip_is_isomorphic(registry_copy, tmp_path, capsys):
    original = Registry(registry_copy).graph
    out = tmp_path / "graph.jsonld"
    code, _, err = run_cli(capsys, "registry", "export", out, "--registry", registry_copy)
    assert code == 0, err
    reparsed = Graph().parse(out, format="json-ld")
    assert len(reparsed) == len(original) and isomorphic(reparsed, original)
    fresh = tmp_path / "fresh.ttl"
    code, _, err = run_cli(capsys, "registry", "import", out, "--registry", fresh)
    assert code == 0, err
    assert isomorphic(Registry(fresh).graph, original)


def test_each_description_round_trips_through_jsonld(zoo_registry):
    reg = Registry(zoo_registry)
    for artefact in reg.artefacts():
        g = reg.describe(artefact["iri"])
        again = Graph().parse(data=g.serialize(format="json-ld"), format="json-ld")
        assert isomorphic(g, again), artefact["name"]


def test_turtle_file_is_what_the_graph_holds(zoo_registry):
    assert isomorphic(Graph().parse(zoo_registry, format="turtle"), Registry(zoo_registry).graph)


def test_remove_takes_the_model_and_its_runs_and_nothing_else(registry_copy, capsys):
    from tintin.registry import describe_run, model_iri

    reg = Registry(registry_copy)
    mlp = next(a for a in reg.artefacts() if a["name"] == "mlp")
    n_before = len(reg.graph)
    run = describe_run({"target": "cortex-m0", "count_unit": "instructions", "instructions_per_step": 183821,
                        "update": "full", "batch_size": 1, "bit_exact": True, "steps": 5}, model_iri(mlp["sha256"]))
    reg.add(run)
    code, out, err = run_cli(capsys, "registry", "show", "mlp", "--registry", registry_copy)
    assert code == 0 and "tt:instructionsPerTrainingStep" in out and "tt:hasTrainingConfiguration" in out
    code, out, err = run_cli(capsys, "registry", "remove", "mlp", "--registry", registry_copy, "--json")
    assert code == 0, err
    assert set(json.loads(out)["removed"]) == {mlp["iri"], run["id"]}
    left = Registry(registry_copy)
    assert all(a["name"] != "mlp" and a["kind"] != "run" for a in left.artefacts())
    assert not any(str(s).startswith(mlp["iri"]) for s in left.graph.subjects())
    lenet = Registry(registry_copy).describe(next(a["iri"] for a in left.artefacts() if a["name"] == "lenet5"))
    assert len(lenet) > 0 and len(left.graph) < n_before


def test_a_parent_cannot_be_removed_before_its_child(tmp_path, capsys):
    from tintin.cli.common import model_from_spec
    from tintin.nn import QuantConfig
    from tintin.io import save_model

    model, _ = model_from_spec("mlp", None, None, None, QuantConfig(), 0)
    parent = save_model(model, tmp_path / "parent.safetensors")
    child = save_model(model, tmp_path / "child.safetensors", info={"dataset": "digits", "test_accuracy": 0.5})
    reg = tmp_path / "r.ttl"
    assert run_cli(capsys, "registry", "add", parent, "--registry", reg)[0] == 0
    code, _, err = run_cli(capsys, "registry", "add", child, "--parent", parent, "--registry", reg)
    assert code == 0, err
    code, _, err = run_cli(capsys, "registry", "remove", parent, "--registry", reg)
    assert code == 1 and "is the parent of" in err and err.count("\n") == 1
    assert run_cli(capsys, "registry", "remove", child, "--registry", reg)[0] == 0
    assert run_cli(capsys, "registry", "remove", parent, "--registry", reg)[0] == 0


@pytest.mark.parametrize("args, words", [
    (("add", "no-such-thing"), "is not a file, an export directory, a device"),
    (("add", "missing/model.safetensors"), "does not exist"),
    (("show", "no-such-device"), "is not in the registry"),
    (("query", "SELECT ?x WHERE {"), "bad SPARQL query"),
    (("match", "--min-accuracy", "150%"), "--min-accuracy must be in"),
    (("match", "--device", "nowhere"), "is not in the registry"),
])
def test_bad_input_gives_one_error_line(registry_copy, capsys, args, words):
    code, out, err = run_cli(capsys, "registry", *args, "--registry", registry_copy)
    assert code == 1 and err.count("\n") == 1 and err.startswith("error: ") and words in err, err


def test_corrupt_registry_file_gives_one_line(tmp_path, capsys):
    bad = tmp_path / "r.ttl"
    bad.write_text("this is not turtle <<<")
    code, _, err = run_cli(capsys, "registry", "list", "--registry", bad)
    assert code == 1 and err.count("\n") == 1 and "is corrupt" in err


def test_not_a_model_file_gives_one_line(tmp_path, capsys):
    junk = tmp_path / "junk.safetensors"
    junk.write_bytes(b"\x00" * 40)
    code, _, err = run_cli(capsys, "registry", "add", junk, "--registry", tmp_path / "r.ttl")
    assert code == 1 and err.count("\n") == 1 and "not a valid model file" in err


def test_unwritable_registry_gives_one_line(tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("")
    code, _, err = run_cli(capsys, "registry", "add", "rp2040", "--registry", blocker / "r.ttl")
    assert code == 1 and err.count("\n") == 1 and "cannot write registry" in err


def test_write_is_atomic_no_temp_files_left(tmp_path):
    reg = Registry(tmp_path / "r.ttl")
    reg.add(describe_device(load_device("rp2040")))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r.ttl", "r.ttl.lock"]


def test_default_location_follows_the_environment(tmp_path, monkeypatch):
    from tintin.registry import default_registry_path

    monkeypatch.delenv("TINTIN_REGISTRY", raising=False)
    monkeypatch.setenv("TINTIN_DATA", str(tmp_path / "data"))
    assert default_registry_path() == tmp_path / "data" / "registry.ttl"
    monkeypatch.setenv("TINTIN_REGISTRY", str(tmp_path / "x.ttl"))
    assert default_registry_path() == tmp_path / "x.ttl"
    monkeypatch.delenv("TINTIN_REGISTRY")
    monkeypatch.delenv("TINTIN_DATA")
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    assert default_registry_path() == tmp_path / "xdg" / "tintin" / "registry.ttl"


def test_doubles_keep_every_digit_in_the_file(tmp_path):
    """Regression: rdflib's Turtle shorthand wrote 174944.33333333334 as 1.749443e+05."""
    from tintin.registry import describe_run, model_iri
    from tintin.cli.common import model_from_spec
    from tintin.nn import QuantConfig
    from tintin.registry import describe_model

    model, _ = model_from_spec("mlp", None, None, None, QuantConfig(), 0)
    doc = describe_model(model, kind="zoo", origin="zoo", updates=["full"])
    run = describe_run({"target": "cortex-m0", "count_unit": "instructions", "instructions_per_step": 174944.33333333334,
                        "update": "full", "batch_size": 1, "bit_exact": True}, model_iri(doc["tt:sha256"]))
    Registry(tmp_path / "r.ttl").add_many([doc, run])
    (row,) = Registry(tmp_path / "r.ttl").query("SELECT ?v WHERE { ?r sosa:hasSimpleResult ?v }")
    assert float(row.v) == 174944.33333333334
    scales = {float(v) for v in Registry(tmp_path / "r.ttl").graph.objects(None, None)
              if getattr(v, "datatype", None) is not None and str(v.datatype).endswith("double")}
    assert 0.0010986328125 in scales
