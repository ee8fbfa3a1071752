"""Whether a SearchParameter resource can take effect in the hub (checked when it is written).

A definition the hub cannot use is refused with a 422 rather than stored and silently ignored: an
unknown ``base`` or ``target`` type, a ``type`` that is not a search parameter type, a code that
is not a plain name or redefines one the search layer answers itself (``_id``, ``_has``...), a
FHIRPath ``expression`` that does not parse (the FHIRPath grammar, through fhirpathpy's ANTLR
parser) or calls a function FHIRPath does not have, and a composite whose components are unknown;
and (:func:`check_not_redefining`) one that would change or retire a parameter of the hub's package.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Collection, Mapping
from typing import Any

from hub.fhir.errors import Issue, Unprocessable
from hub.fhir.searchparams import Registry

#: The search parameter types of R4.
PARAM_TYPES = frozenset(
    {
        "number",
        "date",
        "string",
        "token",
        "reference",
        "composite",
        "quantity",
        "uri",
        "special",
    }
)
#: Codes the search layer answers itself: no SearchParameter may redefine them.
RESERVED_CODES = frozenset(
    {
        "_id",
        "_lastUpdated",
        "_text",
        "_content",
        "_query",
        "_list",
        "_has",
        "_filter",
        "_type",
        "_sort",
        "_count",
        "_include",
        "_revinclude",
        "_summary",
        "_elements",
        "_total",
        "_contained",
        "_containedType",
        "_format",
        "_pretty",
        "_offset",
        "_snapshot",
        "_cursor",
    }
)
_CODE = re.compile(r"^[A-Za-z_][A-Za-z0-9_.-]{0,63}$")
_ABSTRACT_BASES = frozenset({"Resource", "DomainResource"})


def check_search_parameter(
    res: Mapping[str, Any], resource_types: Collection[str], known_url: Callable[[str], bool]
) -> None:
    """Raise :class:`Unprocessable` (422, one issue per problem) unless ``res`` can take effect;
    ``known_url`` tells whether a component's definition names a known search parameter."""
    issues: list[Issue] = []

    def bad(message: str, where: str) -> None:
        issues.append(Issue(message, "invalid", "error", (f"SearchParameter.{where}",)))

    code, ptype = res.get("code"), res.get("type")
    if not isinstance(code, str) or not _CODE.match(code):
        bad(f"code '{code}' is not a search parameter name (letters, digits, '_', '-', '.')", "code")
    elif code in RESERVED_CODES:
        bad(f"code '{code}' is answered by the search layer itself and cannot be redefined", "code")
    if ptype not in PARAM_TYPES:
        bad(f"type '{ptype}' is not a search parameter type ({', '.join(sorted(PARAM_TYPES))})", "type")
    base = res.get("base")
    if not isinstance(base, list) or not base:
        bad("base must list the resource type(s) the parameter applies to", "base")
        base = []
    for i, b in enumerate(base):
        if not isinstance(b, str) or (b not in resource_types and b not in _ABSTRACT_BASES):
            bad(f"base '{b}' is not a resource type", f"base[{i}]")
    for i, t in enumerate(res.get("target") or ()):
        if not isinstance(t, str) or (t not in resource_types and t not in _ABSTRACT_BASES):
            bad(f"target '{t}' is not a resource type", f"target[{i}]")
    expression = res.get("expression")
    if expression is None:
        if ptype not in ("special", "composite"):
            bad(f"a {ptype} parameter needs an expression (FHIRPath) to index", "expression")
    elif not isinstance(expression, str) or not expression.strip():
        bad("expression must be a FHIRPath expression", "expression")
    else:
        problem = fhirpath_problem(expression, [b for b in base if isinstance(b, str)])
        if problem:
            bad(f"expression '{expression}' is not valid FHIRPath: {problem}", "expression")
    if ptype == "composite":
        components = res.get("component")
        if not isinstance(components, list) or not components:
            bad("a composite parameter needs its components", "component")
            components = []
        for i, comp in enumerate(components):
            definition = comp.get("definition") if isinstance(comp, dict) else None
            if not isinstance(definition, str) or not known_url(definition):
                bad(
                    f"component definition '{definition}' is not a known search parameter", f"component[{i}].definition"
                )
            elif not isinstance(comp.get("expression"), str) or _syntax_errors(comp["expression"]):
                bad(
                    f"component expression '{comp.get('expression')}' is not valid FHIRPath",
                    f"component[{i}].expression",
                )
    if issues:
        raise Unprocessable(issues[0].diagnostics, issues=issues)


def check_not_redefining(res: Mapping[str, Any], seed: Registry) -> None:
    """Refuse (422) a SearchParameter that would change or retire one of the package's (``seed``):
    the hub's own lookups (a client by BSN, care relations, compartments) depend on their index
    rows. The package's definition itself, stored again as it is, passes."""
    url, code = res.get("url"), res.get("code")
    own = seed.by_url(url) if isinstance(url, str) and url else None
    if own is not None:
        stored = (res.get("code"), res.get("type"), tuple(res.get("base") or ()), res.get("expression") or None)
        if stored != (own.code, own.type, own.base, own.expression) or res.get("status") != "active":
            raise Unprocessable(
                f"'{url}' is a search parameter of the hub's package: it cannot be changed or retired",
                code="business-rule",
                expression="SearchParameter.url",
            )
        return
    for base in res.get("base") or ():
        if isinstance(base, str) and isinstance(code, str) and seed.get(base, code) is not None:
            raise Unprocessable(
                f"{base} already has the search parameter '{code}' (from the hub's package); choose another code",
                code="business-rule",
                expression="SearchParameter.code",
            )


@functools.lru_cache(maxsize=256)
def _syntax_errors(expression: str) -> tuple[str, ...]:
    from antlr4 import CommonTokenStream, InputStream, Token
    from antlr4.error.ErrorListener import ErrorListener
    from fhirpathpy.parser.generated.FHIRPathLexer import FHIRPathLexer
    from fhirpathpy.parser.generated.FHIRPathParser import FHIRPathParser

    class Collect(ErrorListener):
        def __init__(self) -> None:
            self.errors: list[str] = []

        def syntaxError(self, _r: Any, _symbol: Any, _line: int, column: int, msg: str, _e: Any) -> None:  # noqa: N802
            self.errors.append(f"at {column}: {msg}")

    listener = Collect()
    lexer = FHIRPathLexer(InputStream(expression))
    lexer.removeErrorListeners()
    lexer.addErrorListener(listener)
    parser = FHIRPathParser(CommonTokenStream(lexer))
    parser.removeErrorListeners()
    parser.addErrorListener(listener)
    parser.expression()
    trailing = parser.getCurrentToken()
    if not listener.errors and trailing is not None and trailing.type != Token.EOF:
        listener.errors.append(f"at {trailing.column}: unexpected '{trailing.text}'")
    return tuple(listener.errors)


def fhirpath_problem(expression: str, bases: list[str]) -> str | None:
    """What is wrong with ``expression`` (None: nothing): its syntax, then whether it can be
    evaluated (an unknown function fails already on an empty resource of a base type)."""
    errors = _syntax_errors(expression)
    if errors:
        return errors[0]
    import fhirpathpy

    from hub.fhir.fhirpath_fast import _model

    for base in bases[:1] or ["Resource"]:
        empty = {"resourceType": base}
        try:
            fhirpathpy.evaluate(empty, expression, {"resource": empty, "rootResource": empty}, _model())
        except Exception as exc:  # noqa: BLE001 - whatever fhirpathpy finds wrong is the client's
            return str(exc) or type(exc).__name__
    return None
