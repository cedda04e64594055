"""The vocabularies of the registry: namespaces, units and the JSON-LD contexts.

Published vocabularies are reused where a term fits (written from their specifications; nothing
is fetched at run time):

* W3C WoT Thing Description 1.1 (``td:``) for devices, with the TD 1.1 context URL first in every
  device document. rdflib cannot fetch that URL offline, so :data:`TD_CONTEXT_SUBSET` (the few TD
  terms tintin writes) stands in for it when a document is turned into RDF;
* the tinyml-schema neural-network vocabulary (``nnet:``) for models, layers and trainability;
* SOSA (``sosa:``) for measured training runs (observations) and the device as a platform;
* schema.org (``schema:``) for names, dates and identifiers; PROV (``prov:``) for the parent version;
* OM 2 (``om:``) for quantities: every memory size, clock and energy is an ``om:Measure`` with a
  numerical value and a unit.

The training terms none of them has live in the tintin vocabulary (``tt:``, IRIs
``urn:tintin:vocab:<term>``; documented in ``docs/registry.md``).
"""

from __future__ import annotations

TT = "urn:tintin:vocab:"
TD = "https://www.w3.org/2019/wot/td#"
WOTSEC = "https://www.w3.org/2019/wot/security#"
NNET = "https://w3id.org/tinyml-schema/neural-network-schema#"
SOSA = "http://www.w3.org/ns/sosa/"
SCHEMA = "http://schema.org/"
PROV = "http://www.w3.org/ns/prov#"
OM = "http://www.ontology-of-units-of-measure.org/resource/om-2/"
XSD = "http://www.w3.org/2001/XMLSchema#"
RDF = "http://www.w3.org/1999/02/22-rdf-syntax-ns#"

PREFIXES = {"tt": TT, "td": TD, "wotsec": WOTSEC, "nnet": NNET, "sosa": SOSA, "schema": SCHEMA, "prov": PROV,
            "om": OM, "xsd": XSD}
"""Prefix -> namespace, bound in the graph, the Turtle file and every SPARQL query."""

TD_CONTEXT_URL = "https://www.w3.org/2022/wot/td/v1.1"
"""The context every Thing Description names first (WoT TD 1.1)."""

UNITS = {"byte": OM + "byte", "hertz": OM + "hertz", "joule": OM + "joule"}
"""The OM units descriptions may use (the shapes reject any other)."""

DEVICE_BASE = "urn:tintin:device:"
MODEL_BASE = "urn:tintin:model:"
RUN_BASE = "urn:tintin:run:"

TD_CONTEXT_SUBSET = {
    "td": TD, "wotsec": WOTSEC, "xsd": XSD,
    "id": "@id", "type": "@type",
    "Thing": "td:Thing",
    "title": "td:title",
    "description": "td:description",
    "securityDefinitions": {"@id": "td:securityDefinitions", "@container": "@index"},
    "security": {"@id": "td:hasSecurityConfiguration"},
    "scheme": {"@id": "@type", "@type": "@vocab"},
    "nosec": "wotsec:NoSecurityScheme",
}
"""The TD 1.1 terms tintin writes, for turning a TD into RDF without fetching the TD context.
Simplification: ``security`` names its ``securityDefinitions`` entry as a string."""

TINTIN_CONTEXT = {
    **{k: v for k, v in PREFIXES.items()},
    "id": "@id",
    "type": "@type",
    "name": "schema:name",
    "derivedFrom": {"@id": "prov:wasDerivedFrom", "@type": "@id"},
    "layers": {"@id": "nnet:hasLayer", "@container": "@set"},
    "tensors": {"@id": "tt:hasTensor", "@container": "@set"},
    "trainingConfigurations": {"@id": "tt:hasTrainingConfiguration", "@container": "@set"},
    "flashRequirements": {"@id": "tt:flashRequirement", "@container": "@set"},
    "evaluations": {"@id": "tt:hasEvaluation", "@container": "@set"},
    "featureOfInterest": {"@id": "sosa:hasFeatureOfInterest", "@type": "@id"},
    "observedProperty": {"@id": "sosa:observedProperty", "@type": "@id"},
    "result": "sosa:hasSimpleResult",
    "hostedBy": {"@id": "sosa:isHostedBy", "@type": "@id"},
}
"""The context of model and run descriptions (inline in every document: nothing to fetch)."""

DEVICE_CONTEXT = {"tt": TT, "om": OM, "sosa": SOSA}
"""The second context of a Thing Description: only prefixes the TD 1.1 context lacks, so that no
protected TD term is redefined."""


def measure(iri: str, value, unit: str) -> dict:
    """An ``om:Measure`` node: ``value`` in ``unit`` (a key of :data:`UNITS`)."""
    return {"id": iri, "type": "om:Measure", "om:hasNumericalValue": value, "om:hasUnit": {"id": "om:" + UNITS[unit][len(OM):]}}
