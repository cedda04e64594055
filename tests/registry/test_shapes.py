"""Every description tintin produces conforms to the SHACL shapes; five broken descriptions are
each rejected with one clear line."""

from __future__ import annotations

import copy
import json

import pytest
from registry_helpers import require_registry_extra, run_cli

require_registry_extra()

from tintin.cli.common import model_from_spec

from tintin.nn import QuantConfig
from tintin.nn import model_names
from tintin.registry import (DescriptionRejected, Registry, describe_device, describe_export, describe_model,
                             describe_model_file, to_graph, validate_description, violations)
from tintin.targets import list_devices, load_device


@pytest.fixture(scope="module")
def mlp():
    model, _ = model_from_spec("mlp", None, None, None, QuantConfig(), 0)
    return model


@pytest.fixture(scope="module")
def mlp_doc(mlp):
    return describe_model(mlp, kind="zoo", origin="zoo")


@pytest.mark.parametrize("name", list_devices())
def test_every_device_description_conforms(name):
    doc = describe_device(load_device(name))
    assert violations(to_graph(doc)) == []
    assert doc["@context"][0] == "https://www.w3.org/2022/wot/td/v1.1"
    for member in ("title", "security", "securityDefinitions"):  # mandatory in a TD 1.1
        assert member in doc


@pytest.mark.parametrize("name", model_names())
def test_every_zoo_model_description_conforms(name):
    model, _ = model_from_spec(name, None, None, None, QuantConfig(), 0)
    doc = describe_model(model, kind="zoo", origin="zoo")
    assert violations(to_graph(doc)) == []
    modes = [c["tt:updateMode"] for c in doc["trainingConfigurations"]]
    assert {"full", "bias", "last:1"} <= set(modes)
    assert doc["tt:parameterCount"] == model.num_parameters()
    assert len(doc["tensors"]) == len(model.parameters())


def test_model_file_description_conforms_and_carries_accuracy_and_hash(tmp_path, mlp):
    from tintin.io import save_model
    from tintin.registry import file_hash

    path = save_model(mlp, tmp_path / "m.safetensors", info={"dataset": "digits", "test_accuracy": 0.9667,
                                                              "train": {"epochs": 1}})
    doc = describe_model_file(path)
    assert violations(to_graph(doc)) == []
    assert doc["tt:sha256"] == file_hash(path) and doc["tt:artefactKind"] == "model-file"
    assert doc["tt:importOrigin"] == "tintin train"
    (ev,) = doc["evaluations"]
    assert ev["tt:dataset"] == "digits" and ev["tt:accuracy"] == pytest.approx(0.9667)


def test_export_description_conforms_and_has_the_planned_arena(tmp_path, mlp):
    from tintin.codegen import generate_project

    project = generate_project(mlp, tmp_path / "proj", update="bias")
    doc = describe_export(tmp_path / "proj")
    assert violations(to_graph(doc)) == []
    (cfg,) = doc["trainingConfigurations"]
    assert cfg["tt:updateMode"] == "bias"
    assert cfg["tt:peakSram"]["om:hasNumericalValue"] == project.plan.arena_bytes
    trained = {t["name"] for t in doc["tensors"] if t["nnet:isTrainable"]}
    assert trained == {"fc1.bias", "fc2.bias"}
    scales = {t["name"]: (t["tt:scaleExponentS"], t["tt:scaleExponentU"], t["tt:scaleExponentD"]) for t in doc["tensors"]}
    assert scales == {p.name: p.value.scale.as_tuple() for p in mlp.parameters()}


def _device():
    return describe_device(load_device("rp2040"))


def _config(doc, mode):
    return next(c for c in doc["trainingConfigurations"] if c["tt:updateMode"] == mode)


def broken_descriptions(mlp_doc):
    """(what is wrong, description, words the one line must contain)."""
    missing_sram = _device()
    del missing_sram["tt:sramCapacity"]
    negative_flash = copy.deepcopy(mlp_doc)
    _config(negative_flash, "bias")["flashRequirements"][0]["tt:flash"]["om:hasNumericalValue"] = -1
    unknown_unit = _device()
    unknown_unit["tt:clockFrequency"]["om:hasUnit"] = {"id": "om:furlong"}
    wrong_type = _device()
    wrong_type["tt:hasFPU"] = "yes"
    dangling = copy.deepcopy(mlp_doc)
    dangling["derivedFrom"] = "urn:tintin:model:" + "0" * 64
    return [("missing SRAM", missing_sram, "needs its SRAM capacity"),
            ("negative flash", negative_flash, "flash must be an integer number of bytes >= 0"),
            ("unknown unit", unknown_unit, "unknown unit"),
            ("wrong type", wrong_type, "tt:hasFPU must be one boolean"),
            ("dangling model reference", dangling, "parent model (prov:wasDerivedFrom) is not in the registry")]


@pytest.mark.parametrize("case", range(5), ids=["missing-sram", "negative-flash", "unknown-unit", "wrong-type",
                                                "dangling-model"])
def test_broken_description_is_rejected_with_one_line(case, mlp_doc, tmp_path):
    what, doc, words = broken_descriptions(mlp_doc)[case]
    reg = Registry(tmp_path / "r.ttl")
    with pytest.raises(DescriptionRejected) as info:
        reg.add(doc)
    message = str(info.value)
    assert "\n" not in message and words in message, (what, message)
    assert not (tmp_path / "r.ttl").exists()  # nothing written


@pytest.mark.parametrize("case", range(5))
def test_broken_description_through_the_cli(case, mlp_doc, tmp_path, capsys):
    _, doc, words = broken_descriptions(mlp_doc)[case]
    src = tmp_path / "broken.jsonld"
    src.write_text(json.dumps(doc))
    code, out, err = run_cli(capsys, "registry", "import", src, "--registry", tmp_path / "r.ttl")
    assert code == 1
    assert err.count("\n") == 1 and err.startswith("error: description rejected:") and words in err


def test_the_unbroken_originals_pass(mlp_doc, tmp_path):
    reg = Registry(tmp_path / "r.ttl")
    reg.add_many([_device(), mlp_doc])
    assert len(reg.artefacts()) == 2


def test_run_referring_to_an_unregistered_model_is_rejected(tmp_path):
    from tintin.registry import describe_run

    doc = describe_run({"target": "cortex-m0", "count_unit": "instructions", "instructions_per_step": 1000,
                        "update": "full", "batch_size": 1, "bit_exact": True}, "urn:tintin:model:" + "1" * 64)
    with pytest.raises(DescriptionRejected, match="measured model .* is not in the registry"):
        validate_description(to_graph(doc), Registry(tmp_path / "r.ttl").graph)


def test_names_that_are_not_iri_safe_are_encoded(mlp):
    """A data set named by a path with a space, a sparse update with brackets: still valid IRIs."""
    from tintin.registry.models import plan_update_modes

    plans = plan_update_modes(mlp, updates=["sparse:fc2[0:4]"])
    doc = describe_model(mlp, plans=plans, evaluations=[{"dataset": "my data/set.csv", "accuracy": 0.5}])
    g = to_graph(doc)
    assert violations(g) == []
    assert all(" " not in str(s) and "[" not in str(s) for s in g.subjects())
    assert {c["tt:updateMode"] for c in doc["trainingConfigurations"]} == {"sparse:fc2[0:4]"}
