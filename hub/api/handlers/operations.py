"""``$operation`` dispatch: each operation is one module in :mod:`hub.api.operations`, registered by
name and level (system, type, instance) in :data:`hub.api.operations.OPERATIONS`."""

from __future__ import annotations

from hub.api.context import Call
from hub.api.interaction import FhirRequest, Route
from hub.api.result import FhirResult
from hub.fhir.errors import NotFound


async def operation(call: Call, req: FhirRequest, route: Route) -> FhirResult:
    from hub.api.operations import OPERATIONS

    level = "instance" if route.res_id else "type" if route.res_type else "system"
    op = OPERATIONS.get(route.operation or "")
    if op is None or level not in op.levels or (op.types and route.res_type not in op.types):
        where = f"{route.res_type or ''}{'/' + route.res_id if route.res_id else ''}"
        raise NotFound(
            f"The operation ${route.operation} is not supported at {level} level {where}".strip(), code="not-supported"
        )
    return await op.run(call, req, route)
