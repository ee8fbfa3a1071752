"""``create_app(settings)``: builds the FastAPI app. Nothing connects at import time; the lifespan
creates the engine, upgrades the embedded database, loads the conformance package and (when asked)
the demo network."""

from __future__ import annotations

import asyncio
import functools
import gc
import inspect
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from anyio import to_thread
from fastapi import FastAPI, Request

from hub.api import errors
from hub.api.accesslog import RequestObserver
from hub.api.context import Services
from hub.api.disconnect import CancelOnDisconnect
from hub.api.fastroute import PrefixRoute, static_beginnings
from hub.api.metrics import HubMetrics
from hub.api.routes import (
    admin_audit_router,
    admin_router,
    bulk_router,
    fhir_router,
    health_router,
    metrics_router,
    openapi_router,
)
from hub.api.routes.fhir import FHIR_METHODS, fhir_endpoint
from hub.settings import Settings, get_settings
from hub.store.db import Database
from hub.store.repository import Repository

#: Net allocations of container objects between collections of the youngest generation.
GC_YOUNG_THRESHOLD = 10_000

log = logging.getLogger("hub")


def build_services(settings: Settings, db: Database, verifier: Any = None) -> Services:
    """The object graph of one app: repository, search engine, validator, wired explicitly."""
    from hub.access.decision import SYSTEM
    from hub.access.facts import after_write as access_facts
    from hub.access.facts import derives_anything as access_derives
    from hub.events.outbox import Outbox
    from hub.fhir.categories import category_for
    from hub.fhir.extract import extract
    from hub.fhir.query import SearchLimits
    from hub.fhir.typeinfo import resource_types
    from hub.store.search.engine import SearchEngine
    from hub.store.searchparams import LiveSearchParameters
    from hub.workflows.check import write_rules
    from hub.workflows.derive import after_write as workflow_facts
    from hub.workflows.derive import derives_anything as workflow_derives
    from hub.workflows.overdracht import amend as amend_task

    params = LiveSearchParameters(
        resource_types(), refresh_ms=int(settings.extra_settings.get("search_param_refresh_ms", "1000"))
    )
    engine = SearchEngine(
        params.registry,
        resource_types(),
        default_count=settings.default_page_size,
        max_count=settings.max_page_size,
        limits=SearchLimits.from_settings(settings),
    )
    params.on_change.append(lambda registry: setattr(engine, "registry", registry))
    repo = Repository(
        db,
        lambda resource: extract(resource, params.registry, base_url=settings.fhir_base),
        engine,
        policy=SYSTEM,
        write_rules=write_rules,
        validator=_write_validator() if settings.validate_on_write else None,
        categorize=category_for,
        after_write=_chain(
            functools.partial(access_facts, base=settings.fhir_base),
            functools.partial(workflow_facts, base=settings.fhir_base),
        ),
        outbox=Outbox(),
        prepare=amend_task,
        search_params=params,
        after_write_needed=lambda stored, res, replaced: (
            access_derives(stored, res, replaced) or workflow_derives(stored, res, replaced)
        ),
    )
    return Services(settings=settings, repo=repo, search=engine, verifier=verifier)


def _chain(access: Any, *steps: Any) -> Any:
    """One after-write hook: the access facts first (they weigh the writer's right, ``writer`` being
    the caller's access policy), then the workflow facts."""

    async def run(conn: Any, stored: Any, resource: Any, author_ura: Any, *, writer: Any) -> None:
        await access(conn, stored, resource, author_ura, writer=writer)
        for step in steps:
            await step(conn, stored, resource, author_ura)

    return run


#: What a write enforces from the core type of a resource no profile applies to: required bindings
#: ("code-invalid") and values such as the BSN elfproef ("value"). ``$validate`` reports the same, and
#: the rest of the core checks (cardinality, invariants) as well.
CORE_WRITE_RULES = frozenset({"code-invalid", "value"})


def _write_validator() -> Any:
    """Validation on write, as ``$validate`` does it: the profiles a resource claims and the hub knows
    (an unknown one is a warning) plus the hub's default profile for it (care plan, ACP, overdracht,
    consent, toewijzing); a resource without any is held to its core type's :data:`CORE_WRITE_RULES`."""
    from hub.fhir.validation import default_validator

    validator = default_validator()

    def validate(resource: dict[str, Any]) -> list[Any]:
        issues, profiles = validator.validate_claimed(resource)
        if profiles:
            return issues
        return [i for i in issues if i.severity not in ("error", "fatal") or i.code in CORE_WRITE_RULES]

    return validate


def _start_worker(services: Services, db: Database) -> Any:
    """The in-process notification worker of the embedded mode (``make run`` delivers)."""
    import asyncio

    from hub.events.delivery import DeliveryConfig, Worker

    settings = services.settings
    worker = Worker(db, settings.fhir_base, config=DeliveryConfig.from_settings(settings), audit=services.audit)
    services.repo.outbox.wake = worker.wake
    services.extras["events_worker"] = worker
    return asyncio.create_task(worker.run(), name="events-worker")


def _warm_worker_thread() -> None:
    """Runs once on the worker-thread pool at startup, so that no request pays for starting it."""
    from hub.fhir.limits import ParseLimits, check_shape

    check_shape({"resourceType": "Patient"}, ParseLimits())


