"""A compiler for the FHIRPath subset used by search-parameter expressions, for fast extraction.

Each expression is parsed once into nested Python closures over FHIR JSON dicts. Every value
travels with its FHIR type name, so extraction knows whether ``Observation.effective`` produced
a ``dateTime``, a ``Period`` or a ``Timing``, and whether a ``{system, value}`` object is an
Identifier or a ContactPoint. Types come from the exact R4 model that fhirpathpy ships
(``path2Type`` / ``choiceTypePaths``), so no R4B-vs-R4 drift. Type names are FHIR type names
(``dateTime``, ``Quantity``, ``Patient``); backbone elements are named by their path
(``Observation.component``); None means unknown.

Supported: member paths, choice elements (``value`` finds ``valueQuantity``...), ``|``, ``[n]``,
``as``/``is`` (operator and function), ``ofType``, ``where(...)``, ``resolve()`` (from the
reference text, ``Reference.type`` or the contained resource), ``extension(url)``, ``exists``,
``empty``, ``first``, ``last``, ``not``, ``count``, ``=``/``!=``, ``and``/``or``, literals,
``%resource``. Anything else is handed to fhirpathpy (compiled once, cached; values come back
with type None). :attr:`CompiledPath.fast` tells which path was taken.

Invariants (``compile_invariant``) compile in *strict* mode: a few more operators and functions
(``implies``, ``xor``, comparisons, ``in``/``contains``, ``+``, ``%ucum``, ``all``, ``iif``,
``select``, ``intersect``, ``subsetOf``, string functions), and wherever fhirpathpy's answer could
differ from the spec's (a non-Boolean operand of ``and``, dates, Quantities, deep equality), the fast
path raises :class:`Unsupported` at run time and fhirpathpy decides, so both always agree.
"""

from __future__ import annotations

import functools
import logging
import re
from collections.abc import Callable
from decimal import Decimal
from typing import Any

Item = tuple[Any, str | None]
Node = Callable[[list[Item], dict[str, Any]], list[Item]]

log = logging.getLogger(__name__)

_TRUE: list[Item] = [(True, "boolean")]
_FALSE: list[Item] = [(False, "boolean")]

# FHIRPath System types and their FHIR equivalents, for `as DateTime` and friends.
_SYSTEM_TYPES = {
    "String": "string",
    "Boolean": "boolean",
    "Integer": "integer",
    "Decimal": "decimal",
    "Date": "date",
    "DateTime": "dateTime",
    "Time": "time",
}


class Unsupported(Exception):
    """The expression uses FHIRPath this compiler does not implement (-> fhirpathpy)."""


# --------------------------------------------------------------------------- type model


@functools.cache
def _model() -> dict[str, Any]:
    from fhirpathpy.models import models

    return models["r4"]


@functools.cache
def _backbones() -> frozenset[str]:
    """Paths of backbone elements: prefixes of typed paths that have no type of their own."""
    paths = _model()["path2Type"]
    out: set[str] = set()
    for p in paths:
        parts = p.split(".")
        for i in range(2, len(parts)):
            out.add(".".join(parts[:i]))
    return frozenset(out)


@functools.cache
def _primitives() -> frozenset[str]:
    return frozenset(t for t in _model()["type2Parent"] if t[:1].islower()) | {"xhtml"}


def _type_from_suffix(suffix: str) -> str:
    low = suffix[:1].lower() + suffix[1:]
    return low if low in _primitives() else suffix


def _parent(type_name: str) -> str | None:
    parent: str | None = _model()["type2Parent"].get(type_name)
    if parent is None and "." in type_name:
        return "BackboneElement"
    return parent


@functools.cache
def is_subtype(actual: str | None, wanted: str) -> bool:
    """True if a value of FHIR type ``actual`` is a ``wanted`` (walking the R4 type hierarchy)."""
    wanted = _SYSTEM_TYPES.get(wanted, wanted)
    t = actual
    while t is not None:
        if t == wanted:
            return True
        t = _parent(t)
    return False


