"""A fast first pass of the base R4 structure check, compiled once per type from the same models.

The ``fhir.resources`` models check a resource by building a model instance per element, with Python
validators around every nested element: about half a millisecond for a middling resource. This pass
walks the JSON dict against a table compiled once per model class from the models' own fields (JSON
names, list or single, primitive or complex, required elements, ``[x]`` choice groups, contained and
Bundle resources) and answers only *valid*, or *the first place it cannot vouch for*. Primitive values
are checked by a cheap test that only ever accepts what pydantic accepts, else by pydantic itself on
that one value (the field's own annotation). So when this pass says valid, the models would too; when
it does not, :func:`hub.fhir.parse.check_structure` asks the models, whose errors (codes, locations)
are what the client gets. Anything unusual (nulls where the models have their own rules, Python field
names, JSON text for an element) is left to the models.
"""

from __future__ import annotations

import re
import threading
import typing
from collections.abc import Callable
from types import NoneType, UnionType
from typing import Any

from pydantic import TypeAdapter

Loc = tuple[str | int, ...]
_PRIM, _MODEL, _RESOURCE, _DEFER = 0, 1, 2, 3
_NOT_AN_OBJECT: Loc = ("root",)  # where the models place "not an object" for a complex element

# Cheap tests that accept only what the models accept (pydantic's patterns use search semantics and
# Unicode classes; these stay within printable ASCII, where every engine agrees).
_STRING_OK = re.compile(r"[ \t\r\n!-~]")
_CODE_OK = re.compile(r"[!-~]+(?: [!-~]+)*")
_ID_OK = re.compile(r"[A-Za-z0-9\-.]{1,64}")


def _is_str(v: Any) -> bool:
    return type(v) is str


_FAST: dict[str, Callable[[Any], Any]] = {
    "string": lambda v: type(v) is str and _STRING_OK.search(v) is not None,
    "code": lambda v: type(v) is str and _CODE_OK.fullmatch(v) is not None,
    "id": lambda v: type(v) is str and _ID_OK.fullmatch(v) is not None,
    "uri": _is_str,
    "canonical": _is_str,
    "markdown": _is_str,
    "xhtml": _is_str,
    "boolean": lambda v: v is True or v is False,
    "integer": lambda v: type(v) is int and -2147483648 <= v <= 2147483647,
    "unsignedInt": lambda v: type(v) is int and 0 <= v <= 2147483647,
    "positiveInt": lambda v: type(v) is int and 1 <= v <= 2147483647,
}


class _Field:
    """One JSON property of a type: what its value must be."""

    __slots__ = ("alias", "kind", "is_list", "nullable_items", "check", "target", "shape", "required")

    def __init__(self, alias: str) -> None:
        self.alias = alias
        self.kind = _DEFER
        self.is_list = False
        self.nullable_items = False  # a list's items may be null (primitive lists and their ``_x``)
        self.check: Callable[[Any], bool] | None = None  # a primitive's value test
        self.target: Any = None  # the model class of a complex element
        self.shape: _Shape | None = None  # its compiled table, on first use
        self.required = False


class _Shape:
    """The compiled table of one model class."""

    __slots__ = ("fields", "required", "choices", "resource_type", "needs_content")

    def __init__(self) -> None:
        self.fields: dict[str, _Field] = {}
        self.required: tuple[str, ...] = ()
        self.choices: tuple[tuple[tuple[str, ...], bool], ...] = ()
        self.resource_type: str | None = None  # the resourceType a resource's JSON carries
        self.needs_content = False  # FHIRPrimitiveExtension: id or extension must be there


def first_problem(resource: dict[str, Any]) -> Loc | None:
    """None when the models would accept ``resource``; else the location (pydantic's form, e.g.
    ``('name', 0, 'family')``) of the first thing this pass cannot vouch for."""
    shape = _resource_shape(resource.get("resourceType"))
    if shape is None:
        return ()
    try:
        return _walk(shape, resource)
    except RecursionError:  # nested deeper than this pass goes: the models decide
        return ()


def _walk(shape: _Shape, data: dict[str, Any]) -> Loc | None:
    if shape.needs_content and data.get("id") is None and data.get("extension") is None:
        return ()  # checked before its elements
    fields = shape.fields
    for key, value in data.items():
        f = fields.get(key)
        if f is None:
            if key == "resourceType" and value == shape.resource_type and value is not None:
                continue
            return (key,)
        kind = f.kind
        if value is None:
            if f.required or kind == _DEFER:
                return (key,)
            continue
        if f.is_list:
            if type(value) is not list:
                return (key,)
            for i, item in enumerate(value):
                if item is None:
                    if f.nullable_items:
                        continue
                    return (key, i) if kind == _PRIM else (key,)  # the models refuse the whole list
                bad = _value(f, kind, item)
                if bad is not None:
                    return (key, i, *bad)
        else:
            bad = _value(f, kind, value)
            if bad is not None:
                return (key, *bad)
    for key in shape.required:
        if data.get(key) is None:
            return (key,)
    for group, required in shape.choices:
        found = 0
        for key in group:
            if data.get(key) is not None:
                found += 1
        if found > 1 or (required and not found):
            return ()
    return None


