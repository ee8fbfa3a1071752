"""What each FHIR element is: its type, whether it repeats, whether it is a primitive.

XML needs this to know which JSON shape an element takes (array or not, number or string), and
FHIRPath Patch needs it to know whether ``add`` appends or sets. The answers are read once, lazily,
from the ``fhir.resources`` R4B pydantic models (their field annotations and ``json_schema_extra``),
which list elements in the specification's order. R4B describes the R4 (4.0.1) wire format for
nearly every type; the resource *names* the hub accepts are R4's (:func:`resource_types`), and the
18 R4 types R4B dropped (``MedicinalProduct*``, ``Substance{NucleicAcid,Polymer,...}``, the
``*EvidenceSynthesis`` pair) have no element information here (:func:`element` gives ``None``).
"""

from __future__ import annotations

import datetime
import decimal
import importlib
import typing
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from types import MappingProxyType, NoneType, UnionType
from typing import Any

# The 146 resource types of FHIR R4 (4.0.1): the R4 Patient CompartmentDefinition's 145 plus Parameters.
R4_RESOURCE_TYPES: frozenset[str] = frozenset(
    """
Account ActivityDefinition AdverseEvent AllergyIntolerance Appointment AppointmentResponse AuditEvent
Basic Binary BiologicallyDerivedProduct BodyStructure Bundle CapabilityStatement CarePlan CareTeam
CatalogEntry ChargeItem ChargeItemDefinition Claim ClaimResponse ClinicalImpression CodeSystem
Communication CommunicationRequest CompartmentDefinition Composition ConceptMap Condition Consent
Contract Coverage CoverageEligibilityRequest CoverageEligibilityResponse DetectedIssue Device
DeviceDefinition DeviceMetric DeviceRequest DeviceUseStatement DiagnosticReport DocumentManifest
DocumentReference EffectEvidenceSynthesis Encounter Endpoint EnrollmentRequest EnrollmentResponse
EpisodeOfCare EventDefinition Evidence EvidenceVariable ExampleScenario ExplanationOfBenefit
FamilyMemberHistory Flag Goal GraphDefinition Group GuidanceResponse HealthcareService ImagingStudy
Immunization ImmunizationEvaluation ImmunizationRecommendation ImplementationGuide InsurancePlan
Invoice Library Linkage List Location Measure MeasureReport Media Medication MedicationAdministration
MedicationDispense MedicationKnowledge MedicationRequest MedicationStatement MedicinalProduct
MedicinalProductAuthorization MedicinalProductContraindication MedicinalProductIndication
MedicinalProductIngredient MedicinalProductInteraction MedicinalProductManufactured
MedicinalProductPackaged MedicinalProductPharmaceutical MedicinalProductUndesirableEffect
MessageDefinition MessageHeader MolecularSequence NamingSystem NutritionOrder Observation
ObservationDefinition OperationDefinition OperationOutcome Organization OrganizationAffiliation
Parameters Patient PaymentNotice PaymentReconciliation Person PlanDefinition Practitioner
PractitionerRole Procedure Provenance Questionnaire QuestionnaireResponse RelatedPerson RequestGroup
ResearchDefinition ResearchElementDefinition ResearchStudy ResearchSubject RiskAssessment
RiskEvidenceSynthesis Schedule SearchParameter ServiceRequest Slot Specimen SpecimenDefinition
StructureDefinition StructureMap Subscription Substance SubstanceNucleicAcid SubstancePolymer
SubstanceProtein SubstanceReferenceInformation SubstanceSourceMaterial SubstanceSpecification
SupplyDelivery SupplyRequest Task TerminologyCapabilities TestReport TestScript ValueSet
VerificationResult VisionPrescription
""".split()
)

PRIMITIVE_TYPES: frozenset[str] = frozenset(
    {
        "base64Binary",
        "boolean",
        "canonical",
        "code",
        "date",
        "dateTime",
        "decimal",
        "id",
        "instant",
        "integer",
        "markdown",
        "oid",
        "positiveInt",
        "string",
        "time",
        "unsignedInt",
        "uri",
        "url",
        "uuid",
        "xhtml",
    }
)
INTEGER_TYPES: frozenset[str] = frozenset({"integer", "positiveInt", "unsignedInt"})

_PY_PRIMITIVES: dict[type, str] = {
    bool: "boolean",
    int: "integer",
    decimal.Decimal: "decimal",
    str: "string",
    bytes: "base64Binary",
    uuid.UUID: "uuid",
    datetime.date: "date",
    datetime.datetime: "dateTime",
    datetime.time: "time",
}
_MODELS = "fhir.resources.R4B"


@dataclass(frozen=True, slots=True)
class ElementInfo:
    """One element of a type. ``type_name`` is what to pass to :func:`element` for its children.

    ``fhir_type`` is the specification's type code ('string', 'HumanName', 'BackboneElement',
    'Resource', 'xhtml'); ``type_name`` differs only for nested components ('PatientContact').
    ``choice`` is the ``[x]`` base name of a choice element ('value' for valueQuantity).
    """

    name: str
    fhir_type: str
    type_name: str
    is_list: bool
    is_primitive: bool
    required: bool = False
    choice: str | None = None


