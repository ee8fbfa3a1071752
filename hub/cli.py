"""The ``hub`` command: serve, db upgrade/reindex, demo, token."""

from __future__ import annotations

import asyncio
import logging

import typer

from hub.settings import Settings, get_settings

app = typer.Typer(help="Zorgnet Hub: a FHIR R4 care-network hub.", no_args_is_help=True, add_completion=False)
db_app = typer.Typer(help="Database schema and indexes.", no_args_is_help=True)
app.add_typer(db_app, name="db")


def _mount_audit() -> None:
    from hub.audit.cli import audit_app

    app.add_typer(audit_app, name="audit", help="Verify and export the tamper-evident audit log.")


_mount_audit()


@app.command()
def serve(
    host: str = typer.Option(None, help="Interface to listen on (HUB_HOST)."),
    port: int = typer.Option(None, help="Port (HUB_PORT)."),
    demo: bool = typer.Option(None, "--demo/--no-demo", help="Load the demo network into an empty database."),
    workers: int = typer.Option(None, help="Worker processes (HUB_WORKERS)."),
) -> None:
    """Run the hub (FHIR base at http://HOST:PORT/fhir)."""
    import os

    import uvicorn

    for name, value in (("HUB_HOST", host), ("HUB_PORT", port), ("HUB_DEMO", demo), ("HUB_WORKERS", workers)):
        if value is not None:
            os.environ[name] = str(value).lower() if isinstance(value, bool) else str(value)
    get_settings.cache_clear()
    settings = get_settings()
    logging.basicConfig(level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    typer.echo(f"Zorgnet Hub on {settings.fhir_base}  (database: {_safe_url(settings)})")
    uvicorn.run(
        "hub.app:create_app",
        factory=True,
        host=settings.host,
        port=settings.port,
        workers=settings.workers,
        log_level=settings.log_level,
        access_log=False,
        proxy_headers=True,
    )


@db_app.command("upgrade")
def db_upgrade(revision: str = typer.Argument("head")) -> None:
    """Apply Alembic migrations to HUB_DATABASE_URL."""
    from hub.store.migrate import upgrade

    settings = get_settings()
    upgrade(settings.database_url, revision)
    typer.echo(f"Database at {_safe_url(settings)} is at {revision}.")


@db_app.command("reindex")
def db_reindex(batch: int = typer.Option(500, help="Resources per transaction.")) -> None:
    """Rebuild every search index row from the stored resources (after search parameters change)."""
    from hub.store.reindex import reindex_all

    count = asyncio.run(reindex_all(get_settings(), batch))
    typer.echo(f"Reindexed {count} resources.")


@app.command()
def token(
    as_: str = typer.Option(..., "--as", help="admin | client:<BSN> | org:<URA>[:practitioner:<UZI>] | "
                                           "person:<id>:for:<BSN> | system:<name>"),
    scope: list[str] = typer.Option(None, "--scope", help="Narrow the scopes (repeatable)."),
    lifetime: int = typer.Option(None, help="Lifetime in seconds."),
) -> None:
    """Print a signed access token for anyone, in the embedded mode (uses the hub's own keys)."""
    from hub.access.authserver import token_for
    from hub.access.wiring import auth_config

    settings = get_settings()
    if settings.environment == "production":
        typer.echo("hub token is for the embedded mode and tests, not for production.", err=True)
        raise typer.Exit(2)
    try:
        typer.echo(token_for(as_, auth_config(settings), scopes=scope or None, lifetime=lifetime))
    except ValueError as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(2) from None


@app.command()
def demo() -> None:
    """Load the demo care network into the database (if it is empty)."""
    from hub.demo import load_demo_standalone

    loaded = asyncio.run(load_demo_standalone(get_settings()))
    typer.echo("Demo network loaded." if loaded else "Database not empty; demo not loaded.")


def _safe_url(settings: Settings) -> str:
    from sqlalchemy.engine import make_url

    return make_url(settings.database_url).render_as_string(hide_password=True)


def main() -> None:
    app()


if __name__ == "__main__":
    main()
