"""Every operation the CapabilityStatement names has its OperationDefinition served (read and search)."""

from __future__ import annotations

from typing import Any

import httpx

from hub.profiles import load_conformance_package


async def test_capability_operations_are_served(client: httpx.AsyncClient, hub_app: Any) -> None:
    await load_conformance_package(hub_app.state.services)  # as at start-up (the fixture emptied the database)
    capability = (await client.get("/fhir/metadata")).json()
    rest = capability["rest"][0]
    named = {op["definition"] for op in rest.get("operation", [])}
    for entry in rest["resource"]:
        named |= {op["definition"] for op in entry.get("operation", [])}
    assert "http://hl7.org/fhir/uv/bulkdata/OperationDefinition/export" in named
    assert len(named) >= 6
    for url in sorted(named):
        r = await client.get("/fhir/OperationDefinition", params={"url": url})
        assert r.status_code == 200, r.text
        found = [e["resource"] for e in r.json().get("entry", []) if e["search"]["mode"] == "match"]
        assert [d["url"] for d in found] == [url], url
        definition = found[0]
        read = await client.get(f"/fhir/OperationDefinition/{definition['id']}")
        assert read.status_code == 200 and read.json()["url"] == url
        # the definition's code is the operation's name in the CapabilityStatement
        ops = [op for e in [rest, *rest["resource"]] for op in e.get("operation", []) if op["definition"] == url]
        assert {op["name"] for op in ops} == {definition["code"]}
