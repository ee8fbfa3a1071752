"""Profile validation: the hub's and Nictiz's StructureDefinitions applied to FHIR R4 JSON resources.

``check_base`` is the structural check of every write; ``Validator`` adds the profile rules
(cardinality, fixed/pattern values, types and reference targets, slicing, bindings, extensions,
FHIRPath invariants). ``default_validator()`` is the server's instance over profiles/, the Nictiz
zib2020/nl-core XML and the R4 core definitions, built lazily on first use.
"""

from hub.fhir.validation.base import check_base
from hub.fhir.validation.loader import default_validator, hub_registry
from hub.fhir.validation.registry import Registry
from hub.fhir.validation.validator import Validator

__all__ = ["Registry", "Validator", "check_base", "default_validator", "hub_registry"]
