"""``create_app(settings)``: builds the FastAPI app. Nothing connects at import time; the lifespan
creates the engine, upgrades the embedded database, and (when asked) loads the demo network."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from hub.api import errors
from hub.api.context import Services
from hub.api.routes import fhir_router, health_router
from hub.settings import Settings, get_settings
from hub.store.db import Database
from hub.store.repository import Repository

log = logging.getLogger("hub")


def build_services(settings: Settings, db: Database) -> Services:
    """The object graph of one app: repository, search engine, validator, wired explicitly."""
    from hub.fhir.extract import extract
    from hub.fhir.searchparams import load_registry
    from hub.fhir.typeinfo import resource_types
    from hub.store.search.engine import SearchEngine

    registry = load_registry()
    engine = SearchEngine(
        registry, resource_types(), default_count=settings.default_page_size, max_count=settings.max_page_size
    )
    repo = Repository(db, lambda resource: extract(resource, registry), engine)
    return Services(settings=settings, repo=repo, search=engine)


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        from hub.store.migrate import prepare_database

        db = Database(settings.database_url, pool_size=settings.db_pool_size)
        await prepare_database(db, settings)
        services = build_services(settings, db)
        app.state.settings = settings
        app.state.services = services
        app.state.repo = services.repo
        if settings.demo:
            from hub.demo import load_demo_if_empty

            await load_demo_if_empty(services)
        try:
            yield
        finally:
            await db.dispose()

    app = FastAPI(
        title="Zorgnet Hub",
        version="0.1.0",
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
    )
    errors.install(app)
    app.include_router(health_router)
    app.include_router(fhir_router)
    return app
