"""A small FHIR STU3 TestScript runner for two-party (client/server) qualification scripts.

Nictiz's qualification scripts are written for Touchstone: each operation has an ``origin`` (a
client) and a ``destination`` (a server), and the ``Interoplab-CL-ext-SUT`` extension says which of
them is the system under test (SUT). The runner plays every party that is not the SUT, through a
:class:`Harness`:

- an operation from the runner's side to the SUT (or to the runner's own simulator) is sent as a
  real HTTP request;
- an operation whose origin is the SUT is *awaited*: the harness makes the SUT do what the script
  describes and returns the request the SUT sent to the simulator (and the simulator's answer).

Asserts are evaluated on the last exchange (``direction`` request or response) with fhirpathpy
(STU3 model): ``responseCode``, ``resource``, ``contentType``, ``expression`` with the operators,
``validateProfileId`` (STU3 model and the profile's differential, see :mod:`.profiles`) and
Touchstone's ``modifyTask`` rule. Each assert is reported as passed, failed or warning (a failed
``warningOnly`` assert), with the reason; a failed ``stopTestOnFail`` assert skips the rest of its test.
"""

from __future__ import annotations

import json
import re
import secrets
import string
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import httpx
from fhirpathpy import evaluate
from fhirpathpy.models import models
from lxml import etree

from scripts.conformance.profiles import ProfileCheck

NS = {"f": "http://hl7.org/fhir"}
SUT_EXT = "http://fhir.interoplab.eu/fhir/StructureDefinition/Interoplab-CL-ext-SUT"
RULE_EXT = "http://touchstone.aegis.net/touchstone/fhir/testing/StructureDefinition/testscript-assert-rule"
METHODS = {"read": "GET", "search": "GET", "update": "PUT", "create": "POST", "delete": "DELETE"}
_VAR = re.compile(r"\$\{([^}]+)\}")
Json = dict[str, Any]


def stu3_json(xml: bytes) -> Json:
    """STU3 XML to STU3 JSON through the fhir.resources STU3 models."""
    from fhir.resources.STU3 import get_fhir_model_class

    root = etree.fromstring(xml)
    model = get_fhir_model_class(etree.QName(root).localname).model_validate_xml(xml)
    out: Json = json.loads(model.model_dump_json(exclude_none=True))
    return out


def stu3_xml(resource: Json) -> bytes:
    from fhir.resources.STU3 import get_fhir_model_class

    data = get_fhir_model_class(str(resource["resourceType"])).model_validate(resource).model_dump_xml()
    return data if isinstance(data, bytes) else str(data).encode()


@dataclass
class Exchange:
    """One HTTP request and its answer, as the simulator saw it or the runner made it."""

    method: str
    path: str
    request_format: str | None = None
    request_body: Json | None = None
    status: int = 0
    response_format: str | None = None
    response_body: Json | None = None
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class Operation:
    code: str
    resource: str | None
    params: str | None
    url: str | None
    origin: int | None
    destination: int | None
    source_id: str | None
    response_id: str | None
    accept: str | None
    content_type: str | None
    headers: list[tuple[str, str]]
    label: str


@dataclass
class Assert:
    label: str
    direction: str
    response_code: str | None
    operator: str | None
    resource: str | None
    content_type: str | None
    expression: str | None
    value: str | None
    profile_id: str | None
    rule: tuple[str, dict[str, str], str | None] | None
    stop_on_fail: bool
    warning_only: bool


@dataclass
class Outcome:
    test: str
    label: str
    result: str  # pass | fail | warning | skip
    message: str = ""


class Harness(Protocol):
    """The parties that are not the SUT, and how to make the SUT act."""

    def base(self, destination: int) -> str: ...

    async def await_sut(self, op: Operation, path: str, fixture: Json | None) -> Exchange: ...


def _v(node: Any, name: str) -> str | None:
    found = node.find(f"f:{name}", NS)
    return None if found is None else found.get("value")


def _sut_flags(root: Any, tag: str) -> dict[int, bool]:
    out = {}
    for node in root.findall(f"f:{tag}", NS):
        ext = node.find(f"f:extension[@url='{SUT_EXT}']/f:valueBoolean", NS)
        out[int(_v(node, "index") or 0)] = ext is not None and ext.get("value") == "true"
    return out


def _operation(node: Any) -> Operation:
    def num(name: str) -> int | None:
        text = _v(node, name)
        return int(text) if text else None

    headers = [(_v(h, "field") or "", _v(h, "value") or "") for h in node.findall("f:requestHeader", NS)]
    return Operation(
        code=node.find("f:type/f:code", NS).get("value"),
        resource=_v(node, "resource"),
        params=_v(node, "params"),
        url=_v(node, "url"),
        origin=num("origin"),
        destination=num("destination"),
        source_id=_v(node, "sourceId"),
        response_id=_v(node, "responseId"),
        accept=_v(node, "accept"),
        content_type=_v(node, "contentType"),
        headers=headers,
        label=_v(node, "label") or _v(node, "description") or "",
    )