@functools.cache
def child_spec(type_name: str, name: str) -> tuple[tuple[str, str | None], ...]:
    """The JSON keys (with their FHIR types) that element ``name`` of ``type_name`` may appear as.

    A choice element yields one key per allowed type (``value`` -> ``valueQuantity``, ...). An
    element the model does not know yields ``((name, None),)``.
    """
    m = _model()
    t: str | None = type_name
    while t is not None:
        path = f"{t}.{name}"
        typ = m["path2Type"].get(path)
        if typ is not None:
            return ((name, "string" if typ.startswith("System.") else typ),)
        choices = m["choiceTypePaths"].get(path)
        if choices:
            return tuple((name + c, _type_from_suffix(c)) for c in choices)
        elsewhere = m["pathsDefinedElsewhere"].get(path)
        if elsewhere is not None:
            return ((name, elsewhere),)
        if path in _backbones():
            return ((name, path),)
        t = _parent(t)
    return ((name, None),)


def _add(out: list[Item], value: Any, typ: str | None) -> None:
    if value is None:
        return
    if type(value) is list:
        if typ == "Resource":
            out.extend((v, v.get("resourceType")) for v in value if type(v) is dict)
        else:
            out.extend((v, typ) for v in value if v is not None)
    elif typ == "Resource":
        if type(value) is dict:
            out.append((value, value.get("resourceType")))
    else:
        out.append((value, typ))


def _member(name: str) -> Node:
    plen = len(name)

    def member(items: list[Item], root: dict[str, Any]) -> list[Item]:
        out: list[Item] = []
        for value, typ in items:
            if type(value) is not dict:
                continue
            if typ is not None:
                for key, ktyp in child_spec(typ, name):
                    v = value.get(key)
                    if v is not None:
                        _add(out, v, ktyp)
            elif name in value:
                _add(out, value[name], None)
            else:  # unknown type: find a choice key by its type suffix
                for key, v in value.items():
                    if len(key) > plen and key.startswith(name) and key[plen].isupper():
                        _add(out, v, _type_from_suffix(key[plen:]))
        return out

    return member


# --------------------------------------------------------------------------- references


_REF_TYPE = re.compile(r"(?:^|/)([A-Z][A-Za-z]+)/[A-Za-z0-9\-.]{1,64}(?:/_history/[^/]+)?$")


def reference_type(value: Any, root: dict[str, Any] | None = None) -> str | None:
    """The resource type a Reference (or canonical/uri string) points at, if it can be told."""
    if isinstance(value, dict):
        ref = value.get("reference")
        if isinstance(ref, str):
            if ref.startswith("#"):
                for c in (root or {}).get("contained") or ():
                    if isinstance(c, dict) and c.get("id") == ref[1:]:
                        return c.get("resourceType")
                return None
            found = reference_type(ref)
            if found is not None:
                return found
        t = value.get("type")
        if isinstance(t, str):
            t = t.rsplit("/", 1)[-1]
            return t if t[:1].isupper() else None
        return None
    if isinstance(value, str):
        m = _REF_TYPE.search(value.split("|", 1)[0])
        return m.group(1) if m else None
    return None


def _resolve(items: list[Item], root: dict[str, Any]) -> list[Item]:
    out: list[Item] = []
    for value, _ in items:
        if isinstance(value, dict) and "resourceType" in value:
            out.append((value, value["resourceType"]))
            continue
        if isinstance(value, dict) and str(value.get("reference", "")).startswith("#"):
            for c in root.get("contained") or ():
                if isinstance(c, dict) and c.get("id") == value["reference"][1:]:
                    out.append((c, c.get("resourceType")))
            continue
        rt = reference_type(value, root)
        if rt is not None:
            out.append(({"resourceType": rt}, rt))
    return out


# --------------------------------------------------------------------------- parser

_TOKEN = re.compile(
    r"\s*(?:(?P<str>'(?:[^'\\]|\\.)*')|(?P<num>\d+(?:\.\d+)?)|(?P<op>!=|<=|>=|[.()\[\]|=,<>~&+\-*/])"
    r"|(?P<var>%[A-Za-z_][A-Za-z0-9_]*|\$[a-z]+)|(?P<id>[A-Za-z_][A-Za-z0-9_]*|`[^`]*`))"
)


