"""Registration of applications and people: the ``hub apps`` / ``hub people`` commands and the
admin-only ``/admin`` endpoints, on both databases, and what a registered system then does (get a
token with its own key and call the FHIR API)."""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
from joserfc import jwt
from joserfc.jwk import ECKey

JWT_BEARER = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
HUB = str(Path(sys.executable).parent / "hub")


def _cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([HUB, *args], env=env, capture_output=True, text=True, timeout=120)


@pytest.fixture
def cli_env(hub_app: Any) -> dict[str, str]:
    settings = hub_app.state.settings
    return {
        **os.environ,
        "HUB_DATABASE_URL": settings.database_url,
        "HUB_VAR_DIR": str(settings.var_dir),
        "HUB_ENVIRONMENT": "test",
    }


def _assertion(key: ECKey, client_id: str, token_url: str) -> str:
    now = int(time.time())
    claims = {
        "iss": client_id,
        "sub": client_id,
        "aud": token_url,
        "iat": now,
        "exp": now + 120,
        "jti": secrets.token_hex(8),
    }
    return jwt.encode({"alg": "ES256", "kid": key.thumbprint(), "typ": "JWT"}, claims, key)


async def _token(hub_app: Any, key: ECKey, client_id: str) -> httpx.Response:
    token_url = f"{hub_app.state.settings.base_url}/auth/token"
    transport = httpx.ASGITransport(app=hub_app)
    async with httpx.AsyncClient(transport=transport, base_url="http://hub.test") as c:
        return await c.post(
            "/auth/token",
            data={
                "grant_type": "client_credentials",
                "client_assertion_type": JWT_BEARER,
                "client_assertion": _assertion(key, client_id, token_url),
                "scope": "system/*.rs",
            },
        )


async def test_cli_registers_a_system_that_then_gets_a_token_and_reads(
    hub_app: Any, cli_env: dict[str, str], tmp_path: Path, client: httpx.AsyncClient
) -> None:
    key = ECKey.generate_key("P-256", private=True)
    pem = tmp_path / "ecd.pub.pem"
    pem.write_bytes(key.as_pem(private=False))
    client_id = f"ecd-{uuid.uuid4().hex[:8]}"
    out = _cli(
        cli_env,
        "apps",
        "add",
        "--system",
        "--name",
        "ECD Zorg Dichtbij",
        "--ura",
        "00023456",
        "--public-key",
        str(pem),
        "--client-id",
        client_id,
    )
    assert out.returncode == 0, out.stderr
    view = json.loads(out.stdout)
    assert view["client_id"] == client_id and view["kind"] == "system"
    assert view["organisation_ura"] == "00023456" and view["key_ids"] == [key.thumbprint()]

    r = await _token(hub_app, key, client_id)
    assert r.status_code == 200, r.text
    token = r.json()["access_token"]
    transport = httpx.ASGITransport(app=hub_app)
    async with httpx.AsyncClient(
        transport=transport, base_url="http://hub.test", headers={"Authorization": f"Bearer {token}"}
    ) as c:
        assert (await c.get("/fhir/Patient")).status_code == 200

    # the same id twice is refused, in one line, exit 2
    again = _cli(
        cli_env,
        "apps",
        "add",
        "--system",
        "--name",
        "x",
        "--ura",
        "00023456",
        "--public-key",
        str(pem),
        "--client-id",
        client_id,
    )
    assert again.returncode == 2 and "already registered" in again.stderr and again.stderr.count("\n") == 1

    # disabled: the next token request is refused
    assert _cli(cli_env, "apps", "disable", client_id).returncode == 0
    r = await _token(hub_app, key, client_id)
    assert r.status_code == 401 and r.json()["error"] == "invalid_client"

    listed = json.loads(_cli(cli_env, "apps", "list").stdout)
    assert any(a["client_id"] == client_id and a["active"] is False for a in listed)