def _value(f: _Field, kind: int, value: Any) -> Loc | None:
    if kind == _PRIM:
        assert f.check is not None
        return None if f.check(value) else ()
    if kind == _MODEL:
        if type(value) is not dict:
            return _NOT_AN_OBJECT if type(value) is not str else ()  # a str is parsed as JSON text
        shape = f.shape
        if shape is None:
            shape = f.shape = _shape(f.target)
        return _walk(shape, value)
    if kind == _RESOURCE:
        if type(value) is not dict:
            return _NOT_AN_OBJECT if type(value) is not str else ()
        shape = _resource_shape(value.get("resourceType"))
        return _NOT_AN_OBJECT if shape is None else _walk(shape, value)  # e.g. a datatype's name
    return ()


_RESOURCES: dict[str, _Shape | None] = {}


def _resource_shape(res_type: Any) -> _Shape | None:
    """The shape of a resource type the models know (None for anything else: the models decide)."""
    if type(res_type) is not str:
        return None
    shape = _RESOURCES.get(res_type)
    if shape is not None:
        return shape
    from fhir.resources.R4B import fhirtypes
    from fhir_core.constraints import FHIR_TYPES_MAPS
    from pydantic._internal._validators import import_string

    prefix = getattr(fhirtypes.ResourceType, "_prefix", "")
    path = FHIR_TYPES_MAPS.get(prefix + res_type + "Type")
    if path is None:
        return None  # not remembered: a client's made-up names would grow the table
    model = import_string(path)
    if not model.has_resource_base() or model.__resource_type__ != res_type:
        return None
    shape = _RESOURCES[res_type] = _shape(model)
    return shape


_SHAPES: dict[Any, _Shape] = {}
_COMPILING = threading.Lock()  # large bodies are checked on worker threads: no half-built table is seen


def _shape(model: Any) -> _Shape:
    shape = _SHAPES.get(model)
    if shape is None:
        with _COMPILING:
            shape = _SHAPES.get(model)
            if shape is None:
                shape = _Shape()
                _compile(model, shape)  # complex elements' tables are built on their first use
                _SHAPES[model] = shape
    return shape


def _compile(model: Any, shape: _Shape) -> None:
    if model.has_resource_base():
        shape.resource_type = model.__resource_type__
    shape.needs_content = model.__name__ == "FHIRPrimitiveExtension"
    fields: dict[str, _Field] = {}
    required: list[str] = []
    for name, info in model.model_fields.items():
        alias = info.alias or name
        f = _Field(alias)
        _describe(f, info.annotation, name)
        if info.is_required():
            f.required = True
            required.append(alias)
        fields[alias] = f
    try:
        primitive_required = model.get_required_fields(None)
        groups = model.get_one_of_many_fields(None)
    except Exception:  # noqa: BLE001 - a model whose helpers need an instance: leave it all to pydantic
        primitive_required, groups = [], {"?": ["?"]}
    for name, _ext in primitive_required:
        alias = model.model_fields[name].alias or name if name in model.model_fields else name
        if alias not in required:
            required.append(alias)
    choices = []
    for names in groups.values():
        if not all(n in model.model_fields for n in names):
            for f in fields.values():
                f.kind = _DEFER
            continue
        extra = model.model_fields[names[0]].json_schema_extra or {}
        choices.append(
            (tuple(model.model_fields[n].alias or n for n in names), extra.get("one_of_many_required") is True)
        )
    shape.fields = fields
    shape.required = tuple(required)
    shape.choices = tuple(choices)


def _describe(f: _Field, annotation: Any, name: str) -> None:
    ann, _ = _optional(annotation)
    if typing.get_origin(ann) is list:
        f.is_list = True
        ann, item_optional = _optional(typing.get_args(ann)[0])
        f.nullable_items = item_optional
    from fhir_core.types import FhirBase, FhirElementOrResourceBase

    if isinstance(ann, type) and issubclass(ann, FhirBase):
        if issubclass(ann, FhirElementOrResourceBase):
            if ann.get_model_klass().__name__ == "Resource":
                f.kind = _RESOURCE
        else:
            f.kind = _MODEL
            f.target = ann.get_model_klass()
        if f.nullable_items and not name.endswith("__ext"):
            f.kind = _DEFER  # the models refuse nulls in complex lists before anything else
        return
    visit = _visit_name(ann)
    if visit is not None:
        f.kind = _PRIM
        f.check = _primitive_check(visit, ann)


def _optional(ann: Any) -> tuple[Any, bool]:
    origin = typing.get_origin(ann)
    if origin is typing.Union or origin is UnionType:
        args = [a for a in typing.get_args(ann) if a is not NoneType]
        if len(args) == 1:
            return args[0], True
    return ann, False


def _visit_name(ann: Any) -> str | None:
    if ann is bool:
        return "boolean"
    if typing.get_origin(ann) is typing.Annotated:
        for meta in typing.get_args(ann)[1:]:
            visit = getattr(meta, "__visit_name__", None)
            if isinstance(visit, str):
                return visit
    return None


_CHECKS: dict[str, Callable[[Any], bool]] = {}


def _primitive_check(visit: str, ann: Any) -> Callable[[Any], bool]:
    """A value test for one primitive annotation: the cheap test, then pydantic on the value."""
    key = f"{visit}:{ann!r}"
    check = _CHECKS.get(key)
    if check is None:
        check = _CHECKS[key] = _make_check(_FAST.get(visit), TypeAdapter(ann))
    return check


def _make_check(fast: Callable[[Any], Any] | None, adapter: TypeAdapter[Any]) -> Callable[[Any], bool]:
    validate = adapter.validate_python

    def check(value: Any) -> bool:
        if fast is not None and fast(value):
            return True
        try:
            validate(value)
        except Exception:  # noqa: BLE001 - any refusal (or crash) is the models' to report
            return False
        return True

    return check
