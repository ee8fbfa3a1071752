"""WMO301s offered together are applied in groups (one read, one transaction per group); each keeps its
own outcome and retour, messages about one client stay in order, and refused ones change nothing."""

from __future__ import annotations

import asyncio

from adapters.common.client import HubClient
from adapters.gemeente import codes as c
from adapters.gemeente.batching import GroupCommit
from tests.adapters.conftest import LiveNetwork
from tests.adapters.helpers import fresh_number, processor, retour_codes_at
from tests.adapters.iwmo_builders import Client, Product, valid_bsns, wmo301

BSNS = iter(valid_bsns(100, start=456700000))


async def test_group_commit_groups_what_arrives_together_and_keeps_order_per_key() -> None:
    applied: list[list[str]] = []

    async def apply(items: list[str]) -> list[str]:
        applied.append(items)
        await asyncio.sleep(0.01)
        return [f"done {i}" for i in items]

    groups: GroupCommit[str, str] = GroupCommit(apply, max_size=4, max_groups=1)
    keys = {"a1": "a", "b1": "b", "a2": "a", "c1": "c", "d1": "d", "e1": "e", "a3": "a", "f1": "f"}
    results = await asyncio.gather(*(groups.submit(item, frozenset({key})) for item, key in keys.items()))
    assert results == [f"done {i}" for i in keys]
    assert applied[0] == ["a1"]  # the first goes alone, at once
    for group in applied:
        assert len({keys[i] for i in group}) == len(group)  # never two items with a common key in one group
    order = [i for group in applied for i in group]
    assert [i for i in order if keys[i] == "a"] == ["a1", "a2", "a3"]
    assert max(len(g) for g in applied) == 4 and groups.sizes == [len(g) for g in applied]


async def test_group_commit_failure_reaches_every_item_of_the_group() -> None:
    async def apply(items: list[int]) -> list[int]:
        await asyncio.sleep(0)
        if 3 in items:
            raise RuntimeError("hub down")
        return items

    groups: GroupCommit[int, int] = GroupCommit(apply, max_size=10, max_groups=1)
    results = await asyncio.gather(*(groups.submit(i, frozenset({str(i)})) for i in range(6)), return_exceptions=True)
    assert results[0] == 0  # went alone before the others arrived
    assert all(isinstance(r, RuntimeError) for r in results[1:])  # 1..5 were one group with 3 in it
    assert await groups.submit(7, frozenset({"7"})) == 7  # and the next group runs


async def test_messages_offered_together_each_get_their_own_outcome(
    live_network: LiveNetwork, hub_client: HubClient
) -> None:
    proc = processor(live_network, hub_client)
    held_number, held_bsn = fresh_number(), next(BSNS)
    newer = wmo301(f"N{held_number}", Client(bsn=held_bsn), [Product(held_number, datum="2025-02-01")])
    assert (await proc.process(newer)).status == "accepted"

    fresh = [(fresh_number(), next(BSNS)) for _ in range(20)]
    good = [wmo301(f"F{n}", Client(bsn=b), [Product(n)]) for n, b in fresh]
    clash = wmo301(f"X{held_number}", Client(bsn=next(BSNS)), [Product(held_number, datum="2025-03-01")])
    older = wmo301(f"O{held_number}", Client(bsn=held_bsn), [Product(held_number, datum="2025-01-01")])
    broken = wmo301(
        f"E{fresh_number()}", Client(bsn=next(BSNS)), [Product(fresh_number(), ingang="2025-06-01", eind="2025-01-01")]
    )
    same_client, first, second = next(BSNS), fresh_number(), fresh_number()
    twice = [
        wmo301(f"S{first}", Client(bsn=same_client), [Product(first)]),
        wmo301(f"S{second}", Client(bsn=same_client), [Product(second, ingang="2026-01-01", eind=None)]),
    ]
    offered = [*good[:10], clash, *twice[:1], older, broken, *good[10:], *twice[1:]]
    results = await asyncio.gather(*(proc.process(m) for m in offered))
    by_message = dict(zip(offered, results, strict=True))

    assert all(by_message[m].status == "accepted" for m in [*good, *twice]), [r.reasons for r in results]
    assert retour_codes_at(by_message[clash].retour or b"")["ToegewezenProduct"] == ["9332"]
    assert retour_codes_at(by_message[older].retour or b"")["ToegewezenProduct"] == ["9074"]
    assert by_message[broken].status == "rejected"
    assert max(proc._groups.sizes) > 1, proc._groups.sizes
    retour_ids = [r.retour for r in results if r.retour]
    assert len(set(retour_ids)) == len(retour_ids)

    found = await hub_client.search(
        "ServiceRequest", [("identifier", ",".join(f"{c.TOEWIJZING_SYSTEM}|{n}" for n, _ in fresh)), ("_count", "100")]
    )
    assert len(found) == 20
    held = await hub_client.search("ServiceRequest", {"identifier": f"{c.TOEWIJZING_SYSTEM}|{held_number}"})
    assert len(held) == 1 and held[0]["meta"]["versionId"] == "1"  # neither the clash nor the older one applied
    patients = await hub_client.search("Patient", {"identifier": f"{c.BSN_SYSTEM}|{same_client}"})
    assert len(patients) == 1  # the client's second message saw the first one's Patient
    both = await hub_client.search("ServiceRequest", {"subject": f"Patient/{patients[0]['id']}"})
    assert sorted(s["identifier"][0]["value"] for s in both) == sorted([first, second])
