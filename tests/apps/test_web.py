"""The apps' own web layer without a hub: headers, CSRF, sessions, the login start, plain Dutch errors."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from cryptography.fernet import Fernet

from apps.admin import records
from apps.admin.app import create_app as create_admin
from apps.common.config import AdminSettings, PgoSettings
from apps.common.oauth import challenge
from apps.common.outcome import SERVER_ERROR, UNREACHABLE, plain_dutch
from apps.common.session import SessionCodec
from apps.pgo import privacy, views
from apps.pgo.app import create_app as create_pgo

HUB = "http://hub.example:8080"


def _pgo(tmp_path: Path, **overrides: Any) -> httpx.AsyncClient:
    settings = PgoSettings(hub_url=HUB, public_url="http://pgo.test", state_dir=tmp_path, client_id="pgo-x",
                           **overrides)
    app = create_pgo(settings)
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://pgo.test")


def _csrf(html: str) -> str:
    marker = 'name="csrf_token" value="'
    return html.split(marker, 1)[1].split('"', 1)[0]


async def test_security_headers_on_every_page(tmp_path: Path) -> None:
    async with _pgo(tmp_path) as web:
        for path in ("/inloggen", "/static/pgo.css", "/no-such-page"):
            answer = await web.get(path)
            csp = answer.headers["content-security-policy"]
            assert "frame-ancestors 'none'" in csp and "script-src 'self'" in csp
            assert "unsafe-inline" not in csp and "unsafe-eval" not in csp
            assert f"form-action 'self' {HUB}" in csp
            assert answer.headers["x-frame-options"] == "DENY"
            assert answer.headers["x-content-type-options"] == "nosniff"
        missing = await web.get("/no-such-page")
        assert missing.status_code == 404 and "Deze pagina bestaat niet." in missing.text
        page = await web.get("/inloggen")
        assert page.headers["cache-control"] == "no-store"
        cookie = page.headers["set-cookie"]
        assert cookie.startswith("pgo_session=") and "HttpOnly" in cookie and "SameSite=Lax" in cookie


async def test_login_starts_authorization_code_with_pkce_and_needs_csrf(tmp_path: Path) -> None:
    async with _pgo(tmp_path) as web:
        refused = await web.post("/inloggen", data={"csrf_token": "wrong"})
        assert refused.status_code == 403 and "formulier is verlopen" in refused.text
        token = _csrf((await web.get("/inloggen")).text)
        cross_site = await web.post("/inloggen", data={"csrf_token": token}, headers={"Origin": "http://evil.test"})
        assert cross_site.status_code == 403
        started = await web.post("/inloggen", data={"csrf_token": token})
        assert started.status_code == 303
        target = urlsplit(started.headers["location"])
        assert f"{target.scheme}://{target.netloc}{target.path}" == f"{HUB}/auth/authorize"
        query = {k: v[0] for k, v in parse_qs(target.query).items()}
        assert query["response_type"] == "code" and query["client_id"] == "pgo-x"
        assert query["code_challenge_method"] == "S256" and len(query["code_challenge"]) == 43
        assert query["redirect_uri"] == "http://pgo.test/callback" and query["state"]
        assert "code_verifier" not in started.headers["location"]
        # a callback with another state is refused (login CSRF), and the pending login is spent
        back = await web.get("/callback", params={"code": "abc", "state": "forged"})
        assert back.status_code == 303 and back.headers["location"] == "/inloggen"
        again = await web.get("/callback", params={"code": "abc", "state": query["state"]})
        assert again.headers["location"] == "/inloggen"


async def test_pages_need_a_login_and_a_tampered_cookie_is_no_session(tmp_path: Path) -> None:
    async with _pgo(tmp_path) as web:
        for path in ("/", "/zorgplan", "/toestemming", "/wie-keek-mee"):
            answer = await web.get(path)
            assert answer.status_code == 303 and answer.headers["location"] == "/inloggen"
        assert (await web.get("/live")).status_code == 401
        web.cookies.set("pgo_session", "gAAAAAB-not-a-real-token")
        answer = await web.get("/inloggen")
        assert "niet actief" in answer.text  # "you were logged out" for a cookie that no longer decrypts


async def test_an_idle_session_ends_with_a_message(tmp_path: Path) -> None:
    from apps.common.session import load_or_create_key

    async with _pgo(tmp_path, idle_timeout=60) as web:
        await web.get("/inloggen")  # creates the session key in the state directory
        codec = SessionCodec(load_or_create_key("", tmp_path), idle_timeout=60, max_session=3600)
        me = {"token": "x.y.z", "exp": int(time.time()) + 3600, "kind": "client", "patient": "p1"}
        idle = codec.fernet.encrypt_at_time(
            json.dumps({"started": int(time.time()) - 300, "csrf": "c", "me": me}).encode(), int(time.time()) - 120)
        web.cookies.clear()
        web.cookies.set("pgo_session", idle.decode(), domain="pgo.test")
        answer = await web.get("/zorgplan")
        assert answer.status_code == 303 and answer.headers["location"] == "/inloggen"
        assert "niet actief" in (await web.get("/inloggen")).text
        expired_token = codec.encode({"started": int(time.time()), "csrf": "c", "me": me | {"exp": 1}})
        web.cookies.clear()
        web.cookies.set("pgo_session", expired_token, domain="pgo.test")
        assert (await web.get("/wensen")).headers["location"] == "/inloggen"
        assert "niet actief" in (await web.get("/inloggen")).text


def test_session_codec_idle_timeout_and_maximum(tmp_path: Path) -> None:
    codec = SessionCodec(Fernet.generate_key(), idle_timeout=60, max_session=3600)
    data = {"started": int(time.time()), "me": {"token": "t"}}
    assert codec.decode(codec.encode(data)) == data
    stale = codec.fernet.encrypt_at_time(b'{"started": 1}', int(time.time()) - 120).decode()
    assert codec.decode(stale) is None
    old = codec.encode({"started": int(time.time()) - 7200})
    assert codec.decode(old) is None
    other = SessionCodec(Fernet.generate_key(), 60, 3600)
    assert other.decode(codec.encode(data)) is None
    assert codec.decode("garbage") is None


def test_pkce_challenge_matches_rfc7636_appendix_b() -> None:
    assert challenge("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk") == "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"


def test_operation_outcomes_become_plain_dutch() -> None:
    outcome = {"resourceType": "OperationOutcome", "issue": [
        {"severity": "warning", "code": "informational"},
        {"severity": "error", "code": "required", "diagnostics": "Minimum cardinality ...",
         "expression": ["CarePlan.activity[3].detail.code"]}]}
    sentence = plain_dutch(400, outcome)
    assert sentence == "Er ontbreekt een verplicht gegeven (bij: CarePlan.activity[3].detail.code)."
    assert plain_dutch(403, outcome) == "U heeft geen toestemming om dit te doen."
    assert plain_dutch(404, None).startswith("Deze gegevens zijn niet gevonden")
    assert plain_dutch(412, None).startswith("Iemand anders heeft dit net gewijzigd")
    assert plain_dutch(500, outcome) == SERVER_ERROR
    assert "Traceback" not in plain_dutch(400, {"resourceType": "OperationOutcome", "issue": []})
    assert UNREACHABLE.startswith("De zorgnet-hub is nu niet bereikbaar")


def test_access_reasons_in_dutch() -> None:
    assert privacy.reason_in_dutch("The client objects (Consent/1)") == "U heeft hier bezwaar tegen gemaakt."
    assert privacy.reason_in_dutch("The client permits (Consent/2)") == "U heeft hier toestemming voor gegeven."
    assert "uw toestemming nodig" in privacy.reason_in_dutch(
        "Care relationship, but this category needs the client's explicit permission (opt-in)")


def test_a_mantelzorger_changes_only_own_activities() -> None:
    carer = views.Me("related", "marieke", "marieke")
    client = views.Me("client", None, "Johanna")
    mine = views.new_activity("gezelschap", "Wandelen", "scheduled", carer, "p1")
    assert mine["detail"]["performer"][0]["identifier"]["value"] == "marieke"
    assert views.may_change(mine, carer, "p1")
    assert not views.may_change(mine, views.Me("related", "henk", "henk"), "p1")
    assert not views.may_change(mine, client, "p1")
    own = views.new_activity("maaltijden", "Zelf koken", "in-progress", client, "p1")
    assert views.may_change(own, client, "p1") and not views.may_change(own, carer, "p1")
    with pytest.raises(ValueError):
        views.new_activity("iets", "x", "scheduled", carer, "p1")


def test_paper_consent_needs_a_reason() -> None:
    fields = {"bsn": "999993653", "decision": "permit", "category": "medisch", "ura": "00012345",
              "reason": "", "signed": "2026-01-05"}
    assert records.check_paper(fields) == "Vul de reden in waarom u dit namens de cliënt vastlegt (verplicht)."
    fields["reason"] = "Formulier aan de balie"
    assert records.check_paper(fields) is None
    consent = records.paper_consent("p1", fields, "admin")
    assert consent["provision"]["type"] == "permit"
    assert consent["sourceAttachment"]["title"].endswith("Reden: Formulier aan de balie")
    assert records.check_paper(fields | {"bsn": "12"}) is not None
    assert records.check_paper(fields | {"signed": "2999-01-01"}) is not None


async def test_admin_console_refuses_a_token_that_is_not_an_admin_token(tmp_path: Path) -> None:
    app = create_admin(AdminSettings(hub_url=HUB, public_url="http://admin.test", state_dir=tmp_path))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://admin.test") as web:
        assert (await web.get("/auditlog")).headers["location"] == "/inloggen"
        token = _csrf((await web.get("/inloggen")).text)
        answer = await web.post("/inloggen", data={"csrf_token": token, "token": "not.a.jwt"})
        assert answer.status_code == 400 and "geen beheerderstoken" in answer.text
