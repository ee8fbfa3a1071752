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
from apps.common import fhirtext as ft
from apps.common.config import AdminSettings, PgoSettings
from apps.common.oauth import challenge
from apps.common.outcome import SERVER_ERROR, UNREACHABLE, plain_dutch
from apps.common.session import SessionCodec
from apps.pgo import privacy, views
from apps.pgo.app import create_app as create_pgo

HUB = "http://hub.example:8080"


def _pgo(tmp_path: Path, **overrides: Any) -> httpx.AsyncClient:
    settings = PgoSettings(
        hub_url=HUB, public_url="http://pgo.test", state_dir=tmp_path, client_id="pgo-x", **overrides
    )
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
            json.dumps({"started": int(time.time()) - 300, "csrf": "c", "me": me}).encode(), int(time.time()) - 120
        )
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
    outcome = {
        "resourceType": "OperationOutcome",
        "issue": [
            {"severity": "warning", "code": "informational"},
            {
                "severity": "error",
                "code": "required",
                "diagnostics": "Minimum cardinality ...",
                "expression": ["CarePlan.activity[3].detail.code"],
            },
        ],
    }
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
        "Care relationship, but this category needs the client's explicit permission (opt-in)"
    )


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
    fields = {
        "bsn": "999993653",
        "decision": "permit",
        "category": "medisch",
        "ura": "00012345",
        "reason": "",
        "signed": "2026-01-05",
    }
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


# --- the client's say over another party's care plan activity -------------------------------------


def _act(kind: str, code: str, status: str, performer: dict[str, Any]) -> dict[str, Any]:
    return {
        "detail": {
            "extension": [{"url": views.PERFORMER_KIND_EXT, "valueCode": kind}],
            "code": {"coding": [{"system": views.CARE_ACTIVITY, "code": code}]},
            "status": status,
            "description": f"{code} ({status})",
            "performer": [performer],
        }
    }


WIJK = {"reference": "PractitionerRole/wv", "display": "Karim El Amrani"}


def _plan() -> dict[str, Any]:
    return {
        "resourceType": "CarePlan",
        "id": "plan1",
        "meta": {"versionId": "3"},
        "status": "active",
        "intent": "plan",
        "title": "Gedeeld zorgplan",
        "subject": {"reference": "Patient/p1"},
        "activity": [
            _act("professional", "verpleging", "scheduled", WIJK),
            _act("professional", "persoonlijke-verzorging", "in-progress", WIJK),
            _act("professional", "huishoudelijke-hulp", "completed", WIJK),
            _act(
                "mantelzorger",
                "maaltijden",
                "in-progress",
                {"identifier": {"system": ft.PERSON, "value": "marieke"}, "display": "Marieke"},
            ),
            _act("client", "dagbesteding", "in-progress", {"reference": "Patient/p1"}),
            _act("professional", "vervoer", "on-hold", WIJK),
        ],
    }


def test_the_client_pauses_stops_or_cancels_another_partys_activity_only() -> None:
    client = views.Me("client", None, "Johanna")
    carer = views.Me("related", "marieke", "marieke")
    acts = _plan()["activity"]
    assert views.client_choices(acts[0], client, "p1") == (("on-hold", "Pauzeren"), ("cancelled", "Annuleren"))
    assert views.client_choices(acts[1], client, "p1") == (("on-hold", "Pauzeren"), ("stopped", "Stoppen"))
    assert views.client_choices(acts[5], client, "p1") == (("stopped", "Stoppen"),)
    assert views.client_choices(acts[3], client, "p1")  # the mantelzorger's activity is another party's too
    assert views.client_choices(acts[2], client, "p1") == ()  # final: no buttons
    assert views.client_choices(acts[4], client, "p1") == ()  # her own: the status form instead
    assert all(views.client_choices(a, carer, "p1") == () for a in acts)  # a mantelzorger has no say
    for final in ("completed", "cancelled", "stopped", "entered-in-error"):
        assert views.client_choices(_act("professional", "verpleging", final, WIJK), client, "p1") == ()
    changed = views.with_client_status(acts[0], "cancelled", "  Mijn dochter doet dit nu  ")
    assert changed["detail"] == acts[0]["detail"] | {
        "status": "cancelled",
        "statusReason": {"text": "Mijn dochter doet dit nu"},
    }
    assert acts[0]["detail"]["status"] == "scheduled"  # the original is not touched
    for status, reason in (("completed", "klaar"), ("cancelled", "  ")):
        with pytest.raises(ValueError):
            views.with_client_status(acts[0], status, reason)