def _tokenize(src: str) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    pos = 0
    while pos < len(src):
        if src[pos:].strip() == "":
            break
        m = _TOKEN.match(src, pos)
        if m is None or m.end() == pos:
            raise Unsupported(f"cannot tokenize at {pos}: {src[pos : pos + 20]!r}")
        kind = m.lastgroup or ""
        text = m.group(kind)
        if kind == "id" and text.startswith("`"):
            text = text[1:-1]
        out.append((kind, text))
        pos = m.end()
    return out


def _unescape(s: str) -> str:
    return re.sub(r"\\(.)", lambda m: {"n": "\n", "t": "\t", "r": "\r"}.get(m.group(1), m.group(1)), s[1:-1])


def _values_equal(a: Any, b: Any) -> bool:
    if isinstance(a, bool) or isinstance(b, bool):
        return isinstance(a, bool) and isinstance(b, bool) and a == b
    if isinstance(a, (int, float, Decimal)) and isinstance(b, (int, float, Decimal)):
        return Decimal(str(a)) == Decimal(str(b))
    return type(a) is type(b) and a == b


def _truth(items: list[Item]) -> bool | None:
    """FHIRPath singleton evaluation of a collection as a Boolean (None = empty)."""
    if not items:
        return None
    if len(items) == 1:
        v = items[0][0]
        return v if isinstance(v, bool) else True
    raise Unsupported("boolean of a multi-item collection")