async def test_cli_rotation_replaces_the_key(hub_app: Any, cli_env: dict[str, str], tmp_path: Path) -> None:
    old, new = (ECKey.generate_key("P-256", private=True) for _ in range(2))
    (tmp_path / "old.pem").write_bytes(old.as_pem(private=False))
    (tmp_path / "new.pem").write_bytes(new.as_pem(private=False))
    client_id = f"gp-{uuid.uuid4().hex[:8]}"
    assert (
        _cli(
            cli_env,
            "apps",
            "add",
            "--system",
            "--name",
            "HIS",
            "--ura",
            "00012345",
            "--public-key",
            str(tmp_path / "old.pem"),
            "--client-id",
            client_id,
        ).returncode
        == 0
    )
    assert (await _token(hub_app, old, client_id)).status_code == 200
    out = _cli(cli_env, "apps", "rotate", client_id, "--public-key", str(tmp_path / "new.pem"))
    assert out.returncode == 0, out.stderr
    assert (await _token(hub_app, new, client_id)).status_code == 200
    assert (await _token(hub_app, old, client_id)).status_code == 401


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["apps", "add", "--name", "x"], "exactly one of --system and --pgo"),
        (["apps", "add", "--system", "--name", "x"], "--ura"),
        (["apps", "add", "--system", "--name", "x", "--ura", "0001234"], "exactly one of"),
        (["apps", "add", "--pgo", "--name", "x"], "redirect"),
        (["apps", "add", "--pgo", "--name", "x", "--redirect-uri", "http://evil.example/cb"], "loopback"),
        (
            [
                "apps",
                "add",
                "--system",
                "--name",
                "x",
                "--ura",
                "１２３４５６７８",
                "--jwks-url",
                "https://ecd.example/jwks",
            ],
            "URA must be 8 digits",
        ),
        (["people", "add", "--id", "bsn:1", "--name", "x"], "person id"),
        (["apps", "disable", "nobody-here"], "no registered client"),
    ],
)
def test_cli_refuses_bad_registrations_in_one_line(cli_env: dict[str, str], args: list[str], message: str) -> None:
    out = _cli(cli_env, *args)
    assert out.returncode == 2, out
    assert message in out.stderr
    assert "Traceback" not in out.stderr


def test_cli_refuses_a_private_key(cli_env: dict[str, str], tmp_path: Path) -> None:
    key = ECKey.generate_key("P-256", private=True)
    (tmp_path / "private.pem").write_bytes(key.as_pem(private=True))
    out = _cli(
        cli_env,
        "apps",
        "add",
        "--system",
        "--name",
        "x",
        "--ura",
        "00012345",
        "--public-key",
        str(tmp_path / "private.pem"),
    )
    assert out.returncode == 2 and "PUBLIC key" in out.stderr