def _no_native_telemetry() -> dict[str, Any]:
    """FastAPI's own OpenTelemetry bridge off (the hub has no tracing, see the README): otherwise
    FastAPI asks the OpenTelemetry API for its providers on every request (3% of a read's CPU).
    Only for a FastAPI that has the bridge."""
    if "telemetry" not in inspect.signature(FastAPI.__init__).parameters:
        return {}
    return {"telemetry": {"tracing": False, "metrics": False, "logs": False}}


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()
    from hub.ops.safety import check_production

    check_production(settings)  # HUB_ENVIRONMENT=production refuses unsafe settings before anything starts
    from hub.access.facts import patient_ids_for_bsn
    from hub.access.tokens import TokenVerifier
    from hub.access.wiring import auth_config, hub_keys
    from hub.api.routes.oauth import build_auth_router

    config = auth_config(settings)
    keys = hub_keys(config)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        from hub.profiles import load_conformance_package
        from hub.store.migrate import prepare_database

        db = Database(
            settings.database_url, pool_size=settings.db_pool_size, statement_timeout_ms=settings.statement_timeout_ms
        )
        await prepare_database(db, settings)
        from hub.audit.writer import AuditWriter

        verifier = TokenVerifier(config, keys)
        services = build_services(settings, db, verifier)
        # On PostgreSQL the group-commit writer has its own small pool: it must never queue behind
        # the requests that are waiting for it. (SQLite shares one database and its write lock.) Its
        # appends are by key, so PostgreSQL may keep their plans.
        audit_db = db if db.is_sqlite else Database(settings.database_url, pool_size=2, custom_plans=False)
        services.audit = AuditWriter.from_settings(audit_db, settings)
        await services.audit.start()
        metrics.watch_pool("main", db.engine)
        if db.lookup_engine is not db.engine:
            metrics.watch_pool("lookup", db.lookup_engine)
        if audit_db is not db:
            metrics.watch_pool("audit", audit_db.engine)
        metrics.watch_audit(services.audit)
        services.extras["metrics"] = metrics
        app.state.settings = settings
        app.state.services = services
        app.state.db = db
        await load_conformance_package(services)
        search_params = services.repo.search_params
        assert search_params is not None
        await search_params.refresh(db)  # the package's and the stored SearchParameters
        from hub.bulk.jobs import ExportManager

        exports = ExportManager(services, settings.var_dir / "exports")
        services.extras["exports"] = exports
        await exports.start()
        if settings.demo:
            from hub.demo import load_demo_if_empty

            await load_demo_if_empty(services)
        # Everything loaded so far (models, registry, profiles) lives as long as the process: move it
        # out of the collector's sight. A full collection would otherwise walk it all, holding the
        # interpreter for most of a second whenever a request allocates many objects.
        await to_thread.run_sync(_warm_worker_thread)  # the first offloaded parse imports and starts a lot
        gc.collect()
        gc.freeze()
        # A request allocates a few thousand objects, nearly all freed by reference counting; with the
        # default threshold (700) the young generation was collected every request or so, for little.
        gc.set_threshold(GC_YOUNG_THRESHOLD, *gc.get_threshold()[1:])
        worker_task = _start_worker(services, db) if settings.events_worker_in_process else None
        # SearchParameters another hub process writes take effect here too (it polls the store)
        params_task = asyncio.create_task(search_params.run(db), name="search-parameters")
        try:
            yield
        finally:
            search_params.stop()
            await params_task
            await exports.stop()
            if worker_task is not None:
                services.extras["events_worker"].stop()
                await worker_task
            await services.audit.stop()
            await verifier.aclose()
            if audit_db is not db:
                await audit_db.dispose()
            await db.dispose()

    async def first_patient(conn: Any, bsn: str) -> str | None:
        ids = await patient_ids_for_bsn(conn, [bsn])
        found = ids.get(bsn)
        return found[0] if found else None

    def transaction(request: Request) -> Any:
        return request.app.state.db.write()

    metrics = HubMetrics()
    app = FastAPI(
        title="Zorgnet Hub",
        version="0.1.0",
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
        **_no_native_telemetry(),
    )
    errors.install(app)
    app.add_middleware(CancelOnDisconnect)
    app.state.metrics = metrics
    app.add_middleware(RequestObserver, metrics=metrics, access_log=settings.access_log)
    from hub.events.routes import router as events_router

    others = [
        *([metrics_router] if settings.metrics else []),
        health_router,
        openapi_router,
        build_auth_router(config, keys, transaction, patient_id_for_bsn=first_patient),
        admin_router,
        admin_audit_router,
        events_router,
        bulk_router,  # before the FHIR catch-all, which would take /fhir/bulk...
    ]
    for router in others:
        app.include_router(router)
    app.include_router(fhir_router)
    # The FHIR catch-all matched first, by prefix (see hub.api.fastroute); the paths under /fhir
    # that other routes serve still go to them.
    elsewhere = static_beginnings((getattr(r, "path", "") for router in others for r in router.routes), "/fhir")
    app.router.routes.insert(0, PrefixRoute("/fhir", fhir_endpoint, FHIR_METHODS, elsewhere))
    return app
