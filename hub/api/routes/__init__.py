"""HTTP routes: the FHIR endpoint, Bulk Data status/files, and the few non-FHIR ones (health, metrics,
admin registration, audit check, the OpenAPI document)."""

from hub.api.routes.admin import router as admin_router
from hub.api.routes.admin_audit import router as admin_audit_router
from hub.api.routes.bulk import router as bulk_router
from hub.api.routes.fhir import router as fhir_router
from hub.api.routes.health import router as health_router
from hub.api.routes.metrics import router as metrics_router
from hub.api.routes.openapi import router as openapi_router

__all__ = [
    "admin_audit_router",
    "admin_router",
    "bulk_router",
    "fhir_router",
    "health_router",
    "metrics_router",
    "openapi_router",
]
