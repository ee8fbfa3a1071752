"""The server's validator: the hub's profiles + the Nictiz zib2020/nl-core definitions + the R4 core."""

from __future__ import annotations

from functools import cache

from hub.fhir.validation.registry import Registry
from hub.fhir.validation.validator import Validator
from hub.paths import nictiz_package, profiles_dir


@cache
def hub_registry() -> Registry:
    """Conformance resources by url: the hub's JSON package first, then Nictiz, then the core."""
    return Registry([profiles_dir()], packages=[nictiz_package()])


@cache
def default_validator() -> Validator:
    """The shared validator; definitions are parsed and trees built on first use of each profile."""
    from hub.fhir.categories import default_profile

    return Validator(hub_registry(), default_profile)
