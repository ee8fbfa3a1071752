"""HTTP routes: the FHIR endpoint and the few non-FHIR ones (health, admin registration)."""

from hub.api.routes.admin import router as admin_router
from hub.api.routes.fhir import router as fhir_router
from hub.api.routes.health import router as health_router

__all__ = ["admin_router", "fhir_router", "health_router"]
