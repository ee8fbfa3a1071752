"""The server's validator: profiles/ + the Nictiz zib2020/nl-core definitions + the R4 core."""

from __future__ import annotations

from functools import cache

from hub.fhir.validation.registry import Registry, nictiz_dirs
from hub.fhir.validation.validator import Validator
from hub.paths import profiles_dir, reference_dir


@cache
def hub_registry() -> Registry:
    """Conformance resources by url: the hub's JSON package first, then Nictiz XML, then the core."""
    return Registry([profiles_dir()], [d for d in nictiz_dirs(reference_dir()) if d.is_dir()])


@cache
def default_validator() -> Validator:
    """The shared validator; definitions are parsed and trees built on first use of each profile."""
    from hub.fhir.categories import default_profile

    return Validator(hub_registry(), default_profile)