def _assert(node: Any) -> Assert:
    rule = None
    ext = node.find(f"f:extension[@url='{RULE_EXT}']", NS)
    if ext is not None:
        rule_id = ext.find("f:extension[@url='ruleId']/f:valueId", NS).get("value")
        params = {}
        for param in ext.findall("f:extension[@url='param']", NS):
            params[param.find("f:extension[@url='name']/f:valueString", NS).get("value")] = param.find(
                "f:extension[@url='value']/f:valueString", NS
            ).get("value")
        output = ext.find("f:extension[@url='output']/f:extension[@url='name']/f:valueString", NS)
        rule = (rule_id, params, None if output is None else output.get("value"))
    return Assert(
        label=_v(node, "label") or _v(node, "description") or "",
        direction=_v(node, "direction") or "response",
        response_code=_v(node, "responseCode"),
        operator=_v(node, "operator"),
        resource=_v(node, "resource"),
        content_type=_v(node, "contentType"),
        expression=_v(node, "expression"),
        value=_v(node, "value"),
        profile_id=_v(node, "validateProfileId"),
        rule=rule,
        stop_on_fail=_v(node, "stopTestOnFail") == "true",
        warning_only=_v(node, "warningOnly") == "true",
    )


@dataclass
class Script:
    """A parsed TestScript: parties, fixtures, profiles, variables and its setup and tests."""

    path: Path
    id: str
    title: str
    sut_origins: dict[int, bool]
    sut_destinations: dict[int, bool]
    fixtures: dict[str, Path]
    profiles: dict[str, str]
    variables: list[dict[str, str | None]]
    setup: list[Any]
    tests: list[tuple[str, list[Any]]]

    @classmethod
    def load(cls, path: Path) -> Script:
        root = etree.parse(str(path)).getroot()
        fixtures = {}
        for fx in root.findall("f:fixture", NS):
            ref = fx.find("f:resource/f:reference", NS)
            if ref is not None:
                fixtures[fx.get("id")] = (path.parent / ref.get("value")).resolve()
        variables = [
            {k: _v(v, k) for k in ("name", "defaultValue", "expression", "sourceId", "headerField")}
            for v in root.findall("f:variable", NS)
        ]

        def actions(node: Any) -> list[Any]:
            out: list[Any] = []
            for action in node.findall("f:action", NS) if node is not None else []:
                op, asrt = action.find("f:operation", NS), action.find("f:assert", NS)
                out.append(_operation(op) if op is not None else _assert(asrt))
            return out

        return cls(
            path=path,
            id=_v(root, "id") or path.stem,
            title=_v(root, "title") or path.stem,
            sut_origins=_sut_flags(root, "origin"),
            sut_destinations=_sut_flags(root, "destination"),
            fixtures=fixtures,
            profiles={p.get("id"): p.get("value") for p in root.findall("f:profile", NS)},
            variables=variables,
            setup=actions(root.find("f:setup", NS)),
            tests=[(_v(t, "name") or "", actions(t)) for t in root.findall("f:test", NS)],
        )

    def token(self) -> str | None:
        """The bearer token the script's simulator uses towards a SUT server (a variable's default
        or a literal header of an operation sent to the SUT)."""
        for var in self.variables:
            if (var["defaultValue"] or "").startswith("Bearer "):
                return var["defaultValue"]
        return None


