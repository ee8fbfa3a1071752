"""A live hub (``hub serve`` subprocess, SQLite and PostgreSQL) with the gemeente adapter registered."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import pytest_asyncio

from adapters.common.auth import ClientCredentials, load_private_key
from adapters.common.client import HubClient
from adapters.gemeente.config import GemeenteSettings
from tests.adapters.registration import Registered, register_system_app
from tests.api.live import LiveHub, live_hub
from tests.conftest import throwaway_database

DATA = Path(__file__).resolve().parents[1] / "data" / "iwmo"
GEMEENTE_URA = "00045678"
PROVIDER_URA = "00034567"


@dataclass
class LiveNetwork:
    hub: LiveHub
    adapter: Registered
    work: Path

    def settings(self, state: Path | None = None) -> GemeenteSettings:
        return GemeenteSettings(
            hub_base=self.hub.base,
            client_id=self.adapter.client_id,
            private_key=self.adapter.key_file,
            gemeente_code="0384",
            ura=GEMEENTE_URA,
            name="Gemeente Rivierstad, Wmo-team",
            state=state or self.work / f"state-{uuid.uuid4().hex[:8]}.sqlite",
        )

    def client(self) -> HubClient:
        s = self.settings()
        creds = ClientCredentials(s.client_id, load_private_key(s.private_key), s.resolved_token_url())
        return HubClient(s.hub_base, creds)

    def as_org(self, ura: str) -> httpx.AsyncClient:
        """Someone else in the network (a provider's system), with a token from ``hub token``."""
        token = self.hub.token(f"org:{ura}")
        return httpx.AsyncClient(base_url=self.hub.base, headers={"Authorization": f"Bearer {token}"}, timeout=30)


@contextmanager
def gemeente_network(backend: str, work: Path) -> Iterator[LiveNetwork]:
    """A live hub on a database of its own, with the gemeente adapter registered."""
    with throwaway_database(backend, work) as url, live_hub(url, work) as hub:
        registered = register_system_app(hub.env, work, "gemeente-rivierstad", GEMEENTE_URA)
        yield LiveNetwork(hub, registered, work)


@pytest.fixture(scope="session")
def live_network(backend: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveNetwork]:
    """The network the gemeente tests share. A test that loads hundreds of clients has one of its own
    (:func:`gemeente_network`): the rules tests compare snapshots of everything the adapter sees."""
    with gemeente_network(backend, tmp_path_factory.mktemp(f"gemeente-{backend}")) as network:
        yield network


@pytest_asyncio.fixture(loop_scope="session")
async def hub_client(live_network: LiveNetwork) -> AsyncIterator[HubClient]:
    client = live_network.client()
    try:
        yield client
    finally:
        await client.aclose()
