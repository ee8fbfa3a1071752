"""The two PATCH formats a FHIR R4 server accepts: JSON Patch and FHIRPath Patch.

Both take a FHIR JSON resource and return a patched *copy*; the input is never changed.

JSON Patch (RFC 6902) is applied by the ``jsonpatch`` library, one operation at a time so that an
error can name the operation. Malformed operations are 400 (BadRequest); an operation that cannot
apply to this resource (missing path, out-of-range index) or a failing ``test`` is 422
(Unprocessable): the request was understood, but the resource does not meet it. (412 is kept for
``If-Match`` version mismatches, which the API layer checks before patching.)

FHIRPath Patch (http://hl7.org/fhir/R4/fhirpatch.html) is a Parameters resource of ``operation``
parameters (add, insert, delete, replace, move). Each ``path`` is evaluated by fhirpathpy; its raw
result nodes carry their location (``Patient.contact[0].name``), which is walked in the JSON to find
the parent object and key/index to change. Nodes without a location (e.g. after ``resolve``) are found
by object identity. ``extension('url')`` is rewritten to ``extension.where(url = 'url')`` so that
results keep their location, and element names that are FHIRPath keywords (``text.div``) are quoted.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import jsonpatch
import jsonpointer

from hub.fhir.errors import BadRequest, FhirError, PayloadTooLarge, Unprocessable
from hub.fhir.typeinfo import element, type_info

# ----------------------------------------------------------------------------------------- JSON Patch


@dataclass(frozen=True, slots=True)
class PatchLimits:
    """What one patch may do (from :class:`hub.settings.Settings`).

    ``max_bytes`` bounds the resource after *each* operation: 30 ``copy /name -> /name/-``
    operations double a document 30 times, so checking only the end result is too late."""

    max_bytes: int = 8 * 1024 * 1024
    max_operations: int = 1000
    #: Objects and arrays the whole patch may add: copying costs per node, not per byte.
    max_added_nodes: int = 10_000

    @classmethod
    def from_settings(cls, settings: Any) -> PatchLimits:
        return cls(
            max_bytes=settings.max_resource_bytes,
            max_operations=settings.max_patch_operations,
            max_added_nodes=settings.max_patch_added_nodes,
        )


DEFAULT_PATCH_LIMITS = PatchLimits()


class _SizeGuard:
    """Keeps an upper bound of the document's serialized size through a patch, cheaply.

    Each operation can add at most the size of what it inserts (a value from the patch, or for
    ``copy`` the value copied); removals are ignored, so the bound only grows. Only when the bound
    passes the limit is the document measured exactly, so a patch costs O(its own size) unless it is
    near the limit."""

    def __init__(self, doc: Any, limits: PatchLimits, what: str) -> None:
        self.limits = limits
        self.what = what
        self.bound = _size(doc)
        self.added_nodes = 0

    def admit_value(self, doc: Any, value: Any, op_index: int) -> None:
        """Before an operation that inserts ``value``: refuse it if the resource would pass a limit."""
        text = _dump(value)
        self.added_nodes += text.count(b"{") + text.count(b"[")
        if self.added_nodes > self.limits.max_added_nodes:
            raise PayloadTooLarge(
                f"{self.what} operation {op_index} would add more than the limit of {self.limits.max_added_nodes} "
                "objects and arrays to the resource",
                code="too-costly",
            )
        self.admit(doc, len(text), op_index)

    def admit(self, doc: Any, added: int, op_index: int) -> None:
        """Before an operation that adds ``added`` bytes: refuse it if it would pass the limit."""
        if self.bound + added <= self.limits.max_bytes:
            self.bound += added
            return
        self.bound = _size(doc) + added
        self._refuse_if_over(self.bound, op_index)

    def _refuse_if_over(self, size: int, op_index: int) -> None:
        if size > self.limits.max_bytes:
            raise PayloadTooLarge(
                f"{self.what} operation {op_index} would make the resource about {size} bytes, over the limit "
                f"of {self.limits.max_bytes} bytes",
                code="too-costly",
            )


def _dump(value: Any) -> bytes:
    from hub.fhir import jsonio

    return jsonio.dumps(value)


def _size(value: Any) -> int:
    return len(_dump(value))


def _check_op_count(count: int, limits: PatchLimits, what: str) -> None:
    if count > limits.max_operations:
        raise BadRequest(f"{what} has {count} operations; the limit is {limits.max_operations}", code="too-costly")


def apply_json_patch(
    resource: dict[str, Any], ops: list[Any], limits: PatchLimits = DEFAULT_PATCH_LIMITS
) -> dict[str, Any]:
    """Apply RFC 6902 operations to a copy of ``resource``; 400 if malformed, 422 if they do not apply,
    413 if the resource would grow past ``limits.max_bytes`` (checked before each operation)."""
    if not isinstance(ops, list):
        raise BadRequest("A JSON Patch document must be an array of operations", code="structure")
    _check_op_count(len(ops), limits, "The JSON Patch")
    doc: Any = _copy(resource)
    guard = _SizeGuard(doc, limits, "The JSON Patch")
    rtype = str(resource.get("resourceType", ""))
    for i, raw in enumerate(ops):
        op = _copy(raw)
        if not isinstance(op, dict):
            raise BadRequest(f"JSON Patch operation {i} is not an object", code="structure")
        where = _pointer_to_fhirpath(rtype, op.get("path"))
        kind = op.get("op")
        if kind in ("add", "replace") and "value" in op:
            guard.admit_value(doc, op["value"], i)
        elif kind == "copy" and isinstance(op.get("from"), str):
            try:
                source = jsonpointer.resolve_pointer(doc, op["from"])
            except jsonpointer.JsonPointerException:
                source = None  # the operation itself reports the bad pointer below
            guard.admit_value(doc, source, i)
        try:
            doc = jsonpatch.JsonPatch([op]).apply(doc, in_place=True)
        except jsonpatch.InvalidJsonPatch as exc:
            raise BadRequest(
                f"JSON Patch operation {i} is invalid: {exc}", code="structure", expression=where
            ) from None
        except jsonpatch.JsonPatchTestFailed as exc:
            raise Unprocessable(f"JSON Patch operation {i} (test) failed: {exc}", expression=where) from None
        except (jsonpatch.JsonPatchConflict, jsonpatch.JsonPatchException) as exc:
            raise Unprocessable(
                f"JSON Patch operation {i} ({op.get('op')}) cannot be applied: {exc}", expression=where
            ) from None
        except jsonpointer.JsonPointerException as exc:
            path = op.get("path")
            cls = BadRequest if not isinstance(path, str) or path[:1] not in ("/", "") else Unprocessable
            raise cls(f"JSON Patch operation {i} ({op.get('op')}): {exc}", expression=where) from None
    if not isinstance(doc, dict) or doc.get("resourceType") != resource.get("resourceType"):
        raise Unprocessable("JSON Patch result is not a resource of the same type")
    return doc


def _pointer_to_fhirpath(rtype: str, pointer: Any) -> str | None:
    """'/name/0/given' -> 'Patient.name[0].given' (a FHIRPath for OperationOutcome.expression)."""
    if not isinstance(pointer, str) or not pointer.startswith("/"):
        return None
    out = rtype
    for raw in pointer[1:].split("/"):
        step = raw.replace("~1", "/").replace("~0", "~")
        if step.isdigit():
            out += f"[{step}]"
        elif step != "-":
            out += f".{step}"
    return out


# ------------------------------------------------------------------------------------- FHIRPath Patch

_EXTENSION_FN = re.compile(r"\bextension\(\s*('(?:[^'\\]|\\.)*')\s*\)")
# Element names that are FHIRPath keywords ('Patient.text.div') must be `quoted` for the parser.
_KEYWORD_STEP = re.compile(r"('(?:[^'\\]|\\.)*')|\.(div|mod|and|or|xor|implies|as|is|in|contains)\b(?!\s*\()")
_STEP = re.compile(r"([A-Za-z0-9_]+)(?:\[([0-9]+)\])?")
_OP_TYPES = ("add", "insert", "delete", "replace", "move")


@dataclass(frozen=True, slots=True)
class _Value:
    """A value to put into the resource: its JSON, its ``_element`` sibling, and its type suffix."""

    json: Any
    ext: dict[str, Any] | None = None
    suffix: str | None = None  # 'Date' for valueDate: the [x] type of a choice element


@dataclass(slots=True)
class _Op:
    index: int
    type: str
    path: str
    name: str | None = None
    value: list[dict[str, Any]] | None = None  # the 'value' part(s), kept raw until the type is known
    position: int | None = None
    source: int | None = None
    destination: int | None = None


@dataclass(slots=True)
class _Loc:
    """Where a matched element lives: ``holder[key]`` (or ``holder[key][index]``)."""

    trail: list[tuple[Any, str, int | None]]  # (holder, key, index) from the root down; holder is a dict
    holder: dict[str, Any] | None  # None for the resource itself
    key: str
    index: int | None
    holder_type: str  # the FHIR type name of ``holder`` (for element information)

    @property
    def steps(self) -> tuple[tuple[str, int | None], ...]:
        return tuple((key, index) for _, key, index in self.trail)


def apply_fhirpath_patch(
    resource: dict[str, Any], parameters: dict[str, Any], limits: PatchLimits = DEFAULT_PATCH_LIMITS
) -> dict[str, Any]:
    """Apply a FHIRPath Patch Parameters resource to a copy of ``resource`` (each operation adds at
    most its own value, and is refused before it would pass ``limits.max_bytes``)."""
    if not isinstance(parameters, dict) or parameters.get("resourceType") != "Parameters":
        raise BadRequest("A FHIRPath Patch body must be a Parameters resource", code="structure")
    out: dict[str, Any] = _copy(resource)
    params = parameters.get("parameter") or []
    if not isinstance(params, list):
        raise BadRequest("Parameters.parameter must be an array", code="structure", expression="Parameters.parameter")
    _check_op_count(len(params), limits, "The FHIRPath Patch")
    guard = _SizeGuard(out, limits, "The FHIRPath Patch")
    for i, param in enumerate(params):
        op = _read_operation(param, i)
        if op.value:
            guard.admit_value(out, op.value, i)
        try:
            _APPLY[op.type](out, op)
        except FhirError as exc:
            if not exc.diagnostics.startswith("FHIRPath Patch operation"):
                raise type(exc)(
                    f"FHIRPath Patch operation {i} ({op.type} at '{op.path}'): {exc.diagnostics}",
                    expression=exc.issues[0].expression or op.path,
                    code=exc.issues[0].code,
                ) from None
            raise
    return out


def _read_operation(param: Any, i: int) -> _Op:
    where = f"Parameters.parameter[{i}]"
    if not isinstance(param, dict) or param.get("name") != "operation":
        raise BadRequest(f"FHIRPath Patch parameter {i} must be named 'operation'", expression=where)
    parts: dict[str, Any] = {}
    values: list[dict[str, Any]] = []
    for part in param.get("part") or []:
        name = part.get("name") if isinstance(part, dict) else None
        if name == "value":
            values.append(part)
        elif name in ("type", "path", "name", "index", "source", "destination"):
            if name in parts:
                raise BadRequest(f"FHIRPath Patch operation {i}: part '{name}' given twice", expression=where)
            parts[name] = _primitive_part(part, name, i, where)
        else:
            raise BadRequest(f"FHIRPath Patch operation {i}: unknown part {name!r}", expression=where)
    kind, path = parts.get("type"), parts.get("path")
    if kind not in _OP_TYPES:
        raise BadRequest(
            f"FHIRPath Patch operation {i}: type must be one of {', '.join(_OP_TYPES)}, not {kind!r}",
            expression=where,
        )
    if not isinstance(path, str) or not path:
        raise BadRequest(f"FHIRPath Patch operation {i} ({kind}): a path is required", expression=where)
    op = _Op(
        i,
        kind,
        path,
        parts.get("name"),
        values or None,
        parts.get("index"),
        parts.get("source"),
        parts.get("destination"),
    )
    needs = {
        "add": ("name", "value"),
        "insert": ("value", "index"),
        "replace": ("value",),
        "move": ("source", "destination"),
        "delete": (),
    }[kind]
    for need in needs:
        field = "position" if need == "index" else need
        if getattr(op, field) is None:
            raise BadRequest(
                f"FHIRPath Patch operation {i} ({kind} at '{path}'): part '{need}' is required",
                expression=where,
            )
    if values and len(values) > 1:
        raise BadRequest(f"FHIRPath Patch operation {i} ({kind} at '{path}'): more than one value", expression=where)
    return op


def _primitive_part(part: dict[str, Any], name: str, i: int, where: str) -> Any:
    wanted = (
        ("valueInteger",) if name in ("index", "source", "destination") else ("valueCode", "valueString", "valueUri")
    )
    for key in wanted:
        if key in part:
            value = part[key]
            if key == "valueInteger" and (not isinstance(value, int) or isinstance(value, bool)):
                break
            return value
    raise BadRequest(f"FHIRPath Patch operation {i}: part '{name}' needs a {' or '.join(wanted)}", expression=where)


# --------------------------------------------------------------------------------------- operations


def _add(root: dict[str, Any], op: _Op) -> None:
    loc = _single(root, op, "adding")
    assert op.name is not None
    holder_type, container = _container_of(root, loc, op)
    if isinstance(container, _Primitive):
        if op.name not in ("id", "extension"):
            raise Unprocessable(f"Cannot add '{op.name}' to a primitive at {op.path}", expression=op.path)
        container = container.ensure()
        holder_type = "Element"
    info = element(holder_type, op.name)
    value = _value_for(op, info.type_name if info else None)
    key = _element_key(holder_type, op.name, value, op)
    info = element(holder_type, key)
    existing = container.get(key)
    if info.is_list if info else isinstance(existing, list):
        exts = container.get("_" + key)
        items = existing if isinstance(existing, list) else [None] * (len(exts) if isinstance(exts, list) else 0)
        items.append(value.json)
        container[key] = items
        _align_ext(container, key, len(items) - 1, value.ext, insert=True, count=len(items))
        if all(v is None for v in items):
            del container[key]
        return
    if existing is not None or ("_" + key) in container:
        raise Unprocessable(f"'{key}' already has a value at {op.path}; use replace", expression=op.path)
    _set_single(container, key, value)


def _insert(root: dict[str, Any], op: _Op) -> None:
    holder, key, items, holder_type = _list_at(root, op)
    assert op.position is not None
    if not 0 <= op.position <= len(items):
        raise Unprocessable(f"Index {op.position} is out of range 0..{len(items)} at {op.path}", expression=op.path)
    info = element(holder_type, key)
    value = _value_for(op, info.type_name if info else None)
    items.insert(op.position, value.json)
    holder[key] = items
    _align_ext(holder, key, op.position, value.ext, insert=True, count=len(items))


def _move(root: dict[str, Any], op: _Op) -> None:
    holder, key, items, _ = _list_at(root, op)
    assert op.source is not None and op.destination is not None
    for label, idx in (("source", op.source), ("destination", op.destination)):
        if not 0 <= idx < len(items):
            raise Unprocessable(
                f"{label.title()} index {idx} is out of range 0..{len(items) - 1} at {op.path}",
                expression=op.path,
            )
    items.insert(op.destination, items.pop(op.source))
    exts = holder.get("_" + key)
    if isinstance(exts, list) and len(exts) == len(items):
        exts.insert(op.destination, exts.pop(op.source))


def _delete(root: dict[str, Any], op: _Op) -> None:
    locs = _locate(root, op)
    if not locs:
        return  # deleting what is not there is not an error (FHIRPath Patch spec)
    if len(locs) > 1:
        raise Unprocessable(
            f"Path {op.path} matches {len(locs)} elements; delete needs exactly one", expression=op.path
        )
    loc = locs[0]
    if loc.holder is None:
        raise Unprocessable("The resource itself cannot be deleted by a patch", expression=op.path)
    _remove(loc.holder, loc.key, loc.index)
    _prune(loc.trail[:-1])


def _prune(trail: list[tuple[Any, str, int | None]]) -> None:
    """Remove the containers a deletion left empty, bottom up (an element must have content)."""
    for holder, key, index in reversed(trail):
        removed = False
        for k in (key, "_" + key):
            target = holder.get(k)
            node = (_at(target, index) if isinstance(target, list) else None) if index is not None else target
            if not isinstance(node, dict | list) or node:
                continue
            removed = True
            if k == key:
                _remove(holder, key, index)
            elif index is None:
                del holder[k]
            else:
                target[index] = None
                if all(x is None for x in target):
                    del holder[k]
        if not removed:
            break


def _replace(root: dict[str, Any], op: _Op) -> None:
    loc = _single(root, op, "replacing")
    if loc.holder is None:
        raise Unprocessable("The resource itself cannot be replaced by a patch", expression=op.path)
    info = element(loc.holder_type, loc.key)
    value = _value_for(op, info.type_name if info else None)
    holder, key = loc.holder, loc.key
    if info is not None and info.choice is not None and value.suffix:
        new_key = info.choice + value.suffix
        if element(loc.holder_type, new_key) is None:
            raise Unprocessable(
                f"{value.suffix} is not an allowed type for {info.choice}[x] at {op.path}", expression=op.path
            )
        if new_key != key:
            holder.pop(key, None)
            holder.pop("_" + key, None)
            key = new_key
    if loc.index is None:
        holder.pop("_" + key, None)
        _set_single(holder, key, value)
        return
    holder[key][loc.index] = value.json
    _align_ext(holder, key, loc.index, value.ext, insert=False, count=len(holder[key]))


_APPLY = {"add": _add, "insert": _insert, "delete": _delete, "replace": _replace, "move": _move}


# ------------------------------------------------------------------------------------ locating nodes


@lru_cache(maxsize=2048)
def _compiled(path: str) -> Any:
    from fhirpathpy import compile as fp_compile
    from fhirpathpy.models import models

    expression = _EXTENSION_FN.sub(r"extension.where(url = \1)", path)
    expression = _KEYWORD_STEP.sub(lambda m: m.group(1) or f".`{m.group(2)}`", expression)
    return fp_compile(expression, models["r4"], {"returnRawData": True})


def _evaluate(root: dict[str, Any], op: _Op, path: str) -> list[Any]:
    try:
        fn = _compiled(path)
    except Exception as exc:  # fhirpathpy raises plain exceptions for syntax errors
        raise BadRequest(f"Invalid FHIRPath '{path}': {exc}", expression=f"Parameters.parameter[{op.index}]") from None
    try:
        result = fn(root, {})
    except FhirError:
        raise
    except Exception as exc:
        raise BadRequest(
            f"Cannot evaluate FHIRPath '{path}': {exc}", expression=f"Parameters.parameter[{op.index}]"
        ) from None
    return result if isinstance(result, list) else [result]


def _locate(root: dict[str, Any], op: _Op, path: str | None = None) -> list[_Loc]:
    """The distinct elements ``path`` selects, as locations in ``root``."""
    found: dict[tuple[tuple[str, int | None], ...], _Loc] = {}
    for node in _evaluate(root, op, path or op.path):
        loc = _loc_of(root, node)
        if loc is None:
            raise Unprocessable(
                f"Cannot tell where the result of {path or op.path} is in the resource", expression=op.path
            )
        found.setdefault(loc.steps, loc)
    return list(found.values())


def _loc_of(root: dict[str, Any], node: Any) -> _Loc | None:
    data = getattr(node, "data", node)
    _data = getattr(node, "_data", None)
    if data is root:
        return _Loc([], None, "", None, str(root.get("resourceType")))
    prop = getattr(node, "propName", None)
    if isinstance(prop, str):
        head, _, rest = prop.partition(".")
        if head == root.get("resourceType") and rest:
            steps: list[tuple[str, int | None]] = [
                (m.group(1), int(m.group(2)) if m.group(2) else None) for m in _STEP.finditer(rest)
            ]
            loc = _walk(root, steps)
            if loc is not None and _matches(loc, data, _data):
                return loc
    if isinstance(data, dict | list):
        found = _find_identity(root, data)
        if found is not None:
            return _walk(root, found)
    return None


def _walk(root: dict[str, Any], steps: list[tuple[str, int | None]]) -> _Loc | None:
    """Follow ``steps`` from the root, resolving choice names and primitive ``_element`` siblings."""
    holder: Any = root
    type_name = str(root.get("resourceType"))
    trail: list[tuple[Any, str, int | None]] = []
    last = len(steps) - 1
    for n, (name, index) in enumerate(steps):
        if not isinstance(holder, dict):
            return None
        key = _present_key(holder, type_name, name)
        if key is None:
            return None
        trail.append((holder, key, index))
        if n == last:
            return _Loc(trail, holder, key, index, type_name)
        value = holder.get(key)
        if not isinstance(value, dict | list) or (
            isinstance(value, list) and index is not None and not isinstance(_at(value, index), dict)
        ):
            value = holder.get("_" + key)  # stepping into a primitive's id/extension
            type_name = "Element"
        else:
            info = element(type_name, key)
            type_name = info.type_name if info else "Element"
        node = _at(value, index) if isinstance(value, list) else value
        if isinstance(value, list) and index is None:
            return None
        if isinstance(node, dict) and type_name == "Resource":
            type_name = str(node.get("resourceType"))
        holder = node
    return None


def _present_key(holder: dict[str, Any], type_name: str, name: str) -> str | None:
    if name in holder or "_" + name in holder:
        return name
    info = type_info(type_name)
    for alt in info.choices.get(name, ()) if info else ():
        if alt in holder or "_" + alt in holder:
            return alt
    return None


def _at(items: list[Any], index: int | None) -> Any:
    return items[index] if index is not None and 0 <= index < len(items) else None


def _matches(loc: _Loc, data: Any, _data: Any) -> bool:
    assert loc.holder is not None
    value = loc.holder.get(loc.key)
    ext = loc.holder.get("_" + loc.key)
    if loc.index is not None:
        value = _at(value, loc.index) if isinstance(value, list) else None
        ext = _at(ext, loc.index) if isinstance(ext, list) else None
    if isinstance(data, dict | list):
        return data is value or data is ext
    return data is None or data == value or (value is None and ext is not None)


def _find_identity(root: Any, target: Any) -> list[tuple[str, int | None]] | None:
    stack: list[tuple[Any, list[tuple[str, int | None]]]] = [(root, [])]
    while stack:
        node, steps = stack.pop()
        for key, value in node.items():
            name = key[1:] if key.startswith("_") else key
            if isinstance(value, dict):
                if value is target:
                    return [*steps, (name, None)]
                stack.append((value, [*steps, (name, None)]))
            elif isinstance(value, list):
                for i, item in enumerate(value):
                    if item is target:
                        return [*steps, (name, i)]
                    if isinstance(item, dict):
                        stack.append((item, [*steps, (name, i)]))
    return None


def _single(root: dict[str, Any], op: _Op, doing: str) -> _Loc:
    locs = _locate(root, op)
    if not locs:
        raise Unprocessable(f"No content found at {op.path} when {doing}", expression=op.path)
    if len(locs) > 1:
        raise Unprocessable(f"Multiple matches found at {op.path} when {doing}", expression=op.path)
    return locs[0]


@dataclass(slots=True)
class _Primitive:
    """A primitive element as a target of ``add`` (which may add its ``id`` or ``extension``)."""

    holder: dict[str, Any]
    key: str
    index: int | None

    def ensure(self) -> dict[str, Any]:
        if self.index is None:
            found: dict[str, Any] = self.holder.setdefault("_" + self.key, {})
            return found
        count = len(self.holder[self.key])
        exts = self.holder.get("_" + self.key)
        if not isinstance(exts, list):
            exts = self.holder["_" + self.key] = [None] * count
        if exts[self.index] is None:
            exts[self.index] = {}
        ext: dict[str, Any] = exts[self.index]
        return ext


def _container_of(root: dict[str, Any], loc: _Loc, op: _Op) -> tuple[str, Any]:
    """(type name, object) of the element a location points at, for ``add``."""
    if loc.holder is None:
        return str(root.get("resourceType")), root
    value = loc.holder.get(loc.key)
    node = _at(value, loc.index) if isinstance(value, list) else value
    info = element(loc.holder_type, loc.key)
    if isinstance(node, dict):
        type_name = info.type_name if info else "Element"
        if type_name == "Resource":
            type_name = str(node.get("resourceType"))
        return type_name, node
    return "Element", _Primitive(loc.holder, loc.key, loc.index)


def _list_at(root: dict[str, Any], op: _Op) -> tuple[dict[str, Any], str, list[Any], str]:
    """The list ``op.path`` names, for insert and move: (holder, key, list, holder type)."""
    locs = _locate(root, op)
    if locs:
        first = locs[0]
        if first.holder is None or any(
            loc.holder is not first.holder or loc.key != first.key or loc.index is None for loc in locs
        ):
            raise Unprocessable(f"Path {op.path} does not select a list", expression=op.path)
        items = first.holder[first.key]
        if not isinstance(items, list):
            raise Unprocessable(f"Path {op.path} does not select a list", expression=op.path)
        return first.holder, first.key, items, first.holder_type
    # An empty list selects nothing: find its parent from the path's last step.
    parent_path, _, name = op.path.rpartition(".")
    if not parent_path or not re.fullmatch(r"[A-Za-z][A-Za-z0-9]*", name):
        raise Unprocessable(f"No content found at {op.path}", expression=op.path)
    parent = _locate(root, op, parent_path)
    if len(parent) != 1:
        raise Unprocessable(f"No content found at {op.path}", expression=op.path)
    type_name, container = _container_of(root, parent[0], op)
    info = element(type_name, name)
    if not isinstance(container, dict) or info is None or not info.is_list:
        raise Unprocessable(f"Path {op.path} does not select a list", expression=op.path)
    return container, name, [], type_name


# ---------------------------------------------------------------------------------------- values


def _value_for(op: _Op, type_name: str | None) -> _Value:
    assert op.value is not None
    return _part_value(op.value[0], type_name, op)


def _part_value(part: dict[str, Any], type_name: str | None, op: _Op) -> _Value:
    for key, value in part.items():
        if key.startswith("value") and key[5:6].isupper():
            ext = part.get("_" + key)
            return _Value(value, ext if isinstance(ext, dict) else None, key[5:])
    if "resource" in part:
        return _Value(part["resource"])
    ext_key = next((k for k in part if k.startswith("_value") and k[6:7].isupper()), None)
    if ext_key is not None:
        return _Value(None, part[ext_key], ext_key[6:])
    sub_parts = part.get("part")
    if isinstance(sub_parts, list) and sub_parts:
        return _Value(_from_parts(sub_parts, type_name, op))
    raise BadRequest(
        f"FHIRPath Patch operation {op.index} ({op.type} at '{op.path}'): part '{part.get('name')}' has no value",
        expression=f"Parameters.parameter[{op.index}]",
    )


def _from_parts(parts: list[Any], type_name: str | None, op: _Op) -> dict[str, Any]:
    """An anonymous (complex) value built from named parts, e.g. a Patient.contact."""
    out: dict[str, Any] = {}
    for part in parts:
        name = part.get("name") if isinstance(part, dict) else None
        if not isinstance(name, str):
            raise BadRequest(
                f"FHIRPath Patch operation {op.index}: a value part has no name",
                expression=f"Parameters.parameter[{op.index}]",
            )
        info = element(type_name, name) if type_name else None
        value = _part_value(part, info.type_name if info else None, op)
        key = name
        if info is None and type_name and value.suffix:
            key = _element_key(type_name, name, value, op)
            info = element(type_name, key)
        if (info is not None and info.is_list) or key in out:
            items = out.setdefault(key, []) if isinstance(out.get(key, []), list) else [out[key]]
            out[key] = items
            items.append(value.json)
            _align_ext(out, key, len(items) - 1, value.ext, insert=True, count=len(items))
        else:
            _set_single(out, key, value)
    return out


def _element_key(type_name: str, name: str, value: _Value, op: _Op) -> str:
    """The JSON key for ``name`` on ``type_name``: itself, or name + type of a choice (value: valueDate)."""
    if element(type_name, name) is not None:
        return name
    info = type_info(type_name)
    if info is not None and name in info.choices:
        if value.suffix and element(type_name, name + value.suffix) is not None:
            return name + value.suffix
        raise Unprocessable(
            f"Type {value.suffix or '(none)'} is not allowed for {type_name}.{name}[x]", expression=op.path
        )
    if info is not None:
        raise Unprocessable(f"Unknown element '{name}' on {type_name}", expression=op.path)
    return name


def _set_single(holder: dict[str, Any], key: str, value: _Value) -> None:
    if value.json is not None:
        holder[key] = value.json
    else:
        holder.pop(key, None)
    if value.ext is not None:
        holder["_" + key] = value.ext


def _align_ext(holder: dict[str, Any], key: str, index: int, ext: Any, *, insert: bool, count: int) -> None:
    """Keep ``_key`` (primitive ids/extensions) aligned with ``key`` after an insert or a replace."""
    exts = holder.get("_" + key)
    if not isinstance(exts, list):
        if ext is None:
            if not insert and "_" + key in holder:
                holder.pop("_" + key)
            return
        exts = [None] * (count - 1 if insert else count)
    if insert:
        exts.insert(index, ext)
    else:
        exts[index] = ext
    if any(x is not None for x in exts):
        holder["_" + key] = exts
    else:
        holder.pop("_" + key, None)


def _remove(holder: dict[str, Any], key: str, index: int | None) -> None:
    if index is None:
        holder.pop(key, None)
        holder.pop("_" + key, None)
        return
    for k in (key, "_" + key):
        items = holder.get(k)
        if isinstance(items, list) and index < len(items):
            del items[index]
            if not items or all(x is None for x in items):
                holder.pop(k)


def _copy(value: Any) -> Any:
    """A deep copy of JSON data (dicts and lists; leaves are immutable)."""
    if isinstance(value, dict):
        return {k: _copy(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_copy(v) for v in value]
    return value


__all__ = ["DEFAULT_PATCH_LIMITS", "PatchLimits", "apply_fhirpath_patch", "apply_json_patch"]
