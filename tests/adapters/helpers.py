"""Shared helpers of the gemeente adapter tests: a processor on a live hub, hub snapshots."""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any

from lxml import etree

from adapters.common.client import HubClient
from adapters.gemeente.processor import Processor
from adapters.gemeente.state import State
from tests.adapters.conftest import LiveNetwork

SNAPSHOT_TYPES = ("Patient", "RelatedPerson", "ServiceRequest", "CarePlan", "CareTeam", "Organization")
_numbers = itertools.count(700000)


def fresh_number() -> str:
    return str(next(_numbers))


def processor(network: LiveNetwork, hub: HubClient, state: Path | None = None) -> Processor:
    settings = network.settings(state)
    return Processor(hub, State(settings.state), settings)


async def snapshot(hub: HubClient) -> dict[str, str]:
    """Every resource the adapter can see, with its version: equal snapshots mean nothing changed."""
    out: dict[str, str] = {}
    for res_type in SNAPSHOT_TYPES:
        for r in await hub.search(res_type, {"_count": "200"}):
            out[f"{r['resourceType']}/{r['id']}"] = str(r["meta"]["versionId"])
    return out


def retour_codes_at(retour: bytes) -> dict[str, list[str]]:
    """RetourCodes by the local name of the element that carries them (``Header``, ``ToegewezenProduct``...)."""
    root = etree.fromstring(retour)
    out: dict[str, list[str]] = {}
    for block in root.iter():
        if isinstance(block.tag, str) and etree.QName(block).localname == "RetourCodes":
            owner = etree.QName(block.getparent()).localname
            out.setdefault(owner, []).extend(c.text or "" for c in block)
    return out


def one(resources: list[dict[str, Any]], res_type: str) -> dict[str, Any]:
    found = [r for r in resources if r["resourceType"] == res_type]
    assert len(found) == 1, f"expected one {res_type}, found {len(found)}"
    return found[0]
