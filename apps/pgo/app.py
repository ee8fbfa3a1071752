"""The PGO backend-for-frontend: pages for the client and their mantelzorgers, over the hub's API.

Log in goes through the hub's ``/auth/authorize`` (the development login stands in for DigiD) with
authorization code + PKCE; the access token lives only in the encrypted session cookie.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from collections.abc import AsyncIterator
from datetime import date, timedelta
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from starlette.responses import Response, StreamingResponse

from apps.common import fhirtext as ft
from apps.common.config import PgoSettings
from apps.common.hubclient import HubClient, HubError, resources
from apps.common.oauth import TokenError, authorize_url, exchange_code, new_verifier, unverified_claims
from apps.common.security import check_csrf
from apps.common.web import environment, notice, render, see_other
from apps.pgo import privacy, views

HERE = Path(__file__).parent
log = logging.getLogger("apps.pgo")
SECTIONS: tuple[tuple[str, str, str, str], ...] = (
    # (path, title, data category, short explanation)
    ("/netwerk", "Mijn netwerk", "netwerk", "Wie helpt u: familie, buren en zorgverleners."),
    ("/zorgplan", "Mijn zorgplan", "zorgplan", "Uw doelen en wie wat doet."),
    ("/wensen", "Mijn wensen", "acp", "Wat u wel en niet wilt bij zorg en behandeling."),
    ("/overdracht", "Overdracht", "overdracht", "Als uw zorg naar een andere organisatie gaat."),
    ("/wie-keek-mee", "Wie keek mee", "audit", "Wie uw gegevens bekeek of veranderde."),
    ("/toestemming", "Toestemming", "toestemming", "Wie wat mag zien, en wie u helpt."),
)
#: Which search tells whether a mantelzorger may see a section (the hub decides; an empty answer = no).
PROBES: dict[str, tuple[str, str]] = {
    "netwerk": ("CareTeam", "subject"),
    "zorgplan": ("CarePlan", "subject"),
    "acp": ("Consent", "patient"),
    "overdracht": ("Task", "patient"),
    "audit": ("AuditEvent", "patient"),
}


def create_app(settings: PgoSettings | None = None, *, client_id: str | None = None) -> FastAPI:
    """The PGO app; ``client_id`` overrides the one from the settings or the state directory."""
    settings = settings or PgoSettings()
    templates = environment(HERE / "templates")
    from apps.common.base import build_app

    app = build_app(
        settings,
        title="Mijn Zorgnet",
        cookie="pgo_session",
        templates=templates,
        static_dir=HERE / "static",
        login_path="/inloggen",
    )
    app.state.client_id = client_id or settings.client_id

    def page(request: Request, name: str, status: int = 200, **context: Any) -> Response:
        me = request.session.get("me")
        nav = [s for s in SECTIONS if me and (me["kind"] == "client" or s[2] in me.get("sections", []))]
        return render(templates, request, name, status=status, me=me, nav=nav, **context)

    def hub_for(request: Request) -> HubClient | None:
        me = request.session.get("me")
        if not me or me.get("exp", 0) < time.time():
            return None
        return HubClient(request.app.state.http, settings.hub_url, me["token"])

    def login_needed(request: Request) -> Response:
        if request.session.pop("me", None) is not None:
            request.session["expired"] = True  # the hub's token ran out: say so on the login page
        return see_other("/inloggen")

    def current(request: Request) -> tuple[HubClient, dict[str, Any], views.Me] | None:
        hub = hub_for(request)
        if hub is None:
            return None
        me = request.session["me"]
        return hub, me, views.Me(me["kind"], me.get("person"), me.get("name", ""))

    # --- logging in and out

    @app.get("/inloggen")
    async def login_page(request: Request) -> Response:
        expired = request.session.pop("expired", False) or request.scope.get("session_expired", False)
        return page(request, "login.html", expired=expired)

    @app.post("/inloggen")
    async def login_start(request: Request) -> Response:
        form = await request.form()
        check_csrf(request, form, settings.public_url)
        verifier, state = new_verifier(), secrets.token_urlsafe(24)
        request.session["oauth"] = {"state": state, "verifier": verifier, "at": int(time.time())}
        return see_other(
            authorize_url(
                settings.hub_url,
                client_id=app.state.client_id,
                redirect_uri=settings.redirect_uri,
                state=state,
                verifier=verifier,
            )
        )

    @app.get("/callback")
    async def callback(request: Request) -> Response:
        pending = request.session.pop("oauth", None) or {}
        params = request.query_params
        if params.get("error"):
            notice(request, "Inloggen is gestopt. U kunt het opnieuw proberen.", "error")
            return see_other("/inloggen")
        state = params.get("state", "")
        if (
            not pending
            or not secrets.compare_digest(state, str(pending.get("state", "")))
            or time.time() - pending.get("at", 0) > 600
        ):
            notice(request, "Inloggen is verlopen. Probeer het opnieuw.", "error")
            return see_other("/inloggen")
        try:
            token = await exchange_code(
                request.app.state.http,
                settings.hub_url,
                client_id=app.state.client_id,
                code=params.get("code", ""),
                redirect_uri=settings.redirect_uri,
                verifier=pending["verifier"],
            )
        except TokenError:
            notice(request, "Inloggen is niet gelukt. Probeer het opnieuw.", "error")
            return see_other("/inloggen")
        claims = unverified_claims(token.access_token)
        kind = "related" if claims.get("kind") == "related" else "client"
        me: dict[str, Any] = {
            "token": token.access_token,
            "exp": int(time.time()) + token.expires_in,
            "kind": kind,
            "patient": token.patient,
            "bsn": token.patient_bsn,
            "person": claims.get("person"),
            "name": "",
            "sections": [],
        }
        hub = HubClient(request.app.state.http, settings.hub_url, token.access_token)
        request.session.clear()
        request.session.update({"started": int(time.time()), "csrf": secrets.token_urlsafe(32)})
        if kind == "client" and token.patient:
            try:
                me["name"] = ft.human_name(await hub.read("Patient", token.patient))
            except HubError:
                me["name"] = ""
        else:
            me["name"] = str(claims.get("person") or "")
            me["sections"] = await _probe(hub, token.patient or "")
        request.session["me"] = me
        return see_other("/")

    @app.post("/uitloggen")
    async def logout(request: Request) -> Response:
        check_csrf(request, await request.form(), settings.public_url)
        request.session.clear()
        request.session["csrf"] = secrets.token_urlsafe(32)
        request.session["started"] = int(time.time())
        notice(request, "U bent uitgelogd.")
        return see_other("/inloggen")

    # --- pages

    @app.get("/")
    async def home(request: Request) -> Response:
        found = current(request)
        if found is None:
            return login_needed(request)
        return page(request, "home.html")

    @app.get("/netwerk")
    async def network_page(request: Request) -> Response:
        found = current(request)
        if found is None:
            return login_needed(request)
        hub, me, _ = found
        members = await views.network(hub, me["patient"]) if me.get("patient") else []
        return page(request, "netwerk.html", members=members)

    @app.get("/zorgplan")
    async def plan_page(request: Request) -> Response:
        found = current(request)
        if found is None:
            return login_needed(request)
        hub, me, who = found
        plans = await views.care_plans(hub, me["patient"], me=who) if me.get("patient") else []
        # a form that failed (see client_status): opened again, its error at the field, the reason kept
        failed = request.session.pop("failed", None) or {}
        return page(
            request,
            "zorgplan.html",
            plans=plans,
            activity_labels=views.ACTIVITY_LABELS,
            statuses=[(s, views.ACTIVITY_STATUS[s]) for s in views.OWN_STATUSES],
            live=True,
            failed=failed,
        )

    @app.post("/zorgplan/doel/{goal_id}")
    async def edit_goal(request: Request, goal_id: str) -> Response:
        found = current(request)
        if found is None:
            return login_needed(request)
        hub, me, who = found
        form = await request.form()
        check_csrf(request, form, settings.public_url)
        text = str(form.get("text", "")).strip()
        if not text:
            notice(request, "Schrijf uw doel op voordat u het opslaat.", "error")
            return see_other("/zorgplan")
        goal = await hub.read("Goal", goal_id)
        own = (
            ft.code_of(goal.get("category") or [], views.GOAL_CATEGORY) == "eigen-doel"
            and ft.ref_id(goal.get("expressedBy"), "Patient") == me["patient"]
        )
        if who.kind != "client" or not own:
            notice(request, "U kunt alleen uw eigen doelen veranderen.", "error")
            return see_other("/zorgplan")
        goal["description"] = {"text": text[:1000]}
        await hub.update(goal)
        notice(request, "Uw doel is opgeslagen.")
        return see_other("/zorgplan")

    @app.post("/zorgplan/{plan_id}/activiteit")
    async def add_activity(request: Request, plan_id: str) -> Response:
        found = current(request)
        if found is None:
            return login_needed(request)
        hub, me, who = found
        form = await request.form()
        check_csrf(request, form, settings.public_url)
        description = str(form.get("description", "")).strip()[:500]
        try:
            activity = views.new_activity(
                str(form.get("code", "")), description, str(form.get("status", "scheduled")), who, me["patient"]
            )
        except ValueError:
            notice(request, "Kies wat u gaat doen en hoe ver u bent.", "error")
            return see_other("/zorgplan")
        if not description:
            notice(request, "Schrijf kort op wat u doet.", "error")
            return see_other("/zorgplan")
        plan = await hub.read("CarePlan", plan_id)
        plan.setdefault("activity", []).append(activity)
        await hub.update(plan)
        notice(request, "Uw activiteit staat in het zorgplan.")
        return see_other("/zorgplan")

    @app.post("/zorgplan/{plan_id}/activiteit/{index}")
    async def update_activity(request: Request, plan_id: str, index: int) -> Response:
        found = current(request)
        if found is None:
            return login_needed(request)
        hub, me, who = found
        form = await request.form()
        check_csrf(request, form, settings.public_url)
        status = str(form.get("status", ""))
        plan = await hub.read("CarePlan", plan_id)
        activities = plan.get("activity") or []
        if (
            not 0 <= index < len(activities)
            or not views.may_change(activities[index], who, me["patient"])
            or status not in views.OWN_STATUSES
        ):
            notice(request, "U kunt alleen uw eigen activiteiten veranderen.", "error")
            return see_other("/zorgplan")
        activities[index]["detail"]["status"] = status
        await hub.update(plan)
        notice(request, "De status is bijgewerkt.")
        return see_other("/zorgplan")

    @app.post("/zorgplan/{plan_id}/activiteit/{index}/pauzeren-of-stoppen")
    async def client_status(request: Request, plan_id: str, index: int) -> Response:
        """The client pauses, stops or cancels another party's activity, with a reason; the hub decides
        (rule ``careplan-client-status``). A refusal (the app's or the hub's) goes back to the care plan
        with the form open, the error at it and the reason kept (post/redirect/get, like every form here)."""
        found = current(request)
        if found is None:
            return login_needed(request)
        hub, me, who = found
        form = await request.form()
        check_csrf(request, form, settings.public_url)
        status, reason = str(form.get("status", "")), str(form.get("reason", "")).strip()[:500]
        if who.kind != "client":
            notice(request, "Alleen de cliënt kan de activiteit van een ander pauzeren of stoppen.", "error")
            return see_other("/zorgplan")

        def failed(message: str, field: str) -> Response:
            notice(request, message, "error")
            request.session["failed"] = {
                "key": f"{plan_id}-{index}",
                "reason": reason,
                "message": message,
                "field": field,
            }
            return see_other("/zorgplan")  # no #fragment: a browser skips autofocus when the URL has one

        if status not in views.CLIENT_STATUSES:
            return failed("Kies pauzeren, stoppen of annuleren.", "")
        if not reason:
            return failed("Schrijf de reden op.", "reason")
        plan = await hub.read("CarePlan", plan_id)
        activities = plan.get("activity") or []
        if not 0 <= index < len(activities) or views.may_change(activities[index], who, me["patient"]):
            notice(request, "Deze activiteit kunt u hier niet pauzeren of stoppen.", "error")
            return see_other("/zorgplan")
        label = views.activity_label(activities[index])
        activities[index] = views.with_client_status(activities[index], status, reason)
        try:
            await hub.update(plan)
        except HubError as exc:
            if exc.status in (0, 401) or exc.status >= 500:
                raise
            refused = "de zorgnet-hub staat dit niet toe. " if exc.status == 403 else ""
            return failed(f"Niet gelukt: {refused}{exc.message} Er is niets veranderd.", "")
        notice(request, f"{label} is {views.CLIENT_DONE[status]}. Uw reden staat erbij in het zorgplan.")
        return see_other("/zorgplan")

    @app.get("/wensen")
    async def wishes_page(request: Request) -> Response:
        found = current(request)
        if found is None:
            return login_needed(request)
        hub, me, _ = found
        wishes = await views.wishes(hub, me["patient"]) if me.get("patient") else []
        return page(request, "wensen.html", wishes=wishes)

    @app.get("/overdracht")
    async def handover_page(request: Request) -> Response:
        found = current(request)
        if found is None:
            return login_needed(request)
        hub, me, _ = found
        items = await views.handovers(hub, me["patient"]) if me.get("patient") else []
        return page(request, "overdracht.html", handovers=items, live=True)

    @app.get("/wie-keek-mee")
    async def looks_page(request: Request) -> Response:
        found = current(request)
        if found is None:
            return login_needed(request)
        hub, me, _ = found
        show_own = request.query_params.get("eigen") == "1"
        result = (
            await privacy.looks(hub, me["patient"], my_bsn=me.get("bsn"), show_own=show_own)
            if me.get("patient")
            else privacy.LookPage([], 0)
        )
        return page(request, "wie_keek_mee.html", result=result, show_own=show_own)

    @app.get("/toestemming")
    async def consent_page(request: Request) -> Response:
        found = current(request)
        if found is None:
            return login_needed(request)
        hub, me, who = found
        if who.kind != "client":
            return page(request, "toestemming.html", perms=None, categories=ft.CATEGORY_LABELS)
        perms = await privacy.permissions(hub, me["patient"])
        return page(
            request, "toestemming.html", perms=perms, categories=ft.CATEGORY_LABELS, today=date.today().isoformat()
        )

    async def _client_form(request: Request) -> tuple[HubClient, dict[str, Any], Any] | None:
        found = current(request)
        if found is None or found[2].kind != "client":
            return None
        form = await request.form()
        check_csrf(request, form, settings.public_url)
        return found[0], found[1], form

    @app.post("/toestemming/bezwaar")
    async def object_to(request: Request) -> Response:
        found = await _client_form(request)
        if found is None:
            return login_needed(request)
        hub, me, form = found
        ura, category = str(form.get("ura", "")), str(form.get("category", ""))
        if not ura or (category and category not in ft.CATEGORY_LABELS):
            notice(request, "Kies een organisatie en welke gegevens.", "error")
            return see_other("/toestemming")
        await hub.create(privacy.objection_consent(me["patient"], ura, category, date.today().isoformat()))
        notice(request, "Uw bezwaar is vastgelegd. Het geldt meteen.")
        return see_other("/toestemming")

    @app.post("/toestemming/bezwaar/{consent_id}/intrekken")
    async def withdraw_objection(request: Request, consent_id: str) -> Response:
        found = await _client_form(request)
        if found is None:
            return login_needed(request)
        hub, me, _ = found
        consent = await hub.read("Consent", consent_id)
        if ft.ref_id(consent.get("patient"), "Patient") != me["patient"]:
            notice(request, "Dit bezwaar is niet van u.", "error")
            return see_other("/toestemming")
        consent["status"] = "inactive"
        await hub.update(consent)
        notice(request, "Uw bezwaar is ingetrokken.")
        return see_other("/toestemming")

    @app.post("/toestemming/machtiging")
    async def grant(request: Request) -> Response:
        found = await _client_form(request)
        if found is None:
            return login_needed(request)
        hub, me, form = found
        person = str(form.get("person", "")).strip()
        categories = [str(c) for c in form.getlist("category") if str(c) in ft.CATEGORY_LABELS]
        until = str(form.get("until", "")).strip()
        if not person or not categories or not until:
            notice(request, "Vul in wie u helpt, welke gegevens, en tot wanneer.", "error")
            return see_other("/toestemming")
        try:
            if date.fromisoformat(until) <= date.today():
                raise ValueError
        except ValueError:
            notice(request, "Kies een einddatum in de toekomst.", "error")
            return see_other("/toestemming")
        params: list[dict[str, Any]] = [{"name": "person", "valueString": person}]
        params += [{"name": "category", "valueCode": c} for c in categories]
        params.append({"name": "end", "valueDateTime": until})
        await hub.operation(f"Patient/{me['patient']}/$grant-delegation", params)
        notice(request, f"{person} mag nu meekijken tot {ft.dutch_date(until)}.")
        return see_other("/toestemming")

    @app.post("/toestemming/machtiging/intrekken")
    async def withdraw(request: Request) -> Response:
        found = await _client_form(request)
        if found is None:
            return login_needed(request)
        hub, me, form = found
        person = str(form.get("person", "")).strip()
        if not person:
            return see_other("/toestemming")
        await hub.operation(
            f"Patient/{me['patient']}/$withdraw-delegation", [{"name": "person", "valueString": person}]
        )
        notice(request, f"{person} mag niet meer meekijken.")
        return see_other("/toestemming")

    # --- live updates

    @app.get("/live")
    async def live(request: Request) -> Response:
        found = current(request)
        if found is None:
            return Response(status_code=401)
        hub, me, _ = found
        return StreamingResponse(
            _changes(request, hub, me["patient"], settings.poll_interval),
            media_type="text/event-stream",
            headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
        )

    return app


async def _probe(hub: HubClient, patient: str) -> list[str]:
    """Which sections a mantelzorger may see: those where the hub returns anything at all."""
    if not patient:
        return []
    out = []
    for category, (res_type, param) in PROBES.items():
        try:
            bundle = await hub.search(res_type, [(param, f"Patient/{patient}"), ("_summary", "count")])
        except HubError:
            continue
        if int(bundle.get("total") or 0) > 0:
            out.append(category)
    return out


#: What the live page watches: (resource type, patient search parameter, event name).
WATCHED = (("CarePlan", "subject", "zorgplan"), ("Goal", "subject", "zorgplan"), ("Task", "patient", "overdracht"))


async def _versions(hub: HubClient, res_type: str, query: list[tuple[str, str]]) -> tuple[set[tuple[str, str]], str]:
    """(id, versionId) of what a search returns, and the hub's time of the answer."""
    bundle = await hub.search(res_type, [*query, ("_count", "200")])
    seen = {(str(r.get("id")), str((r.get("meta") or {}).get("versionId", ""))) for r in resources(bundle)}
    return seen, str((bundle.get("meta") or {}).get("lastUpdated") or "")


