"""Fixtures shared by all tests: a hub per database backend (SQLite and PostgreSQL), an HTTP client.

Every API test runs once per backend. PostgreSQL is not optional: when it cannot be reached the
tests fail with a clear message (``make test`` starts a throwaway cluster when none is running).
"""

from __future__ import annotations

import os
import sqlite3
import tempfile
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
import pytest_asyncio
from sqlalchemy import event, text

from hub.app import create_app
from hub.settings import Settings


def _backends() -> list[str]:
    raw = os.environ.get("HUB_TEST_BACKENDS", "sqlite,postgresql")
    return [b.strip() for b in raw.split(",") if b.strip()]


def pg_admin_url() -> str:
    return os.environ.get("HUB_TEST_PG_ADMIN_URL", "postgresql://postgres@127.0.0.1:5432/postgres")


async def _pg_create(name: str, template: str | None = None) -> str:
    """Create database ``name`` (a copy of ``template`` when given); its SQLAlchemy URL."""
    import asyncpg

    admin = pg_admin_url()
    try:
        conn = await asyncpg.connect(admin, timeout=10)
    except (OSError, asyncpg.PostgresError) as exc:
        pytest.fail(
            f"PostgreSQL is required for the storage tests but {admin} cannot be reached ({exc}). "
            "Run the suite with `make test`, which starts a throwaway cluster when none is running.",
            pytrace=False,
        )
    try:
        await conn.execute(f'CREATE DATABASE "{name}"' + (f' TEMPLATE "{template}"' if template else ""))
    finally:
        await conn.close()
    return admin.rsplit("/", 1)[0].replace("postgresql://", "postgresql+asyncpg://") + f"/{name}"