def test_commands_on_a_missing_database_say_so_and_create_nothing(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere" / "hub.db"
    env = {**os.environ, "HUB_DATABASE_URL": f"sqlite+aiosqlite:///{missing}", "HUB_VAR_DIR": str(tmp_path / "v")}
    for args in (["apps", "list"], ["people", "list"], ["audit", "verify"]):
        out = _cli(env, *args)
        assert out.returncode == 2, (args, out)
        assert "no hub database" in out.stderr and out.stderr.count("\n") == 1, out.stderr
    assert not missing.exists() and not missing.parent.exists()


async def test_admin_api_registers_apps_and_people(hub_app: Any, client_as: Any) -> None:
    admin = client_as("admin")
    pgo_id = f"pgo-{uuid.uuid4().hex[:8]}"
    r = await admin.post(
        "/admin/apps",
        json={
            "kind": "pgo",
            "name": "Mijn Zorgnet",
            "redirect_uris": ["http://127.0.0.1:8081/callback"],
            "client_id": pgo_id,
        },
    )
    assert r.status_code == 201, r.text
    assert r.json()["kind"] == "pgo" and r.json()["redirect_uris"] == ["http://127.0.0.1:8081/callback"]

    key = ECKey.generate_key("P-256", private=True)
    r = await admin.post(
        "/admin/apps",
        json={
            "kind": "system",
            "name": "Wmo-systeem",
            "ura": "00045678",
            "public_key_pem": key.as_pem(private=False).decode(),
        },
    )
    assert r.status_code == 201, r.text
    system_id = r.json()["client_id"]
    assert system_id.startswith("sys-")
    assert (await _token(hub_app, key, system_id)).status_code == 200

    person_id = f"p-{uuid.uuid4().hex[:8]}"
    r = await admin.post("/admin/people", json={"person_id": person_id, "name": "Marieke Smit"})
    assert r.status_code == 201 and r.json() == {
        "person_id": person_id,
        "name": "Marieke Smit",
        "bsn": None,
        "active": True,
    }
    assert any(p["person_id"] == person_id for p in (await admin.get("/admin/people")).json())
    r = await admin.post(f"/admin/people/{person_id}/disable")
    assert r.status_code == 200 and r.json()["active"] is False

    r = await admin.post(f"/admin/apps/{system_id}/disable")
    assert r.status_code == 200 and r.json()["active"] is False
    assert (await _token(hub_app, key, system_id)).status_code == 401


@pytest.mark.parametrize(
    ("body", "where"),
    [
        ({"kind": "robot", "name": "x"}, "kind"),
        ({"kind": "system", "name": "x"}, "ura"),
        ({"kind": "pgo", "name": "x", "redirect_uris": "http://127.0.0.1/cb"}, "redirect_uris"),
        ({"kind": "system", "name": "x", "ura": "00012345", "public_key_pem": "not a key"}, None),
        ({"name": 5}, "kind"),
    ],
)
async def test_admin_api_answers_bad_requests_with_an_outcome(
    client_as: Any, body: dict[str, Any], where: str | None
) -> None:
    r = await client_as("admin").post("/admin/apps", json=body)
    assert r.status_code == 400, r.text
    issue = r.json()["issue"][0]
    assert r.json()["resourceType"] == "OperationOutcome" and issue["diagnostics"]
    if where:
        assert issue.get("expression") == [where]


async def test_admin_api_is_for_admins_only_and_refusals_are_audited(hub_app: Any, client_as: Any) -> None:
    for spec in ("org:00012345", "client:999993653", "person:marieke:for:999993653"):
        r = await client_as(spec).get("/admin/apps")
        assert r.status_code == 403 and r.json()["resourceType"] == "OperationOutcome"
    r = await client_as(None).post("/admin/people", json={"person_id": "x1", "name": "x"})
    assert r.status_code == 401
    audit = client_as("admin")
    r = await audit.get("/fhir/AuditEvent", params={"outcome": "4", "_count": "200"})
    assert r.status_code == 200
    ops = [e["resource"] for e in r.json().get("entry", [])]
    assert any("list-apps" in json.dumps(e) for e in ops)


async def test_a_disabled_person_cannot_log_in(hub_app: Any, client_as: Any) -> None:
    person_id = f"p-{uuid.uuid4().hex[:8]}"
    admin = client_as("admin")
    assert (await admin.post("/admin/people", json={"person_id": person_id, "name": "Els Mulder"})).status_code == 201
    pgo_id = f"pgo-{uuid.uuid4().hex[:8]}"
    assert (
        await admin.post(
            "/admin/apps",
            json={"kind": "pgo", "name": "PGO", "client_id": pgo_id, "redirect_uris": ["http://127.0.0.1:9/cb"]},
        )
    ).status_code == 201
    params = {
        "response_type": "code",
        "client_id": pgo_id,
        "redirect_uri": "http://127.0.0.1:9/cb",
        "scope": "patient/*.rs",
        "state": "s",
        "code_challenge": "A" * 43,
        "code_challenge_method": "S256",
        "step": "login",
        "person_id": person_id,
    }
    transport = httpx.ASGITransport(app=hub_app)
    async with httpx.AsyncClient(transport=transport, base_url="http://hub.test") as c:
        page = await c.get("/auth/authorize", params=params)
        assert page.status_code == 200 and "Els Mulder" in page.text
        assert (await admin.post(f"/admin/people/{person_id}/disable")).status_code == 200
        page = await c.get("/auth/authorize", params=params)
        assert "Els Mulder" not in page.text


@contextmanager
def _jwks_server(jwks: dict[str, Any], delay: float, hits: list[str]) -> Iterator[str]:
    """A client's JWKS URL: a real HTTP server on loopback that answers after ``delay`` seconds."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - http.server's name
            hits.append(self.path)
            time.sleep(delay)
            body = json.dumps(jwks).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *_args: Any) -> None:
            return

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/jwks.json"
    finally:
        server.shutdown()
        server.server_close()


async def test_a_key_at_a_jwks_url_is_fetched_outside_the_write_transaction(
    hub_app: Any, client_as: Any, client: httpx.AsyncClient
) -> None:
    """A system that publishes its keys at a URL gets a token with a key the hub fetches then; while
    the hub waits for a slow JWKS, other writes go on (the fetch holds no transaction: on SQLite a
    write transaction is every writer's lock). A key the URL does not publish is refused, after one
    fetch."""
    key = ECKey.generate_key("P-256", private=True)
    jwks = {"keys": [{**key.as_dict(private=False), "kid": key.thumbprint()}]}
    hits: list[str] = []
    delay = 1.5
    with _jwks_server(jwks, delay, hits) as url:
        r = await client_as("admin").post(
            "/admin/apps", json={"kind": "system", "name": "Wijk (JWKS)", "ura": "00056789", "jwks_url": url}
        )
        assert r.status_code == 201, r.text
        system_id = r.json()["client_id"]

        pending = asyncio.create_task(_token(hub_app, key, system_id))
        await asyncio.sleep(0.3)  # the hub is waiting for the client's JWKS now
        started = time.perf_counter()
        write = await client.post("/fhir/Organization", json={"resourceType": "Organization", "name": "Buurtzorg"})
        took = time.perf_counter() - started
        token = await pending
        assert write.status_code == 201, write.text
        assert token.status_code == 200, token.text
        assert hits == ["/jwks.json"]
        assert took < delay - 0.6, f"a write waited {took:.2f} s for another client's JWKS"

        other = ECKey.generate_key("P-256", private=True)
        refused = await _token(hub_app, other, system_id)
        assert refused.status_code in (400, 401) and refused.json()["error"] == "invalid_client", refused.text
        assert "unknown key id" in refused.json()["error_description"]
        assert hits == ["/jwks.json", "/jwks.json"]