class FakeHub:
    """The hub's FHIR API as far as the care plan page uses it; ``refuse`` makes a PUT fail."""

    def __init__(self) -> None:
        self.plan = _plan()
        self.puts: list[dict[str, Any]] = []
        self.refuse = 0  # the status of the next PUT's refusal (0: none)

    def __call__(self, request: httpx.Request) -> httpx.Response:
        path = request.url.path
        if request.method == "GET" and path == "/fhir/CarePlan":
            return httpx.Response(
                200, json={"resourceType": "Bundle", "type": "searchset", "entry": [{"resource": self.plan}]}
            )
        if request.method == "GET" and path == "/fhir/CarePlan/plan1":
            return httpx.Response(200, json=self.plan)
        if request.method == "PUT" and path == "/fhir/CarePlan/plan1":
            body = json.loads(request.content)
            self.puts.append(body)
            assert request.headers["if-match"] == 'W/"3"'
            if self.refuse:
                return httpx.Response(
                    self.refuse,
                    json={
                        "resourceType": "OperationOutcome",
                        "issue": [
                            {
                                "severity": "error",
                                "code": "forbidden",
                                "expression": ["CarePlan.activity[0].detail.status"],
                                "diagnostics": (
                                    "Rule careplan-client-status: you set another party's activity from 'completed'"
                                ),
                            }
                        ],
                    },
                )
            self.plan = body
            return httpx.Response(200, json=body)
        return httpx.Response(404, json={"resourceType": "OperationOutcome", "issue": []})


def _logged_in(tmp_path: Path, fake: FakeHub, me: dict[str, Any]) -> tuple[httpx.AsyncClient, Any]:
    from apps.common.session import load_or_create_key

    settings = PgoSettings(hub_url=HUB, public_url="http://pgo.test", state_dir=tmp_path, client_id="pgo-x")
    app = create_pgo(settings)
    app.state.http = httpx.AsyncClient(transport=httpx.MockTransport(fake))
    codec = SessionCodec(load_or_create_key("", tmp_path), idle_timeout=900, max_session=3600)
    session = {
        "started": int(time.time()),
        "csrf": "c",
        "me": {"token": "x.y.z", "exp": int(time.time()) + 3600, "patient": "p1", "sections": ["zorgplan"]} | me,
    }
    web = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://pgo.test")
    web.cookies.set("pgo_session", codec.encode(session), domain="pgo.test")
    return web, app.state.http


CLIENT_ME = {"kind": "client", "name": "Johanna Smit", "person": None}
SAY = "/zorgplan/plan1/activiteit/{}/pauzeren-of-stoppen"


async def test_care_plan_page_offers_the_clients_say_with_a_labelled_reason(tmp_path: Path) -> None:
    fake = FakeHub()
    web, http = _logged_in(tmp_path, fake, CLIENT_ME)
    async with web, http:
        html = (await web.get("/zorgplan")).text
    assert html.count('class="say"') == 4  # scheduled, in progress, on hold, the mantelzorger's; not final or own
    assert "<summary>Verpleging pauzeren of annuleren</summary>" in html
    assert "<summary>Persoonlijke verzorging pauzeren of stoppen</summary>" in html
    assert "<summary>Vervoer stoppen</summary>" in html
    assert "Huishoudelijke hulp pauzeren" not in html and "Dagbesteding pauzeren" not in html
    assert '<label for="reason-plan1-0">Reden (verplicht)</label>' in html
    assert (
        'id="reason-plan1-0" name="reason" rows="2" required maxlength="500" '
        'aria-describedby="say-hint-plan1-0"' in html
    )
    assert '<button type="submit" name="status" value="cancelled" class="button">Annuleren</button>' in html
    assert html.count('name="status" value="on-hold"') == 3


async def test_a_mantelzorger_is_not_offered_the_clients_say_and_cannot_post_it(tmp_path: Path) -> None:
    fake = FakeHub()
    web, http = _logged_in(tmp_path, fake, {"kind": "related", "person": "marieke", "name": "marieke"})
    async with web, http:
        html = (await web.get("/zorgplan")).text
        assert 'class="say"' not in html and "pauzeren-of-stoppen" not in html
        answer = await web.post(SAY.format(0), data={"csrf_token": "c", "status": "cancelled", "reason": "Weg"})
        assert answer.status_code == 303
        assert "Alleen de cliënt" in (await web.get("/zorgplan")).text
    assert fake.puts == []


