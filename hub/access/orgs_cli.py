"""``hub orgs add | list | disable``: the administrator's side of the organisation registry."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import orjson
import typer

from hub.settings import get_settings

orgs_app = typer.Typer(help="The organisation registry.", no_args_is_help=True)


def _run(work: Callable[[Any], Awaitable[Any]], *, write: bool) -> Any:
    from hub.store.db import Database
    from hub.store.migrate import prepare_database

    settings = get_settings()

    async def main() -> Any:
        db = Database(settings.database_url, pool_size=1)
        try:
            await prepare_database(db, settings)
            async with db.write() if write else db.read() as conn:
                return await work(conn)
        finally:
            await db.dispose()

    return asyncio.run(main())


@orgs_app.command("add")
def add(
    ura: str = typer.Option(..., help="The organisation's URA (8 digits)."),
    name: str = typer.Option("", help="Its name."),
    kind: str = typer.Option("zorgaanbieder", help="zorgaanbieder | gemeente"),
    type_: list[str] = typer.Option(None, "--type", help="Organisation type code, e.g. Z3 (repeatable)."),
) -> None:
    """Register (or change) an organisation; prints it as JSON."""
    from hub.access.organisations import register
    from hub.fhir.errors import FhirError

    try:
        org = _run(lambda conn: register(conn, ura, name=name, kind=kind, types=type_ or ()), write=True)
    except FhirError as exc:
        typer.echo(exc.diagnostics, err=True)
        raise typer.Exit(2) from None
    typer.echo(orjson.dumps(org.as_json()).decode())


@orgs_app.command("list")
def list_() -> None:
    """Every registered organisation, one JSON object per line."""
    from hub.access.organisations import all_organisations

    for org in _run(all_organisations, write=False):
        typer.echo(orjson.dumps(org.as_json()).decode())


@orgs_app.command("disable")
def disable(ura: str) -> None:
    """Disable an organisation (its type no longer counts; no emergency access)."""
    from hub.access.organisations import disable as do_disable
    from hub.fhir.errors import FhirError

    try:
        _run(lambda conn: do_disable(conn, ura), write=True)
    except FhirError as exc:
        typer.echo(exc.diagnostics, err=True)
        raise typer.Exit(1) from None
    typer.echo(f"Organisation {ura} disabled.")