def _minus(stamp: str, seconds: float) -> str:
    moment = ft.parse_instant(stamp)
    if moment is None:
        return stamp
    return (moment - timedelta(seconds=seconds)).isoformat().replace("+00:00", "Z")


#: How far back each poll looks again: a write whose lastUpdated was stamped before a poll but that
#: committed after it is still seen (versions already reported are remembered, so nothing repeats).
LOOKBACK_SECONDS = 120.0


async def _changes(
    request: Request, hub: HubClient, patient: str, interval: float, lifetime: float = 300.0
) -> AsyncIterator[bytes]:
    """Server-sent events: ``change`` with the section name whenever the hub has a version not seen yet.

    Until the hub pushes notifications, this polls with ``_lastUpdated=ge{last answer's time minus a
    look-back}``. The stream ends after ``lifetime`` seconds; the browser's EventSource reconnects.
    """
    seen: dict[str, set[tuple[str, str]]] = {}
    since: dict[str, str] = {}
    for res_type, param, _ in WATCHED:
        try:
            seen[res_type], since[res_type] = await _versions(hub, res_type, [(param, f"Patient/{patient}")])
        except HubError:
            return
    yield b"retry: 3000\n\n"
    started = time.monotonic()
    while time.monotonic() - started < lifetime:
        await asyncio.sleep(interval)
        if await request.is_disconnected():
            return
        for res_type, param, section in WATCHED:
            query = [(param, f"Patient/{patient}")]
            if since.get(res_type):
                query.append(("_lastUpdated", f"ge{_minus(since[res_type], LOOKBACK_SECONDS)}"))
            try:
                # a cheap count first; the versions are read (and so logged as a read) only when
                # something changed in the look-back window
                counted = await hub.search(res_type, [*query, ("_summary", "count")])
                if not int(counted.get("total") or 0):
                    since[res_type] = str((counted.get("meta") or {}).get("lastUpdated") or since[res_type])
                    continue
                found, stamp = await _versions(hub, res_type, query)
            except HubError as exc:
                log.warning("live updates stopped: %s answered %s", res_type, exc.status)
                return
            if found - seen[res_type]:
                seen[res_type] |= found
                yield f"event: change\ndata: {section}\n\n".encode()
            if stamp:
                since[res_type] = stamp
        yield b": ping\n\n"