class _Parser:
    def __init__(self, src: str, *, strict: bool = False) -> None:
        self.toks = _tokenize(src)
        self.i = 0
        self.strict = strict  # invariant mode: the extra grammar, fhirpathpy's verdicts (see module doc)

    def peek(self, offset: int = 0) -> tuple[str, str]:
        j = self.i + offset
        return self.toks[j] if j < len(self.toks) else ("eof", "")

    def take(self, text: str | None = None) -> tuple[str, str]:
        tok = self.peek()
        if tok[0] == "eof" or (text is not None and tok[1] != text):
            raise Unsupported(f"expected {text!r}, got {tok[1]!r}")
        self.i += 1
        return tok

    def at_word(self, *words: str) -> bool:
        kind, text = self.peek()
        return kind == "id" and text in words

    def parse(self) -> Node:
        node = self.expr()
        if self.peek()[0] != "eof":
            raise Unsupported(f"trailing {self.peek()[1]!r}")
        return node

    # precedence, low to high: implies > or/xor > and > in/contains > equality > comparison > union
    # > is/as > additive > postfix (strict mode adds implies, xor, in/contains, comparison, additive)
    def expr(self) -> Node:
        left = self.or_expr()
        while self.strict and self.at_word("implies"):
            self.take()
            left = _implies(left, self.or_expr())
        return left

    def or_expr(self) -> Node:
        left = self.and_expr()
        while self.at_word("or") or (self.strict and self.at_word("xor")):
            word = self.take()[1]
            right = self.and_expr()
            left = _xor(left, right) if word == "xor" else _or(left, right, strict=self.strict)
        return left

    def and_expr(self) -> Node:
        left = self.membership()
        while self.at_word("and"):
            self.take()
            left = _and(left, self.membership(), strict=self.strict)
        return left

    def membership(self) -> Node:
        left = self.equality()
        while self.strict and self.at_word("in", "contains"):
            word = self.take()[1]
            right = self.equality()
            left = _membership(left, right) if word == "in" else _membership(right, left)
        return left

    def equality(self) -> Node:
        left = self.comparison()
        while self.peek() in (("op", "="), ("op", "!=")):
            op = self.take()[1]
            left = _equals(left, self.comparison(), negate=op == "!=", strict=self.strict)
        if self.peek() == ("op", "~"):
            raise Unsupported("equivalence")
        return left

    def comparison(self) -> Node:
        left = self.union()
        while self.peek()[0] == "op" and self.peek()[1] in ("<", ">", "<=", ">="):
            if not self.strict:
                raise Unsupported("comparison operators")
            op = self.take()[1]
            left = _compare(left, self.union(), op)
        return left

    def union(self) -> Node:
        parts = [self.type_expr()]
        while self.peek() == ("op", "|"):
            self.take()
            parts.append(self.type_expr())
        return parts[0] if len(parts) == 1 else _union(parts)

    def type_expr(self) -> Node:
        node = self.additive() if self.strict else self.postfix()
        while self.at_word("as", "is"):
            word = self.take()[1]
            tname = self.type_spec()
            node = _then(node, _as_type(tname) if word == "as" else _is_type(tname))
        return node

    def additive(self) -> Node:
        left = self.postfix()
        while self.peek() in (("op", "+"), ("op", "-")):
            op = self.take()[1]
            left = _arith(left, self.postfix(), op)
        return left

    def type_spec(self) -> str:
        name = self.take()[1]
        while self.peek() == ("op", ".") and self.peek(1)[0] == "id":
            self.take()
            name = self.take()[1]  # FHIR.Quantity / System.String -> last part
        return name

    def postfix(self) -> Node:
        node = self.primary()
        while True:
            tok = self.peek()
            if tok == ("op", "."):
                self.take()
                node = _then(node, self.invocation(first=False))
            elif tok == ("op", "["):
                self.take()
                kind, text = self.take()
                if kind != "num" or "." in text:
                    raise Unsupported("non-literal indexer")
                self.take("]")
                node = _then(node, _index(int(text)))
            else:
                return node

    def primary(self) -> Node:
        kind, text = self.peek()
        if (kind, text) == ("op", "("):
            self.take()
            node = self.expr()
            self.take(")")
            return node
        if kind == "str":
            self.take()
            return _const([(_unescape(text), "string")])
        if kind == "num":
            self.take()
            return _const([(Decimal(text) if "." in text else int(text), "decimal" if "." in text else "integer")])
        if kind == "var":
            self.take()
            if self.strict:  # %rootResource and %context differ from %resource inside a Bundle
                if text == "%resource":
                    return _root
                if text == "%ucum":
                    return _const([("http://unitsofmeasure.org", "string")])
            elif text in ("%resource", "%rootResource", "%context"):
                return _root
            if text == "$this":
                return _identity
            raise Unsupported(f"variable {text}")
        if kind == "id":
            if text in ("true", "false") and self.peek(1) != ("op", "("):
                self.take()
                if self.strict:  # the shared constants: strict truth knows them from data booleans
                    return _TRUE_NODE if text == "true" else _FALSE_NODE
                return _const(_TRUE if text == "true" else _FALSE)
            return self.invocation(first=True)
        raise Unsupported(f"unexpected {text!r}")

    def invocation(self, *, first: bool) -> Node:
        kind, name = self.take()
        if kind != "id":
            raise Unsupported(f"unexpected {name!r}")
        if self.peek() != ("op", "("):
            if first and name[:1].isupper():
                return _type_filter(name)
            return _member(name)
        self.take("(")
        args: list[Any] = []
        if name in ("as", "ofType", "is"):
            args.append(self.type_spec())
        else:
            while self.peek() != ("op", ")"):
                args.append(self.expr())
                if self.peek() == ("op", ","):
                    self.take()
        self.take(")")
        if self.strict:
            return _strict_function(name, args)
        return _function(name, args)


# --------------------------------------------------------------------------- node builders


def _then(first: Node, second: Node) -> Node:
    def then(items: list[Item], root: dict[str, Any]) -> list[Item]:
        return second(first(items, root), root)

    return then


def _union(parts: list[Node]) -> Node:
    def union(items: list[Item], root: dict[str, Any]) -> list[Item]:
        out: list[Item] = []
        for p in parts:
            for it in p(items, root):
                if not any(it[0] == o[0] and type(it[0]) is type(o[0]) for o in out):
                    out.append(it)
        return out

    return union


def _const(value: list[Item]) -> Node:
    def const(items: list[Item], root: dict[str, Any]) -> list[Item]:
        return list(value)

    return const


