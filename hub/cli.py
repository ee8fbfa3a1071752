"""The ``hub`` command: serve, db upgrade/reindex, demo, token, audit, backup/restore."""

from __future__ import annotations

import asyncio
import logging

import typer

from hub.settings import Settings, get_settings, record_serving, serving_settings

# Plain tracebacks: a service process that fails must exit at once (rich rendering of a deep
# SQLAlchemy traceback took minutes of CPU on a loaded box) and log text a log collector can keep.
app = typer.Typer(
    help="Zorgnet Hub: a FHIR R4 care-network hub.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
db_app = typer.Typer(help="Database schema and indexes.", no_args_is_help=True)
app.add_typer(db_app, name="db")


def _mount_subcommands() -> None:
    from hub.access.cli import apps_app, people_app
    from hub.audit.cli import audit_app

    app.add_typer(audit_app, name="audit", help="Verify and export the tamper-evident audit log.")
    app.add_typer(apps_app, name="apps", help="Register applications: professional systems and PGO apps.")
    app.add_typer(people_app, name="people", help="Register people who may log in.")


_mount_subcommands()


def _mount_ops() -> None:
    from hub.ops.cli import backup, keys_app, restore

    app.command("backup")(backup)
    app.command("restore")(restore)
    app.add_typer(keys_app, name="keys")


def _mount_orgs() -> None:
    from hub.access.orgs_cli import orgs_app

    app.add_typer(orgs_app, name="orgs", help="The organisation registry (kinds, types) access decisions trust.")


_mount_orgs()


@app.command()
def serve(
    host: str = typer.Option(None, help="Interface to listen on (HUB_HOST)."),
    port: int = typer.Option(None, help="Port (HUB_PORT)."),
    demo: bool = typer.Option(None, "--demo/--no-demo", help="Load the demo network into an empty database."),
    workers: int = typer.Option(None, help="Worker processes (HUB_WORKERS)."),
) -> None:
    """Run the hub (FHIR base at http://HOST:PORT/fhir)."""
    import os

    for name, value in (("HUB_HOST", host), ("HUB_PORT", port), ("HUB_DEMO", demo), ("HUB_WORKERS", workers)):
        if value is not None:
            os.environ[name] = str(value).lower() if isinstance(value, bool) else str(value)
    get_settings.cache_clear()
    settings = get_settings()
    from hub.ops.safety import production_problems

    problems = production_problems(settings)
    if problems:
        for line in problems:
            typer.echo(f"refusing to start: {line}", err=True)
        raise typer.Exit(2)
    from hub.ops.serve import run

    typer.echo(f"Zorgnet Hub on {settings.fhir_base}  (database: {_safe_url(settings)}, workers: {settings.workers})")
    record_serving(settings)
    run(settings)


@app.command()
def worker(
    poll: float = typer.Option(None, help="Seconds between looks for work when idle (HUB_EVENTS_POLL_SECONDS)."),
) -> None:
    """Deliver notifications: fan out the outbox and send to subscribers until stopped (SIGTERM/SIGINT).
    Run as many as you like against one PostgreSQL; each subscription is delivered by one at a time."""
    from hub.events.worker_main import run_worker

    settings = get_settings()
    if poll is not None:
        settings = settings.model_copy(update={"events_poll_seconds": poll})
    logging.basicConfig(level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    asyncio.run(run_worker(settings))


@db_app.command("upgrade")
def db_upgrade(revision: str = typer.Argument("head")) -> None:
    """Apply Alembic migrations to HUB_DATABASE_URL."""
    from hub.store.migrate import upgrade

    settings = serving_settings()
    upgrade(settings.database_url, revision)
    typer.echo(f"Database at {_safe_url(settings)} is at {revision}.")


@db_app.command("ping")
def db_ping(timeout: float = typer.Option(5.0, help="Seconds to wait for the database.")) -> None:
    """Exit 0 when HUB_DATABASE_URL answers ``SELECT 1`` (a probe for processes without HTTP)."""
    from hub.ops.probe import ping

    ok, message = asyncio.run(ping(get_settings().database_url, timeout))
    typer.echo(message, err=not ok)
    if not ok:
        raise typer.Exit(1)


@db_app.command("reindex")
def db_reindex(batch: int = typer.Option(500, help="Resources per transaction.")) -> None:
    """Rebuild every search index row from the stored resources (after search parameters change)."""
    from hub.audit.cli import require_database

    settings = serving_settings()
    require_database(settings.database_url)
    count = asyncio.run(_reindex_all(settings, batch))
    typer.echo(f"Reindexed {count} resources.")


async def _reindex_all(settings: Settings, batch: int) -> int:
    """Reindex with the app's own indexer (the search parameters the app serves)."""
    from hub.app import build_services
    from hub.store.db import Database
    from hub.store.reindex import reindex

    db = Database(settings.database_url)
    try:
        return await reindex(db, build_services(settings, db).repo.indexer, batch)
    finally:
        await db.dispose()


@app.command()
def token(
    as_: str = typer.Option(
        ...,
        "--as",
        help="admin | client:<BSN> | org:<URA>[:practitioner:<UZI>] | person:<id>:for:<BSN> | system:<name>",
    ),
    scope: list[str] = typer.Option(None, "--scope", help="Narrow the scopes (repeatable)."),
    lifetime: int = typer.Option(3600, min=1, max=86400, help="Lifetime in seconds (default one hour)."),
) -> None:
    """Print a signed access token for anyone (development and tests only; refused in production).

    The token is signed with the keys under HUB_VAR_DIR and issued for the base URL of the hub that
    was last started there (``hub serve`` records it), so it works whatever port that hub runs on.
    The issuer and expiry go to standard error; standard output holds only the token.
    """
    import time

    from hub.access.issuing import token_for
    from hub.access.wiring import auth_config

    settings = serving_settings()
    if settings.environment == "production":
        typer.echo("hub token is for development and tests, not for production.", err=True)
        raise typer.Exit(2)
    try:
        config = auth_config(settings)
        signed = token_for(as_, config, scopes=scope or None, lifetime=lifetime)
    except ValueError as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(2) from None
    expires = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(time.time() + lifetime))
    typer.echo(f"issuer {config.issuer}, audience {config.audience}, expires {expires}", err=True)
    typer.echo(signed)


@app.command()
def demo() -> None:
    """Load the demo care network into the database (if it is empty)."""
    from hub.demo import load_demo_standalone

    loaded = asyncio.run(load_demo_standalone(get_settings()))
    typer.echo("Demo network loaded." if loaded else "Database not empty; demo not loaded.")


def _safe_url(settings: Settings) -> str:
    from sqlalchemy.engine import make_url

    return make_url(settings.database_url).render_as_string(hide_password=True)


_mount_ops()


def main() -> None:
    """The console script: settings errors are one line each and exit 2, never a traceback."""
    from pydantic import ValidationError

    try:
        app()
    except ValidationError as exc:
        for error in exc.errors():
            where = ".".join(str(p) for p in error.get("loc", ())) or "settings"
            typer.echo(f"invalid configuration ({where}): {error.get('msg')}", err=True)
        raise SystemExit(2) from None


if __name__ == "__main__":
    main()
