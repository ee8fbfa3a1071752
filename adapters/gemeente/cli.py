"""``adapter-gemeente``: run the file drop, serve the HTTP inbox, or poll the hub once for outbound."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import typer

from adapters.common.auth import ClientCredentials, load_private_key
from adapters.common.client import HubClient
from adapters.gemeente.config import GemeenteSettings
from adapters.gemeente.filedrop import FileDrop
from adapters.gemeente.outbound import Outbound
from adapters.gemeente.processor import Processor
from adapters.gemeente.state import State

app = typer.Typer(
    help="Gemeente adapter: iWmo 3.2 messages in and out of the Zorgnet Hub.",
    no_args_is_help=True,
    add_completion=False,
)


def _settings(hub: str | None, client_id: str | None, key: Path | None, state: Path | None) -> GemeenteSettings:
    overrides = {
        k: v
        for k, v in {"hub_base": hub, "client_id": client_id, "private_key": key, "state": state}.items()
        if v is not None
    }
    return GemeenteSettings(**overrides)  # type: ignore[arg-type]


@asynccontextmanager
async def _wired(settings: GemeenteSettings) -> AsyncIterator[tuple[HubClient, State, Processor]]:
    if not settings.client_id:
        raise typer.BadParameter("no client id: register the adapter (hub apps add --system) and pass --client-id")
    credentials = ClientCredentials(
        settings.client_id, load_private_key(settings.private_key), settings.resolved_token_url()
    )
    state = State(settings.state)
    hub = HubClient(settings.hub_base, credentials)
    try:
        yield hub, state, Processor(hub, state, settings)
    finally:
        await hub.aclose()
        state.close()


HubOpt = typer.Option(None, "--hub", help="The hub's FHIR base (ADAPTER_GEMEENTE_HUB_BASE).")
ClientOpt = typer.Option(None, "--client-id", help="The adapter's registered client id.")
KeyOpt = typer.Option(None, "--key", help="The adapter's private key (PEM).")
StateOpt = typer.Option(None, "--state", help="The adapter's state file (SQLite).")


@app.command()
def run(
    inbox: Path = typer.Option(..., help="Folder to watch for iWmo messages."),
    outbox: Path = typer.Option(..., help="Folder for retour and outbound messages."),
    once: bool = typer.Option(False, help="Process what is there, poll the hub once, and stop."),
    interval: float = typer.Option(2.0, help="Seconds between inbox scans and hub polls."),
    concurrency: int = typer.Option(
        100, help="Messages in flight at once (one client's stay in order; WMO301s in flight are applied in groups)."
    ),
    hub: str | None = HubOpt,
    client_id: str | None = ClientOpt,
    key: Path | None = KeyOpt,
    state: Path | None = StateOpt,
) -> None:
    """The file drop: inbox -> hub -> outbox, with done/ and failed/ beside the inbox."""
    settings = _settings(hub, client_id, key, state)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")

    async def main() -> None:
        async with _wired(settings) as (client, st, processor):
            drop = FileDrop(processor, inbox, outbox, Outbound(client, st, settings, outbox), concurrency)
            if once:
                stats = await drop.run_once()
                typer.echo(
                    json.dumps(
                        {"done": stats.done, "failed": stats.failed, "deferred": stats.deferred, "sent": stats.sent}
                    )
                )
            else:
                await drop.run(interval)

    asyncio.run(main())


@app.command()
def serve(
    port: int = typer.Option(8090, help="Port of the HTTP inbox."),
    host: str = typer.Option("127.0.0.1", help="Interface to listen on."),
    hub: str | None = HubOpt,
    client_id: str | None = ClientOpt,
    key: Path | None = KeyOpt,
    state: Path | None = StateOpt,
) -> None:
    """The HTTP inbox: POST /wmo with a message, get its retour."""
    import uvicorn

    from adapters.gemeente.web import create_web_app

    settings = _settings(hub, client_id, key, state)

    async def main() -> None:
        async with _wired(settings) as (_client, _state, processor):
            config = uvicorn.Config(create_web_app(processor), host=host, port=port, log_level="warning")
            await uvicorn.Server(config).serve()

    asyncio.run(main())


@app.command()
def outbound(
    outbox: Path = typer.Option(..., help="Folder for outbound messages."),
    hub: str | None = HubOpt,
    client_id: str | None = ClientOpt,
    key: Path | None = KeyOpt,
    state: Path | None = StateOpt,
) -> None:
    """Poll the hub once and write the WMO305/307/315 messages it calls for."""
    settings = _settings(hub, client_id, key, state)

    async def main() -> None:
        async with _wired(settings) as (client, st, _processor):
            written = await Outbound(client, st, settings, outbox).poll()
            typer.echo(json.dumps([str(w.path) for w in written]))

    asyncio.run(main())


def main() -> None:
    app()