class Runner:
    """Runs one :class:`Script` against a :class:`Harness`."""

    def __init__(
        self,
        script: Script,
        harness: Harness,
        http: httpx.AsyncClient,
        profiles: ProfileCheck,
        given: dict[str, str],
        fixture_text: Callable[[str, dict[str, str]], str],
    ) -> None:
        self.script = script
        self.harness = harness
        self.http = http
        self.profiles = profiles
        self.values: dict[str, str] = {}
        self.fixtures: dict[str, Json] = {}
        self.fixture_text = fixture_text
        self.last: Exchange | None = None
        self.outcomes: list[Outcome] = []
        for var in script.variables:
            name = str(var["name"])
            if name in given:
                self.values[name] = given[name]
            elif var["defaultValue"] and not var["expression"]:
                self.values[name] = _VAR.sub(lambda _m: _random6(), var["defaultValue"])

    # -- variables and fixtures --------------------------------------------------------------

    def value(self, name: str) -> str | None:
        if name in self.values:
            return self.values[name]
        for var in self.script.variables:
            if var["name"] == name and var["expression"] and var["sourceId"]:
                source = self.fixture(str(var["sourceId"]))
                if source is None:
                    return None
                found = evaluate(source, str(var["expression"]), {}, models["stu3"])
                return str(found[0]) if found else None
        return None

    def expand(self, text: str) -> str:
        def one(m: re.Match[str]) -> str:
            got = self.value(m.group(1))
            return got if got is not None else m.group(0)

        return _VAR.sub(one, text)

    def fixture(self, fixture_id: str) -> Json | None:
        if fixture_id in self.fixtures:
            return self.fixtures[fixture_id]
        path = self.script.fixtures.get(fixture_id)
        if path is None or not path.exists():
            return None
        text = self.fixture_text(path.read_text("utf-8"), {k: v for k, v in self.values.items()})
        self.fixtures[fixture_id] = stu3_json(text.encode())
        return self.fixtures[fixture_id]

    # -- operations --------------------------------------------------------------------------

    def _path(self, op: Operation) -> str:
        if op.url:
            return self.expand(op.url)
        params = self.expand(op.params or "")
        if params and not params.startswith(("/", "?")):
            params = "/" + params
        return f"{op.resource or ''}{params}"

    async def operation(self, op: Operation) -> None:
        path = self._path(op)
        body = self.fixture(op.source_id) if op.source_id else None
        sut_origin = op.origin is not None and self.script.sut_origins.get(op.origin, False)
        if sut_origin:
            exchange = await self.harness.await_sut(op, path, body)
            for name in _VAR.findall(op.url or op.params or ""):  # bind what the SUT chose (an id)
                if self.value(name) is None:
                    bound = _bind(self._path(op), exchange)
                    self.values.update(bound)
        else:
            exchange = await self._send(op, path, body)
        if op.response_id and exchange.response_body is not None:
            self.fixtures[op.response_id] = exchange.response_body
        self.last = exchange

    async def _send(self, op: Operation, path: str, body: Json | None) -> Exchange:
        base = self.harness.base(op.destination or 1)
        url = path if path.startswith("http") else f"{base.rstrip('/')}/{path.lstrip('/')}"
        xml_out = op.content_type == "xml"
        headers = {"Accept": "application/fhir+xml" if op.accept == "xml" else "application/fhir+json"}
        for name, value in op.headers:
            headers[name] = self.expand(value)
        content: bytes | None = None
        if body is not None:
            content = stu3_xml(body) if xml_out else json.dumps(body).encode()
            headers["Content-Type"] = "application/fhir+xml" if xml_out else "application/fhir+json"
        response = await self.http.request(METHODS.get(op.code, "GET"), url, content=content, headers=headers)
        return Exchange(
            METHODS.get(op.code, "GET"),
            url,
            ("xml" if xml_out else "json") if body is not None else None,
            body,
            response.status_code,
            *_parse_body(response.content, response.headers.get("content-type", "")),
            headers=dict(response.headers),
        )

    # -- asserts -----------------------------------------------------------------------------

    def check(self, a: Assert) -> tuple[bool, str]:
        ex = self.last
        if a.rule is not None:
            return self._rule(a.rule)
        if ex is None:
            return False, "no operation before the assert"
        body = ex.request_body if a.direction == "request" else ex.response_body
        fmt = ex.request_format if a.direction == "request" else ex.response_format
        if a.response_code is not None:
            codes = [c.strip() for c in a.response_code.split(",")]
            ok = str(ex.status) in codes if a.operator == "in" else str(ex.status) == codes[0]
            why = f"response code {ex.status}, expected {a.operator or 'equals'} {a.response_code}"
            outcome = ex.response_body or {}
            if not ok and outcome.get("resourceType") == "OperationOutcome":
                why += ": " + "; ".join(str(i.get("diagnostics", "")) for i in outcome.get("issue") or [])[:400]
            return ok, why
        if a.resource is not None:
            kind = (body or {}).get("resourceType")
            ok = kind is not None and (a.resource == "Resource" or kind == a.resource)
            return ok, f"resource {kind}, expected {a.resource}"
        if a.content_type is not None:
            return fmt == a.content_type, f"content type {fmt}, expected {a.content_type}"
        if body is None:
            return False, f"no {a.direction} body"
        if a.profile_id is not None:
            url = self.script.profiles.get(a.profile_id, a.profile_id)
            problems = self.profiles.check(body, url)
            return not problems, "; ".join(problems[:3]) or f"valid against {url}"
        if a.expression is not None:
            try:
                got = evaluate(body, self.expand(a.expression), {}, models["stu3"])
            except Exception as exc:  # noqa: BLE001 - a FHIRPath the engine cannot evaluate is a failed assert
                return False, f"FHIRPath error: {exc!r}"
            ok, why = _compare(got, a.operator, self.expand(a.value) if a.value is not None else None)
            if not ok and body.get("resourceType") == "Bundle":  # name the entries that fail it
                entries = [e.get("resource") or {} for e in body.get("entry") or []]
                for expr in _per_entry(a.expression):
                    bad = [
                        f"{r.get('resourceType')}/{r.get('id')}"
                        for r in entries
                        if evaluate(r, expr, {}, models["stu3"]) not in ([True], [])
                    ]
                    if bad:
                        why += f" ({', '.join(bad[:5])})"
            return ok, why
        return False, "an assert this runner does not know"

    def _rule(self, rule: tuple[str, dict[str, str], str | None]) -> tuple[bool, str]:
        rule_id, params, output = rule
        if rule_id != "modifyTask" or self.last is None or self.last.response_body is None:
            return False, f"rule {rule_id} is not supported by this runner"
        task = dict(self.last.response_body)
        task["status"] = params.get("newStatus", task.get("status"))
        self.fixtures[output or params.get("fixtureId", "")] = task
        return True, f"rule modifyTask: status {task['status']}"

    async def run(self) -> list[Outcome]:
        for name, actions in [("setup", self.script.setup), *self.script.tests]:
            stopped = ""
            for action in actions:
                if stopped:
                    if isinstance(action, Assert):
                        self.outcomes.append(Outcome(name, action.label, "skip", stopped))
                    continue
                if isinstance(action, Operation):
                    try:
                        await self.operation(action)
                    except Exception as exc:  # noqa: BLE001 - reported as the test's failure
                        self.last = None
                        stopped = f"operation '{action.label}' failed: {exc}"
                    continue
                ok, why = self.check(action)
                result = "pass" if ok else "warning" if action.warning_only else "fail"
                self.outcomes.append(Outcome(name, action.label, result, why))
                if not ok and action.stop_on_fail:
                    stopped = f"stopped after: {action.label}"
        return self.outcomes