@dataclass(frozen=True, slots=True)
class TypeInfo:
    """All elements of one type, in the specification's order."""

    name: str
    is_resource: bool
    elements: Mapping[str, ElementInfo]
    order: Mapping[str, int]
    choices: Mapping[str, tuple[str, ...]]


def resource_types() -> frozenset[str]:
    """The names of all R4 resource types (146)."""
    return R4_RESOURCE_TYPES


def is_resource_type(name: str) -> bool:
    """True for an R4 resource type name ('Patient'); False for datatypes and abstract bases."""
    return name in R4_RESOURCE_TYPES


def element(type_name: str, element_name: str) -> ElementInfo | None:
    """The element ``element_name`` (JSON name, e.g. 'valueQuantity') of ``type_name``, or None."""
    info = type_info(type_name)
    return info.elements.get(element_name) if info is not None else None


def elements(type_name: str) -> Mapping[str, ElementInfo]:
    """All elements of ``type_name`` in specification order (empty for an unknown type)."""
    info = type_info(type_name)
    return info.elements if info is not None else MappingProxyType({})


@cache
def type_info(type_name: str) -> TypeInfo | None:
    """Element information for a resource, datatype or component name; None if unknown."""
    model = _model_class(type_name)
    if model is None:
        return None
    from fhir.resources.R4B.resource import Resource

    fields = model.model_fields
    by_name = {name: f for name, f in fields.items()} | {f.alias: f for f in fields.values() if f.alias}
    infos: dict[str, ElementInfo] = {}
    choices: dict[str, list[str]] = {}
    for field_name in model.elements_sequence():
        field = by_name[field_name]
        extra = field.json_schema_extra if isinstance(field.json_schema_extra, dict) else {}
        if not extra.get("element_property"):
            continue
        json_name = field.alias or field_name
        fhir_type, component, is_list = _describe(field.annotation)
        choice = extra.get("one_of_many")
        if isinstance(choice, str):
            choices.setdefault(choice, []).append(json_name)
        else:
            choice = None
        infos[json_name] = ElementInfo(
            name=json_name,
            fhir_type=fhir_type,
            type_name=component or fhir_type,
            is_list=is_list,
            is_primitive=fhir_type in PRIMITIVE_TYPES,
            required=bool(extra.get("element_required")),
            choice=choice,
        )
    return TypeInfo(
        name=type_name,
        is_resource=issubclass(model, Resource),
        elements=MappingProxyType(infos),
        order=MappingProxyType({name: i for i, name in enumerate(infos)}),
        choices=MappingProxyType({k: tuple(v) for k, v in choices.items()}),
    )


@cache
def _model_class(type_name: str) -> Any:
    from fhir.resources.R4B import fhirtypes

    holder = getattr(fhirtypes, type_name + "Type", None)
    path = getattr(holder, "_model_klass", None)
    if not isinstance(path, str):
        return None
    module, _, cls = path.rpartition(".")
    return getattr(importlib.import_module(module), cls)


def _describe(annotation: Any) -> tuple[str, str | None, bool]:
    """(FHIR type code, component class name or None, is_list) from a field annotation."""
    is_list = False
    ann = _strip_optional(annotation)
    if typing.get_origin(ann) in (list, typing.List):  # noqa: UP006
        is_list = True
        ann = _strip_optional(typing.get_args(ann)[0])
    if typing.get_origin(ann) is typing.Annotated:
        base, *meta = typing.get_args(ann)
        for m in meta:
            visit = getattr(m, "__visit_name__", None)
            if isinstance(visit, str):
                return visit, None, is_list
        return _PY_PRIMITIVES.get(_strip_optional(base), "string"), None, is_list
    if ann in _PY_PRIMITIVES:
        return _PY_PRIMITIVES[ann], None, is_list
    path = getattr(ann, "_model_klass", None)
    if isinstance(path, str):
        module, _, cls = path.rpartition(".")
        model = getattr(importlib.import_module(module), cls)
        if cls.lower() != module.rpartition(".")[2]:  # a nested component such as PatientContact
            from fhir.resources.R4B.backboneelement import BackboneElement

            base = "BackboneElement" if issubclass(model, BackboneElement) else "Element"
            return base, cls, is_list
        return cls, None, is_list
    raise TypeError(f"Unrecognised field annotation {annotation!r}")


def _strip_optional(ann: Any) -> Any:
    origin = typing.get_origin(ann)
    if origin is typing.Union or origin is UnionType:
        args = [a for a in typing.get_args(ann) if a is not NoneType]
        if len(args) == 1:
            return args[0]
    return ann


__all__ = [
    "INTEGER_TYPES",
    "PRIMITIVE_TYPES",
    "ElementInfo",
    "TypeInfo",
    "element",
    "elements",
    "is_resource_type",
    "resource_types",
    "type_info",
]
