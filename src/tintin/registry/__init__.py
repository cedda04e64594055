"""tintin.registry: semantic descriptions of devices and models in a local RDF graph.

Devices become W3C WoT Thing Descriptions, models (model files, zoo models, exported C
projects) model descriptions with their per-update-mode memory plans, measured runs SOSA
observations; SHACL shapes validate each before it enters the graph; SPARQL queries it.
Needs the ``registry`` extra (rdflib, pyshacl).

    from tintin.registry import Registry, describe_device, describe_model, match
    from tintin.targets import load_device
    reg = Registry("/tmp/registry.ttl")
    reg.add(describe_device(load_device("rp2040")))
    reg.add(describe_model(model))
    match(reg, update="bias")          # [{'model': 'mlp', 'device': 'rp2040', 'fits': True, ...}]

See ``docs/registry.md``.
"""

from .devices import describe_device, device_iri
from .errors import DescriptionRejected, RegistryError, RegistryUnavailable, require_rdf
from .exports import describe_export, is_export_dir, read_export
from .match import CONFIG_QUERY, DEVICE_QUERY, MATCH_QUERY, match
from .models import (describe_model, describe_model_file, file_hash, model_content_hash, model_iri,
                     plan_update_modes)
from .runs import describe_run
from .store import Registry, default_registry_path, to_graph
from .validate import validate_description, violations

__all__ = [
    "describe_device", "device_iri", "DescriptionRejected", "RegistryError", "RegistryUnavailable", "require_rdf",
    "describe_export", "is_export_dir", "read_export", "CONFIG_QUERY", "DEVICE_QUERY", "MATCH_QUERY", "match", "describe_model",
    "describe_model_file", "file_hash", "model_content_hash", "model_iri", "plan_update_modes", "describe_run",
    "Registry", "default_registry_path", "to_graph", "validate_description", "violations",
]
