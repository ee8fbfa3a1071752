"""The adapter's HTTP endpoint refuses what it cannot take with a clear OperationOutcome (no hub involved),
and the CLI refuses a bad configuration."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, cast

import httpx

from adapters.wijkverpleging.cli import main
from adapters.wijkverpleging.server import build_app


class NoReceiver:
    """Stands in for the receiver/sender where a request must be refused before reaching either."""

    def __getattr__(self, name: str) -> Any:
        raise AssertionError(f"the endpoint should not have called {name}")


def client() -> httpx.AsyncClient:
    app = build_app(
        cast(Any, NoReceiver()),
        {"ziekenhuis-west": "http://127.0.0.1:9/fhir"},
        cast(Any, NoReceiver()),
        {"vvt-oost": "t" * 24},
    )
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://adapter")


async def test_notifications_that_cannot_be_taken_are_refused() -> None:
    async with client() as http:
        unknown = await http.post("/senders/nobody/Task", json={"resourceType": "Task", "id": "x"})
        assert unknown.status_code == 404 and "nobody" in unknown.json()["issue"][0]["diagnostics"]
        not_json = await http.post("/senders/ziekenhuis-west/Task", content=b"<Task/>")
        assert not_json.status_code == 400 and not_json.json()["resourceType"] == "OperationOutcome"
        not_task = await http.post("/senders/ziekenhuis-west/Task", json={"resourceType": "Patient", "id": "p"})
        assert not_task.status_code == 400 and not_task.json()["issue"][0]["expression"] == ["Task"]


async def test_the_stu3_facade_needs_the_receivers_token() -> None:
    async with client() as http:
        assert (await http.get("/stu3/vvt-oost/Task/1")).status_code == 401
        wrong = await http.get("/stu3/vvt-oost/Task/1", headers={"Authorization": "Bearer " + "x" * 24})
        assert wrong.status_code == 401
        other = await http.get("/stu3/iemand/Task/1", headers={"Authorization": "Bearer " + "t" * 24})
        assert other.status_code == 401
        put = await http.put("/stu3/vvt-oost/Task/1", json={"resourceType": "Task", "id": "1"})
        assert put.status_code == 401


def test_a_bad_configuration_exits_2(tmp_path: Path) -> None:
    config = tmp_path / "adapter.json"
    config.write_text(
        json.dumps(
            {
                "hub_base": "http://hub/fhir",
                "client_id": "c",
                "private_key": "k.pem",
                "state": "s.sqlite",
                "ura": "not-a-ura",
                "senders": [],
            }
        )
    )
    assert main(["mirror", "--config", str(config)]) == 2
