"""Errors of the registry: each carries one line for the user."""

from __future__ import annotations

from tintin.errors import TintinError


class RegistryError(TintinError):
    """The registry cannot do what was asked (unknown artefact, corrupt graph file, bad query)."""


class DescriptionRejected(RegistryError):
    """A description does not conform to the SHACL shapes; the message names the node and the rule."""


class RegistryUnavailable(RegistryError):
    """rdflib or pyshacl is not installed (they are the ``registry`` extra)."""


def require_rdf() -> None:
    """Raise :class:`RegistryUnavailable` unless rdflib and pyshacl are installed (found, not
    imported: pyshacl takes a second to import and only validation needs it)."""
    from importlib.util import find_spec

    for name in ("rdflib", "pyshacl"):
        if find_spec(name) is None:
            raise RegistryUnavailable(f"the registry needs rdflib and pyshacl ({name} is missing): "
                                      "pip install 'tintin[registry]'")