def _root(items: list[Item], root: dict[str, Any]) -> list[Item]:
    return [(root, root.get("resourceType"))]


def _identity(items: list[Item], root: dict[str, Any]) -> list[Item]:
    return items


def _index(n: int) -> Node:
    def index(items: list[Item], root: dict[str, Any]) -> list[Item]:
        return items[n : n + 1]

    return index


def _type_filter(name: str) -> Node:
    def type_filter(items: list[Item], root: dict[str, Any]) -> list[Item]:
        return [it for it in items if is_subtype(it[1], name)]

    return type_filter


def _as_type(name: str) -> Node:
    return _type_filter(name)


def _is_type(name: str) -> Node:
    def is_type(items: list[Item], root: dict[str, Any]) -> list[Item]:
        if not items:
            return []
        if len(items) > 1:
            raise Unsupported("is on a multi-item collection")
        return _TRUE if is_subtype(items[0][1], name) else _FALSE

    return is_type


def _equals(left: Node, right: Node, *, negate: bool, strict: bool = False) -> Node:
    if strict:
        return _strict_equals(left, right, negate=negate)

    def equals(items: list[Item], root: dict[str, Any]) -> list[Item]:
        a, b = left(items, root), right(items, root)
        if not a or not b:
            return []
        same = len(a) == len(b) and all(_values_equal(x[0], y[0]) for x, y in zip(a, b, strict=True))
        return _TRUE if same != negate else _FALSE

    return equals


def _and(left: Node, right: Node, *, strict: bool = False) -> Node:
    truth = _strict_truth if strict else _truth

    def and_(items: list[Item], root: dict[str, Any]) -> list[Item]:
        a, b = truth(left(items, root)), truth(right(items, root))
        if a is False or b is False:
            return _FALSE
        if a is None or b is None:
            return []
        return _TRUE

    return and_


def _or(left: Node, right: Node, *, strict: bool = False) -> Node:
    truth = _strict_truth if strict else _truth

    def or_(items: list[Item], root: dict[str, Any]) -> list[Item]:
        a, b = truth(left(items, root)), truth(right(items, root))
        if a is True or b is True:
            return _TRUE
        if a is None or b is None:
            return []
        return _FALSE

    return or_


def _function(name: str, args: list[Any]) -> Node:
    if name in ("as", "ofType"):
        return _type_filter(args[0])
    if name == "is":
        return _is_type(args[0])
    if name == "where" and len(args) == 1:
        crit: Node = args[0]

        def where(items: list[Item], root: dict[str, Any]) -> list[Item]:
            return [it for it in items if _truth(crit([it], root))]

        return where
    if name == "exists" and len(args) <= 1:
        sub: Node | None = args[0] if args else None

        def exists(items: list[Item], root: dict[str, Any]) -> list[Item]:
            if sub is None:
                return _TRUE if items else _FALSE
            return _TRUE if any(_truth(sub([it], root)) for it in items) else _FALSE

        return exists
    if name == "empty" and not args:
        return lambda items, root: _FALSE if items else _TRUE
    if name == "not" and not args:

        def not_(items: list[Item], root: dict[str, Any]) -> list[Item]:
            t = _truth(items)
            return [] if t is None else (_FALSE if t else _TRUE)

        return not_
    if name == "first" and not args:
        return _index(0)
    if name == "last" and not args:
        return lambda items, root: items[-1:]
    if name == "count" and not args:
        return lambda items, root: [(len(items), "integer")]
    if name == "resolve" and not args:
        return _resolve
    if name == "extension" and len(args) == 1:
        url_node: Node = args[0]
        ext = _member("extension")

        def extension(items: list[Item], root: dict[str, Any]) -> list[Item]:
            urls = url_node(items, root)
            if len(urls) != 1:
                return []
            url = urls[0][0]
            return [e for e in ext(items, root) if isinstance(e[0], dict) and e[0].get("url") == url]

        return extension
    raise Unsupported(f"function {name}()")


