"""``$validate`` at type and instance level (``profile``, ``mode``): the same checks as a write
(base structure, then the profiles the resource claims or the hub applies by default), answered
as an OperationOutcome with status 200 whatever it finds."""

from __future__ import annotations

from typing import Any

from hub.api.context import Call
from hub.api.interaction import FhirRequest, Route
from hub.api.operations import Operation
from hub.api.operations.params import first, parameters
from hub.api.result import FhirResult
from hub.fhir import jsonio
from hub.fhir.errors import BadRequest, Conflict, FhirError, Issue, Unprocessable, operation_outcome
from hub.fhir.parse import check_resource

MODES = frozenset({"create", "update", "delete", "profile"})


async def run(call: Call, req: FhirRequest, route: Route) -> FhirResult:
    params = parameters(req)
    mode = first(params, "mode") or ("update" if route.res_id else "create")
    if mode not in MODES:
        raise BadRequest(f"mode must be one of {', '.join(sorted(MODES))}", expression="mode")
    profile = first(params, "profile")
    resource: Any = first(params, "resource")
    if resource is None and isinstance(req.body, dict) and req.body.get("resourceType") not in (None, "Parameters"):
        resource = req.body
    if route.res_id is not None:
        stored = await call.repo.read(route.res_type or "", route.res_id, conn=call.conn)
        if mode == "delete":
            await _check_as_write(call, route.res_type or "", mode, None, route.res_id)
            return _ok(f"{route.res_type}/{route.res_id} can be deleted")
        if resource is None:
            resource = jsonio.loads(stored.content or "{}")
    if resource is None:
        raise BadRequest("$validate needs a resource (the body, or a 'resource' parameter)", code="required")
    found: list[Issue] = []
    if mode in ("create", "update") and isinstance(resource, dict) and resource.get("resourceType") == route.res_type:
        # The same checks the real write makes, permission before any validation (403 before 422);
        # what the write would refuse as content (422, 409) is reported as issues, like validation.
        try:
            await _check_as_write(call, route.res_type or "", mode, resource, route.res_id)
        except (Unprocessable, Conflict) as exc:
            found = list(exc.issues)
    if profile:
        from hub.fhir.validation import default_validator

        if not default_validator().is_loaded(profile):
            raise BadRequest(f"The profile '{profile}' is not known to this server", expression="profile")
    issues: list[Issue]
    try:
        resource = check_resource(resource, route.res_type)
        issues = found + validate(resource, profile)
    except FhirError as exc:
        issues = found + list(exc.issues)
    if route.res_id is not None and mode == "update" and resource.get("id") != route.res_id:
        issues.append(
            Issue(f"The id must be '{route.res_id}' to update it", "invalid", "error", (f"{route.res_type}.id",))
        )
    if not [i for i in issues if i.severity in ("error", "fatal")]:
        return FhirResult(
            200, operation_outcome(issues or [Issue("Valid: no issues found", "informational", "information")])
        )
    return FhirResult(200, operation_outcome(issues))


async def _check_as_write(
    call: Call, res_type: str, mode: str, resource: dict[str, Any] | None, res_id: str | None
) -> None:
    repo = call.repo
    if repo.policy.internal:
        return
    async with repo.reading(call.conn) as conn:
        await repo.check_only(conn, res_type, mode, resource, res_id)


def validate(resource: dict[str, Any], profile: str | None) -> list[Issue]:
    from hub.fhir.validation import default_validator

    validator = default_validator()
    if profile:
        return validator.validate(resource, [profile])
    profiles = validator.profiles_for(resource)
    return validator.validate(resource, profiles or None)


def _ok(message: str) -> FhirResult:
    return FhirResult(200, operation_outcome([Issue(message, "informational", "information")]))


OPERATION = Operation(
    name="validate",
    levels=frozenset({"type", "instance"}),
    run=run,
    definition="http://hl7.org/fhir/OperationDefinition/Resource-validate",
)
