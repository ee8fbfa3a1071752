"""FHIR search over the ``idx_*`` tables: predicates per parameter type, and the engine that runs them."""

from hub.store.policy import Visible
from hub.store.search.engine import SearchEngine, SearchPage
from hub.store.search.predicates import Planner, TemplateBuilder

__all__ = ["Planner", "SearchEngine", "SearchPage", "TemplateBuilder", "Visible"]