def _per_entry(expression: str) -> list[str]:
    """For the report: the common Bundle-wide checks restated per entry resource (to name the entries)."""
    if "meta.profile.empty()" in expression:
        return ["meta.profile.exists()"]
    if expression.startswith("Bundle.descendants()"):
        return ["descendants()" + expression[len("Bundle.descendants()") :]]
    return []


def _random6() -> str:
    return "".join(secrets.choice(string.ascii_lowercase + string.digits) for _ in range(6))


def _parse_body(raw: bytes, content_type: str) -> tuple[str | None, Json | None]:
    if not raw.strip():
        return None, None
    try:
        if "xml" in content_type:
            return "xml", stu3_json(raw)
        return "json", json.loads(raw)
    except Exception:  # noqa: BLE001 - an unparsable body is no resource (the asserts say so)
        return ("xml" if "xml" in content_type else "json"), None


def _bind(template: str, exchange: Exchange) -> dict[str, str]:
    """Values of the ``${name}`` placeholders still in ``template`` from the path the SUT used (or the
    id of the resource it sent)."""
    names = _VAR.findall(template)
    pattern = re.escape(template)
    for name in names:
        pattern = pattern.replace(re.escape("${" + name + "}"), f"(?P<{re.sub(r'[^A-Za-z0-9_]', '_', name)}>[^/?]+)")
    m = re.search(pattern + "$", exchange.path.split("?")[0])
    if m:
        return {name: m.group(re.sub(r"[^A-Za-z0-9_]", "_", name)) for name in names}
    body_id = (exchange.request_body or {}).get("id")
    return {names[-1]: str(body_id)} if names and body_id else {}


def _compare(got: list[Any], operator: str | None, value: str | None) -> tuple[bool, str]:
    shown = json.dumps(got)[:200]
    if operator == "empty":
        return not got, f"got {shown}, expected empty"
    if operator == "notEmpty":
        return bool(got), f"got {shown}, expected not empty"
    if value is None:
        return got == [True], f"got {shown}, expected true"
    first = str(got[0]).lower() if got and isinstance(got[0], bool) else str(got[0]) if got else None
    values = [v.strip() for v in value.split(",")]
    ok = {
        None: first == value,
        "equals": first == value,
        "notEquals": first != value,
        "in": first in values,
        "notIn": first not in values,
        "contains": first is not None and value in first,
        "notContains": first is None or value not in first,
    }.get(operator)
    if ok is None:
        return False, f"operator {operator} is not supported by this runner"
    return ok, f"got {shown}, expected {operator or 'equals'} {value}"


Driver = Callable[[Operation, str, Json | None], Awaitable[Exchange]]