# --------------------------------------------------------------------------- strict (invariant) mode
#
# fhirpathpy is the reference the validator has always used: strict nodes return its verdict where
# it is plain (Booleans from operators, strings, integers and decimals) and raise Unsupported
# (-> fhirpathpy) where its answer could differ from a naive one: dates and times (precision rules),
# Quantities (unit conversion), floats, data Booleans (its truthiness of wrapped values), deep equality.

_TRUE_NODE: Node = lambda items, root: _TRUE  # noqa: E731 - the one shared constant, known by identity
_FALSE_NODE: Node = lambda items, root: _FALSE  # noqa: E731
_STRINGY = frozenset({"string", "code", "uri", "url", "canonical", "id", "oid", "uuid", "markdown", "base64Binary"})
_NUMERIC = frozenset({"integer", "decimal", "positiveInt", "unsignedInt"})


def _strict_truth(items: list[Item]) -> bool | None:
    """A Boolean only as an operator or literal made it; anything else is fhirpathpy's to judge."""
    if items is _TRUE:
        return True
    if items is _FALSE:
        return False
    if not items:
        return None
    raise Unsupported("Boolean of a value")


def _scalar(item: Item) -> str | int | Decimal:
    """A string or number whose comparison fhirpathpy does as Python does; else Unsupported."""
    v, t = item
    if type(v) is str and t in _STRINGY:
        return v
    if type(v) is int and t in _NUMERIC:
        return v
    if type(v) is Decimal and t in _NUMERIC:
        return v
    raise Unsupported(f"comparison of a {t or type(v).__name__}")


def _strict_equals(left: Node, right: Node, *, negate: bool) -> Node:
    def equals(items: list[Item], root: dict[str, Any]) -> list[Item]:
        a, b = left(items, root), right(items, root)
        if not a or not b:
            return []
        if (a is _TRUE or a is _FALSE) and (b is _TRUE or b is _FALSE):  # two operators' Booleans
            return _TRUE if (a is b) != negate else _FALSE
        if len(a) != 1 or len(b) != 1:
            raise Unsupported("equality of collections")
        x, y = _scalar(a[0]), _scalar(b[0])
        if isinstance(x, str) != isinstance(y, str):
            raise Unsupported("equality of a string and a number")
        return _TRUE if (x == y) != negate else _FALSE

    return equals


def _compare(left: Node, right: Node, op: str) -> Node:
    def compare(items: list[Item], root: dict[str, Any]) -> list[Item]:
        a, b = left(items, root), right(items, root)
        if not a or not b:
            return []
        if len(a) != 1 or len(b) != 1:
            raise Unsupported("comparison of collections")
        x, y = _scalar(a[0]), _scalar(b[0])
        if isinstance(x, str) != isinstance(y, str):
            raise Unsupported("comparison of a string and a number")
        if op == "<":
            r = x < y  # type: ignore[operator]
        elif op == ">":
            r = x > y  # type: ignore[operator]
        elif op == "<=":
            r = x <= y  # type: ignore[operator]
        else:
            r = x >= y  # type: ignore[operator]
        return _TRUE if r else _FALSE

    return compare


def _arith(left: Node, right: Node, op: str) -> Node:
    def arith(items: list[Item], root: dict[str, Any]) -> list[Item]:
        a, b = left(items, root), right(items, root)
        if not a or not b:
            return []
        if len(a) != 1 or len(b) != 1:
            raise Unsupported("arithmetic on collections")
        x, y = _scalar(a[0]), _scalar(b[0])
        if type(x) is int and type(y) is int:
            return [(x + y if op == "+" else x - y, "integer")]
        if type(x) is str and type(y) is str and op == "+":
            return [(x + y, "string")]
        raise Unsupported("arithmetic beyond integers and strings")

    return arith


def _implies(left: Node, right: Node) -> Node:
    def implies(items: list[Item], root: dict[str, Any]) -> list[Item]:
        a = _strict_truth(left(items, root))
        if a is False:
            return _TRUE
        b = _strict_truth(right(items, root))
        if b is True:
            return _TRUE
        if a is None or b is None:
            return []
        return _FALSE

    return implies


