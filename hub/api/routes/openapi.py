"""``GET /openapi.json``: the OpenAPI form of the CapabilityStatement, public like ``/fhir/metadata``."""

from __future__ import annotations

from fastapi import APIRouter, Request
from starlette.responses import Response

from hub.api.context import Services
from hub.api.handlers.capabilities import capability_statement
from hub.api.openapi import openapi_document
from hub.fhir import jsonio

router = APIRouter()


@router.get("/openapi.json", include_in_schema=False)
async def openapi_json(request: Request) -> Response:
    services: Services = request.app.state.services
    base = str(request.base_url).rstrip("/")
    cache = services.extras.setdefault("openapi", {})
    if base not in cache:
        statement = capability_statement(base + "/fhir", services.search.describe_type)
        cache[base] = jsonio.dumps(openapi_document(statement))
    return Response(cache[base], media_type="application/json")