async def _pg_drop(name: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(pg_admin_url(), timeout=10)
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()


#: Per backend, two databases made once per test session (a SQLite file or a PostgreSQL database name):
#: "migrated" (the schema at head, as ``upgrade`` leaves it) and "started" (as a hub's first start
#: leaves it: migrated, the conformance package stored). The databases of live hubs, of the shared test
#: app and of :func:`fresh_db` are copies of them, so that no test runs the migrations, or validates
#: and stores the package, all over again (about 1 s and 5 s of CPU). A first start on an empty
#: database is still what the README tour, tests/ops and the migration tests do.
_templates: dict[tuple[str, str], str] = {}
_template_dirs: list[Path] = []


async def _first_start(url: str, var: Path) -> None:
    app = create_app(make_settings(url, var))
    async with app.router.lifespan_context(app):
        pass


async def _template(backend: str, kind: str) -> str:
    if (backend, kind) not in _templates:
        import asyncio

        from hub.store.migrate import upgrade

        work = Path(tempfile.mkdtemp(prefix=f"hub-{kind}-"))
        _template_dirs.append(work)
        if backend == "sqlite":
            path = work / "template.db"
            url = f"sqlite+aiosqlite:///{path}"
            _templates[backend, kind] = str(path)
        else:
            name = f"hub_tpl_{kind}_{uuid.uuid4().hex[:12]}"
            url = await _pg_create(name)
            _templates[backend, kind] = name  # dropped at the end of the session (pytest_sessionfinish)
        if kind == "started":
            await _first_start(url, work / "var")
        else:
            await asyncio.to_thread(upgrade, url)
    return _templates[backend, kind]


async def copied_database(backend: str, kind: str, target: Path) -> tuple[str, str | None]:
    """A database of ``backend`` of its own, a copy of the session's ``kind`` template ("migrated" or
    "started"): its URL, and the PostgreSQL database to drop afterwards (None for the SQLite file
    ``target``)."""
    template = await _template(backend, kind)
    if backend == "sqlite":
        source, copy = sqlite3.connect(template), sqlite3.connect(target)
        try:
            source.backup(copy)
        finally:
            source.close()
            copy.close()
        return f"sqlite+aiosqlite:///{target}", None
    name = f"hub_test_{uuid.uuid4().hex[:12]}"
    return await _pg_create(name, template=template), name


@contextmanager
def throwaway_database(backend: str, work: Path) -> Iterator[str]:
    """A database URL of ``backend`` for a live hub process, as a first start leaves it: a SQLite file
    ``hub.db`` in ``work``, or a PostgreSQL database dropped afterwards (for synchronous fixtures; async
    ones await :func:`copied_database` themselves)."""
    import asyncio

    url, name = asyncio.run(copied_database(backend, "started", work / "hub.db"))
    try:
        yield url
    finally:
        if name is not None:
            asyncio.run(_pg_drop(name))


def pytest_sessionfinish(session: pytest.Session) -> None:
    """Drop the session's template databases."""
    import asyncio
    import shutil

    for (backend, kind), name in list(_templates.items()):
        if backend == "postgresql":
            asyncio.run(_pg_drop(name))
            del _templates[backend, kind]
    for work in _template_dirs:
        shutil.rmtree(work, ignore_errors=True)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """With ``HUB_TEST_ONLY_BACKEND=1`` keep only the tests that run once per database backend.

    ``make test`` runs the suite as two processes side by side: one on SQLite with every test that
    needs no database backend, one on PostgreSQL with just the per-backend tests, so each test runs
    exactly once per backend and the backend-free tests once in all.
    """
    if os.environ.get("HUB_TEST_ONLY_BACKEND") != "1":
        return
    keep: list[pytest.Item] = []
    dropped: list[pytest.Item] = []
    for item in items:
        callspec = getattr(item, "callspec", None)
        (keep if callspec is not None and "backend" in callspec.params else dropped).append(item)
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = keep


@pytest.fixture(scope="session", params=_backends())
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def database_url(backend: str, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[str]:
    url, name = await copied_database(backend, "started", tmp_path_factory.mktemp("db") / "hub.db")
    try:
        yield url
    finally:
        if name is not None:
            await _pg_drop(name)


@pytest_asyncio.fixture(loop_scope="session")
async def fresh_db(backend: str, tmp_path: Path) -> AsyncIterator[Any]:
    """A fresh, migrated database of the current backend, for a test that needs one of its own
    (e.g. an audit writer with its own chain); dropped afterwards."""
    from hub.store.db import Database

    url, name = await copied_database(backend, "migrated", tmp_path / "fresh.db")
    db = Database(url, pool_size=5)
    try:
        yield db
    finally:
        await db.dispose()
        if name is not None:
            await _pg_drop(name)


def make_settings(database_url: str, tmp: Path, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "database_url": database_url,
        "environment": "test",
        "var_dir": tmp,
        "demo": False,
        "db_pool_size": 5,
        # The shared test app's audit writer seals on its own timer every few seconds; a test that
        # pauses the event loop (a synchronous subprocess, a sync test between async ones) could
        # pause it inside its SQLite write transaction and lock out a CLI process. Tests of sealing
        # use writers of their own.
        # Likewise the look for SearchParameters written by another process (this process takes in
        # its own at once): statement-counting tests must not meet it; tests of it call it.
        "extra_settings": {"audit_checkpoint_seconds": "3600", "search_param_refresh_ms": "3600000"},
    }
    values.update(overrides)
    return Settings(**values)


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def hub_app(database_url: str, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Any]:
    app = create_app(make_settings(database_url, tmp_path_factory.mktemp("var")))
    async with app.router.lifespan_context(app):
        yield app


TABLES = (
    "resource",
    "resource_history",
    "idx_string",
    "idx_token",
    "idx_date",
    "idx_reference",
    "idx_quantity",
    "idx_number",
    "idx_uri",
    "idx_compartment",
    "resource_author",
    "care_relation",
    "consent_rule",
    "access_grant",
    "delegation",
    "outbox_event",
    "subscription_state",
    "subscription_event",
    "resource_owner",
    "overdracht_access",
    "history_compartment",
    "organisation",
    "break_glass",
    "care_source",
)

#: The identity the generic API tests act as: a professional system of one organisation. It sees
#: what it wrote (author access), which is all the generic FHIR tests need.
DEFAULT_AS = "org:00099999:practitioner:900009999"


def token_for_app(app: Any, spec: str, **kwargs: Any) -> str:
    """A real signed access token from the app's own keys (what `hub token --as` prints)."""
    from hub.access.authserver import token_for
    from hub.access.wiring import auth_config

    return token_for(spec, auth_config(app.state.settings), **kwargs)


async def clean(app: Any) -> None:
    db = app.state.services.repo.db
    async with db.write() as conn:
        if db.is_sqlite:
            for t in TABLES:
                await conn.execute(text(f"DELETE FROM {t}"))
        else:
            await conn.execute(text(f"TRUNCATE {', '.join(TABLES)} RESTART IDENTITY"))


@pytest_asyncio.fixture(loop_scope="session")
async def client(hub_app: Any) -> AsyncIterator[httpx.AsyncClient]:
    """An HTTP client on a hub with an empty database, authenticated as :data:`DEFAULT_AS`."""
    await clean(hub_app)
    transport = httpx.ASGITransport(app=hub_app)
    headers = {"Authorization": f"Bearer {token_for_app(hub_app, DEFAULT_AS)}"}
    async with httpx.AsyncClient(transport=transport, base_url="http://hub.test", headers=headers) as c:
        yield c


@pytest.fixture
def client_as(hub_app: Any) -> Any:
    """A factory of HTTP clients authenticated as someone else (``client_as("client:999993653")``)."""
    opened: list[httpx.AsyncClient] = []

    def make(spec: str | None, **headers: str) -> httpx.AsyncClient:
        transport = httpx.ASGITransport(app=hub_app)
        if spec is not None:
            headers = {"Authorization": f"Bearer {token_for_app(hub_app, spec)}", **headers}
        c = httpx.AsyncClient(transport=transport, base_url="http://hub.test", headers=headers)
        opened.append(c)
        return c

    return make


class StatementCounter:
    """Counts SQL statements sent to the database (HAPI-style query-count assertions)."""

    def __init__(self) -> None:
        self.statements: list[str] = []

    def __call__(self, _conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        self.statements.append(statement)

    @property
    def count(self) -> int:
        return len(self.statements)


@pytest.fixture
def count_statements(hub_app: Any) -> Any:
    engines = [e.sync_engine for e in hub_app.state.services.repo.db.engines]

    @contextmanager
    def counting() -> Iterator[StatementCounter]:
        counter = StatementCounter()
        for engine in engines:
            event.listen(engine, "before_cursor_execute", counter)
        try:
            yield counter
        finally:
            for engine in engines:
                event.remove(engine, "before_cursor_execute", counter)

    return counting