def _xor(left: Node, right: Node) -> Node:
    def xor(items: list[Item], root: dict[str, Any]) -> list[Item]:
        a, b = _strict_truth(left(items, root)), _strict_truth(right(items, root))
        if a is None or b is None:
            return []
        return _TRUE if a != b else _FALSE

    return xor


def _plain_value(item: Item) -> Any:
    """A value fhirpathpy's collection functions compare with Python ``==`` (floats: Unsupported)."""
    v = item[0]
    if type(v) is float or type(v) is bool:
        raise Unsupported("collection equality of a float or Boolean")
    return v


def _membership(element: Node, collection: Node) -> Node:
    def member(items: list[Item], root: dict[str, Any]) -> list[Item]:
        a = element(items, root)
        if not a:
            return []
        b = collection(items, root)
        if not b:
            return _FALSE
        if len(a) != 1:
            raise Unsupported("in on a collection")
        x = _plain_value(a[0])
        return _TRUE if any(_plain_value(y) == x for y in b) else _FALSE

    return member


def _string_of(items: list[Item]) -> str | None:
    """The one string of a collection (None: empty); fhirpathpy raises on anything else."""
    if not items:
        return None
    if len(items) == 1 and type(items[0][0]) is str and items[0][1] in _STRINGY:
        return str(items[0][0])
    raise Unsupported("string function on a non-string")


def _string_function(name: str, args: list[Any]) -> Node:
    arg: Node | None = args[0] if args else None

    def string_fn(items: list[Item], root: dict[str, Any]) -> list[Item]:
        s = _string_of(items)
        if s is None:
            return []
        if name == "length":
            return [(len(s), "integer")]
        assert arg is not None
        a = arg(items, root)
        if len(a) != 1 or type(a[0][0]) is not str:
            raise Unsupported(f"{name}() with a non-string argument")
        x: str = a[0][0]
        if name == "startsWith":
            r = s.startswith(x)
        elif name == "endsWith":
            r = s.endswith(x)
        elif name == "contains":
            r = x in s
        else:
            r = re.search(_regex(x), s) is not None
        return _TRUE if r else _FALSE

    return string_fn


@functools.lru_cache(maxsize=256)
def _regex(pattern: str) -> re.Pattern[str]:
    return re.compile(pattern, re.DOTALL)


def _strict_function(name: str, args: list[Any]) -> Node:
    """Functions of strict mode: the shared ones with strict truth, plus the invariants' own."""
    if name in ("where", "exists", "all") and len(args) == 1:
        crit: Node = args[0]
        if name == "where":
            return lambda items, root: [it for it in items if _strict_truth(crit([it], root))]
        if name == "exists":
            return lambda items, root: _TRUE if any(_strict_truth(crit([it], root)) for it in items) else _FALSE
        return lambda items, root: _TRUE if all(_strict_truth(crit([it], root)) for it in items) else _FALSE
    if name == "not" and not args:

        def not_(items: list[Item], root: dict[str, Any]) -> list[Item]:
            t = _strict_truth(items)
            return [] if t is None else (_FALSE if t else _TRUE)

        return not_
    if name == "select" and len(args) == 1:
        proj: Node = args[0]

        def select(items: list[Item], root: dict[str, Any]) -> list[Item]:
            return [out for it in items for out in proj([it], root)]

        return select
    if name == "iif" and len(args) in (2, 3):
        cond: Node = args[0]
        yes: Node = args[1]
        no: Node | None = args[2] if len(args) == 3 else None

        def iif(items: list[Item], root: dict[str, Any]) -> list[Item]:
            if _strict_truth(cond(items, root)):
                return yes(items, root)
            return no(items, root) if no is not None else []

        return iif
    if name in ("intersect", "subsetOf") and len(args) == 1:
        other: Node = args[0]

        def collection_fn(items: list[Item], root: dict[str, Any]) -> list[Item]:
            mine = [_plain_value(it) for it in items]
            theirs = [_plain_value(it) for it in other(items, root)]
            if name == "subsetOf":
                return _TRUE if all(v in theirs for v in mine) else _FALSE
            out: list[Item] = []
            kept: list[Any] = []
            for it, v in zip(items, mine, strict=True):
                if v in theirs and v not in kept:
                    kept.append(v)
                    out.append(it)
            return out

        return collection_fn
    if name == "tail" and not args:
        return lambda items, root: items[1:]
    if name in ("startsWith", "endsWith", "contains", "matches") and len(args) == 1:
        return _string_function(name, args)
    if name == "length" and not args:
        return _string_function(name, args)
    if name == "resolve":
        raise Unsupported("resolve() in an invariant (fhirpathpy's answer is the reference)")
    return _function(name, args)


