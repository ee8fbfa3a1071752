"""``hub apps …`` and ``hub people …``: registering applications and people from the command line.

The same functions as the admin REST endpoints (:mod:`hub.access.registration`); every command reads
the settings ``hub serve`` reads (``HUB_*``, ``./var``), prints JSON on standard output, and exits 2
with one line on standard error when it cannot do what was asked (a missing database included).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import typer

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncConnection

apps_app = typer.Typer(help="Applications: professional systems and PGO apps.", no_args_is_help=True)
people_app = typer.Typer(help="People who may log in (clients, mantelzorgers).", no_args_is_help=True)

T = TypeVar("T")


def fail(message: str) -> typer.Exit:
    typer.echo(message, err=True)
    return typer.Exit(2)


def run_in_transaction(work: Callable[[AsyncConnection], Awaitable[T]]) -> T:
    """Run ``work`` in one write transaction on the hub's database (which must exist already)."""
    from hub.access.registration import RegistrationError
    from hub.settings import serving_settings
    from hub.store.db import Database
    from hub.store.migrate import database_problem

    settings = serving_settings()

    async def go() -> T:
        problem = await database_problem(settings.database_url)
        if problem is not None:
            raise RegistrationError(problem)
        db = Database(settings.database_url, pool_size=1)
        try:
            async with db.write() as conn:
                return await work(conn)
        finally:
            await db.dispose()

    try:
        return asyncio.run(go())
    except RegistrationError as exc:
        raise fail(str(exc)) from None


def emit(value: Any) -> None:
    typer.echo(json.dumps(value, indent=2, ensure_ascii=False))


def _read_key_material(public_key: Path | None, jwks: Path | None) -> dict[str, Any] | None:
    from hub.access.registration import RegistrationError, jwks_from_public_key

    try:
        if public_key is not None:
            return jwks_from_public_key(public_key.read_bytes())
        if jwks is not None:
            loaded = json.loads(jwks.read_text())
            return loaded if isinstance(loaded, dict) else {"keys": loaded}
    except OSError as exc:
        raise fail(f"cannot read {exc.filename}: {exc.strerror}") from None
    except (ValueError, RegistrationError) as exc:
        raise fail(str(exc)) from None
    return None


@apps_app.command("add")
def apps_add(
    system: bool = typer.Option(False, "--system", help="A professional system (client_credentials, private_key_jwt)."),
    pgo: bool = typer.Option(False, "--pgo", help="A PGO app (authorization code + PKCE, public client)."),
    name: str = typer.Option(..., help="Display name, shown to clients and in the audit log."),
    ura: str = typer.Option(None, help="System: the URA of the organisation it acts for."),
    public_key: Path = typer.Option(None, "--public-key", help="System: its public key (PEM file)."),
    jwks: Path = typer.Option(None, "--jwks", help="System: its public JWK Set (JSON file)."),
    jwks_url: str = typer.Option(None, "--jwks-url", help="System: where it publishes its JWK Set."),
    redirect_uri: list[str] = typer.Option(None, "--redirect-uri", help="PGO: an exact redirect URI (repeatable)."),
    client_id: str = typer.Option(None, "--client-id", help="Choose the client id (default: generated)."),
) -> None:
    """Register an application; prints {"client_id": …, "kind": …, …}."""
    from hub.access.registration import add_pgo, add_system

    if system == pgo:
        raise fail("say what it is: exactly one of --system and --pgo")
    if system:
        if not ura:
            raise fail("--system needs --ura (the organisation it acts for)")
        if sum(x is not None for x in (public_key, jwks, jwks_url)) != 1:
            raise fail("--system needs exactly one of --public-key, --jwks, --jwks-url")
        key_set = _read_key_material(public_key, jwks)
        view = run_in_transaction(
            lambda conn: add_system(conn, name=name, ura=ura, jwks=key_set, jwks_url=jwks_url, client_id=client_id)
        )
    else:
        view = run_in_transaction(
            lambda conn: add_pgo(conn, name=name, redirect_uris=redirect_uri or [], client_id=client_id)
        )
    emit(view.as_json())


@apps_app.command("list")
def apps_list() -> None:
    """All registered applications."""
    from hub.access.registration import list_clients

    emit([v.as_json() for v in run_in_transaction(list_clients)])


@apps_app.command("disable")
def apps_disable(client_id: str) -> None:
    """Disable an application: its next token request is refused."""
    from hub.access.registration import set_client_active

    emit(run_in_transaction(lambda conn: set_client_active(conn, client_id, False)).as_json())


@apps_app.command("enable")
def apps_enable(client_id: str) -> None:
    """Enable a disabled application again."""
    from hub.access.registration import set_client_active

    emit(run_in_transaction(lambda conn: set_client_active(conn, client_id, True)).as_json())


@apps_app.command("rotate")
def apps_rotate(
    client_id: str,
    public_key: Path = typer.Option(None, "--public-key", help="The new public key (PEM file)."),
    jwks: Path = typer.Option(None, "--jwks", help="The new public JWK Set (JSON file)."),
    keep_old: bool = typer.Option(False, "--keep-old", help="Keep the old keys too (an overlap period)."),
) -> None:
    """Replace a system's keys."""
    from hub.access.registration import rotate_keys

    if (public_key is None) == (jwks is None):
        raise fail("give exactly one of --public-key and --jwks")
    key_set = _read_key_material(public_key, jwks)
    assert key_set is not None
    emit(run_in_transaction(lambda conn: rotate_keys(conn, client_id, key_set, keep_old=keep_old)).as_json())


@people_app.command("add")
def people_add(
    person_id: str = typer.Option(..., "--id", help="The login name (what the identity provider says)."),
    name: str = typer.Option(..., help="Full name, shown to the client."),
    bsn: str = typer.Option(None, help="The person's own BSN, when they are a client themself."),
) -> None:
    """Register a person who may log in; a mantelzorger's rights come from the client's delegations."""
    from hub.access.registration import add_person

    emit(run_in_transaction(lambda conn: add_person(conn, person_id=person_id, name=name, bsn=bsn)).as_json())


@people_app.command("list")
def people_list() -> None:
    """All registered people."""
    from hub.access.registration import list_people

    emit([v.as_json() for v in run_in_transaction(list_people)])


@people_app.command("disable")
def people_disable(person_id: str) -> None:
    """A disabled person can no longer log in."""
    from hub.access.registration import set_person_active

    emit(run_in_transaction(lambda conn: set_person_active(conn, person_id, False)).as_json())


__all__ = ["apps_app", "fail", "people_app", "run_in_transaction"]
