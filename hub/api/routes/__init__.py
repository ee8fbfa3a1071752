"""HTTP routes: the FHIR endpoint and the few non-FHIR ones (health)."""

from hub.api.routes.fhir import router as fhir_router
from hub.api.routes.health import router as health_router

__all__ = ["fhir_router", "health_router"]