# --------------------------------------------------------------------------- public API


class CompiledPath:
    """One compiled expression: call it on a resource, or use :meth:`at` for a relative one."""

    __slots__ = ("_fallback", "_node", "expression", "fast")

    def __init__(self, expression: str) -> None:
        self.expression = expression
        self._node: Node | None = None
        self._fallback: Callable[..., list[Any]] | None = None
        try:
            self._node = _Parser(expression).parse()
            self.fast = True
        except Unsupported as exc:
            log.debug("FHIRPath %r goes to fhirpathpy: %s", expression, exc)
            self.fast = False
            self._fallback = _fhirpathpy_compile(expression)

    def __call__(self, resource: dict[str, Any]) -> list[Item]:
        """Evaluate against a resource (the root); returns (value, fhir_type) pairs."""
        return self.at(resource, resource.get("resourceType"), resource)

    def at(self, value: Any, fhir_type: str | None, root: dict[str, Any]) -> list[Item]:
        """Evaluate relative to ``value`` (of ``fhir_type``) inside resource ``root``."""
        if self._node is not None:
            try:
                return self._node([(value, fhir_type)], root)
            except Unsupported:
                pass  # a runtime-only limit (e.g. `is` on many items): let fhirpathpy decide
        return self._slow(value, root)

    def _slow(self, value: Any, root: dict[str, Any]) -> list[Item]:
        fallback = self._fallback or _fhirpathpy_compile(self.expression)
        out = fallback(value, {"resource": root, "rootResource": root})
        return [(_plain(v), None) for v in out]


@functools.lru_cache(maxsize=1024)
def _fhirpathpy_compile(expression: str) -> Callable[..., list[Any]]:
    """fhirpathpy's compiled form; an expression it cannot parse either evaluates to nothing."""
    import fhirpathpy

    try:
        return fhirpathpy.compile(expression, _model())
    except Exception:  # a broken custom SearchParameter must not break every write
        log.warning("FHIRPath expression %r cannot be compiled; it yields nothing", expression, exc_info=True)
        return lambda *_args: []


def _plain(value: Any) -> Any:
    """fhirpathpy may hand back its own node/date classes: turn them into JSON-like values."""
    if value is None or isinstance(value, (str, bool, int, float, Decimal, dict, list)):
        return value
    data = getattr(value, "data", None)
    if data is not None:
        return data
    return str(value)


@functools.lru_cache(maxsize=8192)
def compile_path(expression: str) -> CompiledPath:
    """Compile (once) a FHIRPath expression; falls back to fhirpathpy for what is unsupported."""
    return CompiledPath(expression)


def is_fast(expression: str) -> bool:
    """Whether ``expression`` is handled by this compiler (False: it goes to fhirpathpy)."""
    try:
        _Parser(expression).parse()
    except Unsupported:
        return False
    return True


@functools.lru_cache(maxsize=4096)
def compile_invariant(expression: str) -> Node | None:
    """A constraint expression compiled in strict mode (see the module doc), or None: fhirpathpy's."""
    try:
        return _Parser(expression, strict=True).parse()
    except Unsupported as exc:
        log.debug("invariant %r goes to fhirpathpy: %s", expression, exc)
        return None


__all__ = [
    "CompiledPath",
    "Item",
    "Unsupported",
    "child_spec",
    "compile_invariant",
    "compile_path",
    "is_fast",
    "is_subtype",
    "reference_type",
]
