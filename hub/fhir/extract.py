"""Search index rows for one resource (after HAPI's SearchParamExtractorService).

``extract(resource, registry)`` evaluates every indexed search parameter of the resource's type
and turns the values into rows for the ``idx_*`` tables of :mod:`hub.store.tables`. Each row dict
has exactly the table's columns minus ``pid`` and ``res_type`` (see :data:`COLUMNS`); the writer
adds those two. Rows are deduplicated; malformed values are skipped, never raised (validation is
another layer's job).

Conventions the search side relies on:

- ``grp`` is 0 for plain rows. A composite parameter writes its components into their own
  tables with ``param = f"{code}${i}"`` (component index i, 0-based) and one ``grp`` >= 1 per
  occurrence, shared by all rows of that occurrence. Occurrences missing a component are skipped.
- Text columns of ``String(255)`` are cut at 255 characters (search values must be cut alike);
  ``value_norm`` / ``text_norm`` are :func:`~hub.fhir.normalize.normalize_string` output.
- token: Coding -> (system, code, display); CodeableConcept -> one row per coding, whose
  ``text_norm`` is the coding's display or else CodeableConcept.text, plus a code-less row with
  the text when no coding row carries it; Identifier -> (system, value) with ``type_system`` /
  ``type_code`` from Identifier.type.coding and ``text_norm`` from Identifier.type.text;
  ContactPoint -> code = value, system None; boolean -> 'true'/'false'; other primitives -> code.
- reference: ``Type/id`` (a ``/_history/n`` tail dropped) -> target_type/target_id with
  ``target_url`` NULL. Absolute URLs and canonicals keep the whole text in ``target_url`` *and*
  the type/id parsed from the tail, so a search for a local ``Patient/1`` must also require
  ``target_url IS NULL`` (or the server's own base). ``#x`` -> target_url '#x' with the contained
  resource's type; ``urn:uuid:``/``urn:oid:`` -> target_url only; Reference.identifier ->
  ident_system/ident_value (same row). A Reference with only a display gives no row.
- date: inclusive [low, high] µs (see :func:`~hub.fhir.normalize.date_range`).
- quantity: Quantity and its profiles (Age, Duration, Distance, Count, SimpleQuantity); Money as
  value + code = currency (system ``urn:iso:std:iso:4217``); Range as two rows (low, high);
  SampledData is not indexed.
- R4's DocumentReference ``relationship`` composite has its two component definitions swapped;
  components are typed by the definition whose expression ends in the component's path.
- ``_id``/``_lastUpdated`` and the special parameters produce no rows (see searchparams).
- Name parts: for the HumanName parameters of :data:`NAME_PART_PARAMS`, every later word of a
  value ("berg" of "van der Berg") and every nl-core name part (the ``humanname-own-prefix``,
  ``-own-name``, ``-partner-prefix``, ``-partner-name`` extensions on ``family``) gets an extra
  string row with ``grp`` = :data:`PART_GRP`, so that the default starts-with search finds a name
  by any of its parts. ``:exact`` and ``_sort`` skip these rows (they are not the element's value).
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from hub.fhir.compartment import patient_compartment_ids
from hub.fhir.errors import BadRequest
from hub.fhir.fhirpath_fast import CompiledPath, Item, compile_path, reference_type
from hub.fhir.normalize import MAX_TEXT, date_range, normalize_string, to_float
from hub.fhir.searchparams import Registry, SearchParam

log = logging.getLogger(__name__)

#: Row-dict keys per index table (the table's columns minus ``pid`` and ``res_type``).
COLUMNS: dict[str, tuple[str, ...]] = {
    "string": ("param", "grp", "value_norm", "value_exact"),
    "token": ("param", "grp", "system", "code", "text_norm", "type_system", "type_code"),
    "date": ("param", "grp", "low", "high"),
    "reference": ("param", "grp", "target_type", "target_id", "target_url", "ident_system", "ident_value"),
    "quantity": ("param", "grp", "value", "system", "code", "unit"),
    "number": ("param", "grp", "value"),
    "uri": ("param", "grp", "value"),
}

#: HumanName string parameters whose parts are searchable on their own (type -> parameter codes).
NAME_PART_PARAMS: dict[str, frozenset[str]] = {
    "Patient": frozenset({"family", "name"}),
    "Practitioner": frozenset({"family", "name"}),
    "RelatedPerson": frozenset({"name"}),
    "Person": frozenset({"name"}),
}
#: ``grp`` of the extra rows that index a name part (not a whole value).
PART_GRP = -1
_HUMANNAME = "http://hl7.org/fhir/StructureDefinition/humanname-"
_NAME_PART_EXTENSIONS = frozenset(
    _HUMANNAME + part for part in ("own-prefix", "own-name", "partner-prefix", "partner-name")
)

Values = tuple[Any, ...]
Converter = Callable[[Any, "str | None", dict[str, Any]], Iterator[Values]]

_QUANTITY_TYPES = frozenset({"Quantity", "Age", "Duration", "Distance", "Count", "SimpleQuantity", "MoneyQuantity"})
_NUMBER_TYPES = frozenset({"decimal", "integer", "positiveInt", "unsignedInt", "integer64"})
_STRING_PRIMITIVES = frozenset(
    {"string", "markdown", "code", "id", "uri", "url", "canonical", "oid", "uuid", "xhtml", "base64Binary"}
)
_URI_TYPES = frozenset({"uri", "url", "canonical", "oid", "uuid", "string", "code", "id"})
_TOKEN_PRIMITIVES = frozenset({"code", "string", "id", "uri", "url", "canonical", "oid", "uuid", "markdown"})
_CONTACT_SYSTEMS = frozenset({"phone", "fax", "email", "pager", "url", "sms", "other"})
_ID_MAX = 64
_ISO_4217 = "urn:iso:std:iso:4217"


@dataclass(slots=True)
class IndexRows:
    """Index rows of one resource: ``rows[table]`` is a list of row dicts (keys: :data:`COLUMNS`)."""

    rows: dict[str, list[dict[str, Any]]] = field(default_factory=lambda: {t: [] for t in COLUMNS})
    #: (compartment type, compartment id) pairs, e.g. ("Patient", "123").
    compartments: list[tuple[str, str]] = field(default_factory=list)

    def __getitem__(self, table: str) -> list[dict[str, Any]]:
        return self.rows[table]

    def count(self) -> int:
        """Total number of index rows (compartments not included)."""
        return sum(len(r) for r in self.rows.values())


# --------------------------------------------------------------------------- helpers


def _cut(value: Any) -> str | None:
    """A string for a String(255) column, or None."""
    if isinstance(value, str) and value:
        return value[:MAX_TEXT]
    return None


def _norm(value: Any) -> str | None:
    if isinstance(value, str):
        return normalize_string(value) or None
    return None


def _infer(value: Any) -> str | None:
    """The FHIR type of a value whose type the expression could not tell (fallback path)."""
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, str):
        return "string"
    if isinstance(value, int):
        return "integer"
    if to_float(value) is not None:
        return "decimal"
    if not isinstance(value, dict):
        return None
    if "resourceType" in value:
        return str(value["resourceType"])
    if "coding" in value or set(value) <= {"text", "id", "extension"} and "text" in value:
        return "CodeableConcept"
    if "reference" in value or isinstance(value.get("identifier"), dict):
        return "Reference"
    if "currency" in value:
        return "Money"
    if "value" in value and to_float(value["value"]) is not None:
        return "Quantity"
    if "low" in value or "high" in value:
        return "Range"
    if "start" in value or "end" in value:
        return "Period"
    if "event" in value or "repeat" in value:
        return "Timing"
    if "family" in value or "given" in value:
        return "HumanName"
    if "line" in value or "city" in value or "postalCode" in value:
        return "Address"
    if "value" in value and "system" in value:
        return "ContactPoint" if value["system"] in _CONTACT_SYSTEMS else "Identifier"
    if "code" in value or "system" in value:
        return "Coding"
    if "value" in value:
        return "Identifier"
    return None


# --------------------------------------------------------------------------- converters


def _string_values(value: Any, typ: str | None, root: dict[str, Any]) -> Iterator[Values]:
    if isinstance(value, str):
        norm = normalize_string(value)
        if norm:
            yield norm, value
        return
    if not isinstance(value, dict):
        return
    if typ is None:
        typ = _infer(value)
    if typ == "HumanName":
        keys: tuple[str, ...] = ("family", "given", "prefix", "suffix", "text")
    elif typ == "Address":
        keys = ("line", "city", "district", "state", "postalCode", "country", "text")
    else:
        return
    for key in keys:
        part = value.get(key)
        for s in part if isinstance(part, list) else (part,):
            if isinstance(s, str):
                norm = normalize_string(s)
                if norm:
                    yield norm, s


def _coding_row(coding: Any, text: str | None) -> Values | None:
    if not isinstance(coding, dict):
        return None
    system, code = _cut(coding.get("system")), _cut(coding.get("code"))
    display = _norm(coding.get("display"))
    if system is None and code is None and display is None:
        return None
    return system, code, display or text, None, None


def _token_values(value: Any, typ: str | None, root: dict[str, Any]) -> Iterator[Values]:
    if typ is None:
        typ = _infer(value)
    if isinstance(value, bool):
        yield None, "true" if value else "false", None, None, None
        return
    if isinstance(value, str):
        if typ in _TOKEN_PRIMITIVES or typ is None or typ in ("date", "dateTime", "instant", "time"):
            yield None, value[:MAX_TEXT], None, None, None
        return
    if typ in ("integer", "positiveInt", "unsignedInt", "decimal") and to_float(value) is not None:
        yield None, str(value), None, None, None
        return
    if not isinstance(value, dict):
        return
    if typ == "CodeableConcept":
        text = _norm(value.get("text"))
        carried = text is None
        for coding in value.get("coding") or ():
            row = _coding_row(coding, text)
            if row is not None:
                carried = carried or row[2] == text
                yield row
        if not carried:
            yield None, None, text, None, None
    elif typ == "Coding":
        row = _coding_row(value, None)
        if row is not None:
            yield row
    elif typ == "Identifier":
        system, code = _cut(value.get("system")), _cut(value.get("value"))
        if system is None and code is None:
            return
        itype = value.get("type")
        type_text = _norm(itype.get("text")) if isinstance(itype, dict) else None
        codings = [c for c in (itype.get("coding") or ()) if isinstance(c, dict)] if isinstance(itype, dict) else []
        if not codings:
            yield system, code, type_text, None, None
        for c in codings:
            yield (
                system,
                code,
                type_text or _norm(c.get("display")),
                _cut(c.get("system")),
                _cut(c.get("code")),
            )
    elif typ == "ContactPoint":
        code = _cut(value.get("value"))
        if code is not None:
            yield None, code, None, None, None


def parse_reference(ref: str, root: dict[str, Any] | None = None) -> Values:
    """(target_type, target_id, target_url) for a reference string, as the reference rows store it.

    The search side can parse reference *values* with it to match rows exactly.
    """
    if ref.startswith("#"):
        return reference_type({"reference": ref}, root or {}), None, ref
    head = ref.split("|", 1)[0]
    parts = head.split("/")
    if "_history" in parts:
        i = parts.index("_history")
        parts = parts[:i]
    if len(parts) >= 2:
        rtype, rid = parts[-2], parts[-1]
        ok = rtype[:1].isupper() and rtype.isalpha() and 0 < len(rid) <= _ID_MAX
        if ok and ":" not in head:  # relative: Type/id
            if len(parts) == 2:
                return rtype, rid, None
            return None, None, ref
        if ok:
            return rtype, rid, ref
    return None, None, ref


def _reference_values(value: Any, typ: str | None, root: dict[str, Any]) -> Iterator[Values]:
    if isinstance(value, str):
        yield *parse_reference(value, root), None, None
        return
    if not isinstance(value, dict):
        return
    if "resourceType" in value:  # an inline resource (Bundle.entry[0].resource)
        rid = value.get("id")
        if isinstance(rid, str) and rid:
            yield value["resourceType"], rid[:_ID_MAX], None, None, None
        return
    ref = value.get("reference")
    ident = value.get("identifier")
    isys = ival = None
    if isinstance(ident, dict):
        isys, ival = _cut(ident.get("system")), _cut(ident.get("value"))
    if isinstance(ref, str) and ref:
        rtype, rid, url = parse_reference(ref, root)
    elif isys is not None or ival is not None:
        rtype, rid, url = reference_type(value, root), None, None
    else:
        return
    yield rtype, rid, url, isys, ival


def _date_values(value: Any, typ: str | None, root: dict[str, Any]) -> Iterator[Values]:
    if typ is not None and typ not in ("date", "dateTime", "instant", "Period", "Timing", "string"):
        return
    try:
        yield date_range(value, typ)
    except BadRequest:
        return


def _quantity_row(value: Any) -> Values | None:
    if not isinstance(value, dict):
        return None
    number = to_float(value.get("value"))
    if number is None:
        return None
    return number, _cut(value.get("system")), _cut(value.get("code")), _cut(value.get("unit"))


def _quantity_values(value: Any, typ: str | None, root: dict[str, Any]) -> Iterator[Values]:
    if typ is None:
        typ = _infer(value)
    if typ in _QUANTITY_TYPES:
        row = _quantity_row(value)
        if row is not None:
            yield row
    elif typ == "Money":
        number = to_float(value.get("value")) if isinstance(value, dict) else None
        if number is not None:
            currency = _cut(value.get("currency"))
            yield number, _ISO_4217 if currency else None, currency, None
    elif typ == "Range" and isinstance(value, dict):
        for end in (value.get("low"), value.get("high")):
            row = _quantity_row(end)
            if row is not None:
                yield row
    elif typ in _NUMBER_TYPES:
        number = to_float(value)
        if number is not None:
            yield number, None, None, None


def _number_values(value: Any, typ: str | None, root: dict[str, Any]) -> Iterator[Values]:
    number = to_float(value)
    if number is not None:
        yield (number,)
        return
    for row in _quantity_values(value, typ, root):
        yield (row[0],)


def _uri_values(value: Any, typ: str | None, root: dict[str, Any]) -> Iterator[Values]:
    if isinstance(value, str) and value and (typ is None or typ in _URI_TYPES):
        yield (value,)


_CONVERTERS: dict[str, Converter] = {
    "string": _string_values,
    "token": _token_values,
    "reference": _reference_values,
    "date": _date_values,
    "quantity": _quantity_values,
    "number": _number_values,
    "uri": _uri_values,
}


# --------------------------------------------------------------------------- plan


@dataclass(frozen=True, slots=True)
class _Plain:
    code: str
    table: str
    path: CompiledPath


@dataclass(frozen=True, slots=True)
class _Composite:
    code: str
    path: CompiledPath
    parts: tuple[tuple[str, CompiledPath], ...]


def _component_param(
    registry: Registry, sp: SearchParam, expression: str, definition: str, resource_type: str
) -> SearchParam | None:
    """The parameter that types a composite component.

    Normally the component's ``definition``; but R4 swapped the two definitions of
    DocumentReference ``relationship`` (``code`` points at the reference parameter), so a sibling
    definition whose own expression ends in this component's path wins.
    """
    own = registry.by_url(definition)
    tail = "." + expression.strip()
    if own is not None and (own.expression_for(resource_type) or "").endswith(tail):
        return own
    for comp in sp.components:
        other = registry.by_url(comp.definition)
        if other is not None and (other.expression_for(resource_type) or "").endswith(tail):
            return other
    return own


@functools.lru_cache(maxsize=1024)
def _plan(registry: Registry, resource_type: str) -> tuple[tuple[_Plain, ...], tuple[_Composite, ...]]:
    """What to evaluate for a type: compiled once per (registry, type)."""
    plain: list[_Plain] = []
    composite: list[_Composite] = []
    for code, sp in registry.for_type(resource_type).items():
        if not sp.indexed:
            continue
        expr = sp.expression_for(resource_type)
        if not expr:
            continue
        if sp.type == "composite":
            parts: list[tuple[str, CompiledPath]] = []
            for comp in sp.components:
                target = _component_param(registry, sp, comp.expression, comp.definition, resource_type)
                if target is None or target.type not in _CONVERTERS:
                    log.warning("Composite %s: unknown component %s; not indexed", sp.url, comp.definition)
                    break
                parts.append((target.type, compile_path(comp.expression)))
            else:
                composite.append(_Composite(code, compile_path(expr), tuple(parts)))
        elif sp.type in _CONVERTERS:
            plain.append(_Plain(code, sp.type, compile_path(expr)))
    return tuple(plain), tuple(composite)


def _evaluate(path: CompiledPath, value: Any, typ: str | None, root: dict[str, Any]) -> list[Item]:
    try:
        return path.at(value, typ, root)
    except Exception:  # never let odd data break a write: the row is simply not indexed
        log.warning(
            "Search expression %r failed on %s/%s",
            path.expression,
            root.get("resourceType"),
            root.get("id"),
            exc_info=True,
        )
        return []


def _convert(table: str, items: Iterable[Item], root: dict[str, Any]) -> list[Values]:
    conv = _CONVERTERS[table]
    out: list[Values] = []
    for value, typ in items:
        try:
            out.extend(conv(value, typ, root))
        except (TypeError, ValueError, AttributeError, OverflowError):
            continue
    return out


def extract(resource: dict[str, Any], registry: Registry, *, base_url: str | None = None) -> IndexRows:
    """All index rows (and Patient compartments) of ``resource``; never raises on odd data.

    ``base_url`` (this server's FHIR base) lets absolute references to it count for compartments.
    """
    rtype = resource.get("resourceType")
    result = IndexRows()
    if not isinstance(rtype, str):
        return result
    plain, composite = _plan(registry, rtype)
    seen: dict[str, dict[tuple[Any, ...], None]] = {t: {} for t in COLUMNS}
    for p in plain:
        items = _evaluate(p.path, resource, rtype, resource)
        if items:
            bucket = seen[p.table]
            for values in _convert(p.table, items, resource):
                bucket[(p.code, 0, *values)] = None
    parts = NAME_PART_PARAMS.get(rtype)
    if parts:
        _name_parts(resource, parts, seen["string"])
    grp = 0
    for c in composite:
        for value, typ in _evaluate(c.path, resource, rtype, resource):
            grp += 1
            occurrence: list[tuple[str, tuple[Any, ...]]] = []
            for i, (table, path) in enumerate(c.parts):
                rows = _convert(table, _evaluate(path, value, typ, resource), resource)
                if not rows:
                    break
                occurrence.extend((table, (f"{c.code}${i}", grp, *v)) for v in rows)
            else:
                for table, key in occurrence:
                    seen[table][key] = None
    for table, keys in seen.items():
        cols = COLUMNS[table]
        result.rows[table] = [dict(zip(cols, k, strict=True)) for k in keys]
    rid = resource.get("id")
    result.compartments = [
        ("Patient", pid)
        for pid in patient_compartment_ids(
            rtype, rid if isinstance(rid, str) else None, result.rows["reference"], base_url=base_url
        )
    ]
    return result


def _later_words(norm: str) -> list[str]:
    """The value from each later word on: "de vries-bakker" -> "vries-bakker", "bakker"."""
    starts = [i + 1 for i, ch in enumerate(norm) if ch in " -" and i + 1 < len(norm) and norm[i + 1] not in " -"]
    return [norm[i:] for i in starts]


def _name_parts(resource: dict[str, Any], codes: frozenset[str], bucket: dict[tuple[Any, ...], None]) -> None:
    """Rows for each later word of a name value and for each nl-core name part (see module doc)."""
    words: dict[str, set[str]] = {code: set() for code in codes}
    whole: dict[str, set[str]] = {code: set() for code in codes}
    for code, grp, norm, _exact in list(bucket):
        if code in codes and grp == 0:
            whole[code].add(norm)
            words[code].update(_later_words(norm))
    extension_parts: set[str] = set()
    names = resource.get("name")
    for name in names if isinstance(names, list) else ():
        family_ext = name.get("_family") if isinstance(name, dict) else None
        found: dict[str, str] = {}
        for ext in (family_ext.get("extension") or ()) if isinstance(family_ext, dict) else ():
            if isinstance(ext, dict) and ext.get("url") in _NAME_PART_EXTENSIONS:
                value = ext.get("valueString")
                norm = normalize_string(value) if isinstance(value, str) else ""
                if norm:
                    found[ext["url"].removeprefix(_HUMANNAME)] = norm  # "own-prefix", ...
        for owner in ("own", "partner"):  # "de" + "Wit": the prefixed name is a part too
            if f"{owner}-prefix" in found and f"{owner}-name" in found:
                found[f"{owner}-full"] = f"{found[f'{owner}-prefix']} {found[f'{owner}-name']}"
        for norm in found.values():
            extension_parts.add(norm)
            extension_parts.update(_later_words(norm))
    for code in codes:
        for word in sorted((words[code] | extension_parts) - whole[code]):
            bucket[(code, PART_GRP, word, word)] = None


__all__ = ["COLUMNS", "IndexRows", "extract", "parse_reference"]