async def test_the_client_cancels_with_a_reason_and_the_hub_gets_only_that(tmp_path: Path) -> None:
    fake = FakeHub()
    before = json.loads(json.dumps(fake.plan))
    web, http = _logged_in(tmp_path, fake, CLIENT_ME)
    async with web, http:
        answer = await web.post(
            SAY.format(0), data={"csrf_token": "c", "status": "cancelled", "reason": "Mijn dochter komt nu elke dag"}
        )
        assert answer.status_code == 303 and answer.headers["location"] == "/zorgplan"
        page = (await web.get("/zorgplan")).text
    assert len(fake.puts) == 1
    sent = fake.puts[0]
    assert sent["activity"][0]["detail"] == before["activity"][0]["detail"] | {
        "status": "cancelled",
        "statusReason": {"text": "Mijn dochter komt nu elke dag"},
    }
    assert sent["activity"][1:] == before["activity"][1:]
    assert {k: v for k, v in sent.items() if k != "activity"} == {k: v for k, v in before.items() if k != "activity"}
    assert 'role="status">Verpleging is geannuleerd. Uw reden staat erbij in het zorgplan.' in page
    assert "Reden: Mijn dochter komt nu elke dag" in page
    assert "<summary>Verpleging" not in page  # final now: no more buttons


async def test_the_reason_is_required_and_the_error_is_tied_to_the_field(tmp_path: Path) -> None:
    fake = FakeHub()
    web, http = _logged_in(tmp_path, fake, CLIENT_ME)
    async with web, http:
        answer = await web.post(SAY.format(1), data={"csrf_token": "c", "status": "stopped", "reason": "   "})
        assert answer.status_code == 303 and answer.headers["location"] == "/zorgplan"
        html = (await web.get("/zorgplan")).text
        wrong = await web.post(SAY.format(1), data={"csrf_token": "c", "status": "completed", "reason": "Klaar"})
        chosen = (await web.get("/zorgplan")).text
        assert (
            '<p class="field-error" id="say-error-plan1-1" tabindex="-1" autofocus>Kies pauzeren, stoppen of '
            "annuleren.</p>" in chosen
        )
        assert ">Klaar</textarea>" in chosen and "aria-invalid" not in chosen  # the reason was fine
        again = (await web.get("/zorgplan")).text  # the error is shown once
        forged = await web.post(SAY.format(1), data={"csrf_token": "nope", "status": "stopped", "reason": "x"})
        own = await web.post(SAY.format(4), data={"csrf_token": "c", "status": "stopped", "reason": "Zelf"})
    assert fake.puts == []
    assert '<p class="notice notice-error" role="alert">Schrijf de reden op.</p>' in html
    assert '<details class="say" id="say-plan1-1" open>' in html
    assert 'aria-describedby="say-error-plan1-1 say-hint-plan1-1" aria-invalid="true" autofocus' in html
    assert '<p class="field-error" id="say-error-plan1-1">Schrijf de reden op.</p>' in html
    assert wrong.status_code == 303
    assert "field-error" not in again and "aria-invalid" not in again and " open>" not in again
    assert forged.status_code == 403
    assert own.status_code == 303  # her own activity goes through its own status form


async def test_the_hubs_refusal_is_shown_and_the_reason_kept(tmp_path: Path) -> None:
    fake = FakeHub()
    fake.refuse = 403
    web, http = _logged_in(tmp_path, fake, CLIENT_ME)
    async with web, http:
        answer = await web.post(
            SAY.format(0), data={"csrf_token": "c", "status": "on-hold", "reason": "Ik ben twee weken weg"}
        )
        assert answer.status_code == 303 and answer.headers["location"] == "/zorgplan"
        html = (await web.get("/zorgplan")).text
    assert len(fake.puts) == 1
    message = (
        "Niet gelukt: de zorgnet-hub staat dit niet toe. U heeft geen toestemming om dit te doen. "
        "Er is niets veranderd."
    )
    assert f'<p class="notice notice-error" role="alert">{message}</p>' in html
    assert f'<p class="field-error" id="say-error-plan1-0" tabindex="-1" autofocus>{message}</p>' in html
    assert ">Ik ben twee weken weg</textarea>" in html
    assert "Rule careplan-client-status" not in html  # the developer's English stays out
    fake.refuse = 412  # someone changed the plan in between: said as such, not as a refusal of the rule
    web, http = _logged_in(tmp_path, fake, CLIENT_ME)
    async with web, http:
        await web.post(SAY.format(0), data={"csrf_token": "c", "status": "on-hold", "reason": "Weg"})
        html = (await web.get("/zorgplan")).text
    assert 'role="alert">Niet gelukt: Iemand anders heeft dit net gewijzigd.' in html
    assert "staat dit niet toe" not in html
