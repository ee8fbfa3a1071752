"""The admin console backend-for-frontend: every call goes to the hub with the administrator's token.

Logging in means handing the console an admin access token (in development: ``hub token --as
admin``; in production one issued to the administrator's registered admin client). The console
checks it with the hub and keeps it only in the encrypted session; it has no rights of its own.
"""

from __future__ import annotations

import secrets
import time
from datetime import date
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from starlette.responses import Response

from apps.admin import records
from apps.common import fhirtext as ft
from apps.common.config import AdminSettings
from apps.common.hubclient import HubClient, HubError
from apps.common.oauth import unverified_claims
from apps.common.security import check_csrf
from apps.common.web import environment, notice, render, see_other

HERE = Path(__file__).parent
ADMIN_SCOPE = "hub/admin"
SECTIONS = (
    ("/organisaties", "Organisaties"),
    ("/koppelingen", "Koppelingen"),
    ("/personen", "Personen"),
    ("/papieren-toestemming", "Papieren toestemming"),
    ("/auditlog", "Auditlog"),
    ("/meldingen", "Meldingen"),
)


def create_app(settings: AdminSettings | None = None) -> FastAPI:
    settings = settings or AdminSettings()
    templates = environment(HERE / "templates")
    from apps.common.base import build_app

    app = build_app(
        settings,
        title="Zorgnet beheer",
        cookie="admin_session",
        templates=templates,
        static_dir=HERE / "static",
        login_path="/inloggen",
    )

    def page(request: Request, name: str, status: int = 200, **context: Any) -> Response:
        admin = request.session.get("admin")
        return render(templates, request, name, status=status, admin=admin, nav=SECTIONS if admin else (), **context)

    def hub_for(request: Request) -> HubClient | None:
        admin = request.session.get("admin")
        if not admin or admin.get("exp", 0) < time.time():
            request.session.pop("admin", None)
            return None
        return HubClient(request.app.state.http, settings.hub_url, admin["token"])

    async def form_of(request: Request) -> Any:
        form = await request.form()
        check_csrf(request, form, settings.public_url)
        return form

    # --- log in / out

    @app.get("/inloggen")
    async def login_page(request: Request) -> Response:
        expired = request.session.pop("expired", False) or request.scope.get("session_expired", False)
        return page(request, "login.html", expired=expired)

    @app.post("/inloggen")
    async def login(request: Request) -> Response:
        form = await form_of(request)
        token = str(form.get("token", "")).strip()
        claims = unverified_claims(token)
        if claims.get("kind") != "admin" or ADMIN_SCOPE not in str(claims.get("scope", "")).split():
            return page(request, "login.html", status=400, error="Dit is geen beheerderstoken.")
        hub = HubClient(request.app.state.http, settings.hub_url, token)
        try:
            await hub.admin("GET", "apps")  # the hub checks signature, audience, expiry and the admin role
        except HubError as exc:
            message = "De hub accepteert dit token niet." if exc.status in (401, 403) else exc.message
            return page(request, "login.html", status=400, error=message)
        exp = int(claims.get("exp", 0)) or int(time.time()) + 3600
        request.session.clear()
        request.session.update(
            {
                "started": int(time.time()),
                "csrf": secrets.token_urlsafe(32),
                "admin": {"token": token, "exp": exp, "sub": str(claims.get("sub", "admin"))},
            }
        )
        return see_other("/")

    @app.post("/uitloggen")
    async def logout(request: Request) -> Response:
        await form_of(request)
        request.session.clear()
        request.session.update({"started": int(time.time()), "csrf": secrets.token_urlsafe(32)})
        notice(request, "U bent uitgelogd.")
        return see_other("/inloggen")

    # --- pages

    @app.get("/")
    async def home(request: Request) -> Response:
        if hub_for(request) is None:
            return see_other("/inloggen")
        return page(request, "home.html")

    @app.get("/organisaties")
    async def organisations(request: Request) -> Response:
        hub = hub_for(request)
        if hub is None:
            return see_other("/inloggen")
        orgs = await records.organisations(hub)
        return page(request, "organisaties.html", orgs=orgs, org_types=records.ORG_TYPES)

    @app.post("/organisaties")
    async def add_organisation(request: Request) -> Response:
        hub = hub_for(request)
        if hub is None:
            return see_other("/inloggen")
        form = await form_of(request)
        name, ura, kind = (str(form.get(k, "")).strip() for k in ("name", "ura", "type"))
        if not name or not records.URA_RE.match(ura) or kind not in records.ORG_TYPES:
            notice(request, "Vul een naam, een URA van 8 cijfers en een soort organisatie in.", "error")
            return see_other("/organisaties")
        await hub.create(records.organisation(name, ura, kind))
        notice(request, f"{name} is toegevoegd.")
        return see_other("/organisaties")

    @app.post("/organisaties/{org_id}/actief")
    async def set_organisation_active(request: Request, org_id: str) -> Response:
        hub = hub_for(request)
        if hub is None:
            return see_other("/inloggen")
        form = await form_of(request)
        org = await hub.read("Organization", org_id)
        org["active"] = form.get("active") == "1"
        await hub.update(org)
        notice(request, f"{org.get('name', 'De organisatie')} is {'weer actief' if org['active'] else 'uitgezet'}.")
        return see_other("/organisaties")

    @app.get("/koppelingen")
    async def apps_page(request: Request) -> Response:
        hub = hub_for(request)
        if hub is None:
            return see_other("/inloggen")
        registered = await hub.admin("GET", "apps")
        orgs = {o.ura: o.name for o in await records.organisations(hub)}
        return page(request, "koppelingen.html", apps=registered, org_names=orgs)

    @app.post("/koppelingen")
    async def add_app(request: Request) -> Response:
        hub = hub_for(request)
        if hub is None:
            return see_other("/inloggen")
        form = await form_of(request)
        kind = str(form.get("kind", ""))
        name = str(form.get("name", "")).strip()
        body: dict[str, Any] = {"kind": kind, "name": name}
        if kind == "system":
            body |= {"ura": str(form.get("ura", "")).strip(), "public_key_pem": str(form.get("public_key", ""))}
        elif kind == "pgo":
            body["redirect_uris"] = [u.strip() for u in str(form.get("redirect_uri", "")).split() if u.strip()]
        else:
            notice(request, "Kies wat voor koppeling het is.", "error")
            return see_other("/koppelingen")
        created = await hub.admin("POST", "apps", json=body)
        notice(request, f"{name} is geregistreerd met client-id {created.get('client_id')}.")
        return see_other("/koppelingen")

    @app.post("/koppelingen/{client_id}/uitzetten")
    async def disable_app(request: Request, client_id: str) -> Response:
        hub = hub_for(request)
        if hub is None:
            return see_other("/inloggen")
        await form_of(request)
        await hub.admin("POST", f"apps/{client_id}/disable")
        notice(request, "De koppeling is uitgezet. Ze kan geen nieuwe tokens meer krijgen.")
        return see_other("/koppelingen")

    @app.post("/koppelingen/{client_id}/aanzetten")
    async def enable_app(request: Request, client_id: str) -> Response:
        hub = hub_for(request)
        if hub is None:
            return see_other("/inloggen")
        await form_of(request)
        await hub.admin("POST", f"apps/{client_id}/enable")
        notice(request, "De koppeling is weer aangezet.")
        return see_other("/koppelingen")

    @app.post("/koppelingen/{client_id}/sleutel")
    async def rotate_app(request: Request, client_id: str) -> Response:
        hub = hub_for(request)
        if hub is None:
            return see_other("/inloggen")
        form = await form_of(request)
        pem = str(form.get("public_key", "")).strip()
        if not pem:
            notice(request, "Plak de nieuwe publieke sleutel (PEM).", "error")
            return see_other("/koppelingen")
        await hub.admin(
            "POST", f"apps/{client_id}/rotate", json={"public_key_pem": pem, "keep_old": form.get("keep_old") == "1"}
        )
        notice(request, "De nieuwe sleutel is vastgelegd.")
        return see_other("/koppelingen")

    @app.get("/personen")
    async def people(request: Request) -> Response:
        hub = hub_for(request)
        if hub is None:
            return see_other("/inloggen")
        return page(request, "personen.html", people=await hub.admin("GET", "people"))

    @app.post("/personen")
    async def add_person(request: Request) -> Response:
        hub = hub_for(request)
        if hub is None:
            return see_other("/inloggen")
        form = await form_of(request)
        body = {"person_id": str(form.get("person_id", "")).strip(), "name": str(form.get("name", "")).strip()}
        bsn = str(form.get("bsn", "")).strip()
        if bsn:
            body["bsn"] = bsn
        await hub.admin("POST", "people", json=body)
        notice(request, f"{body['name']} kan nu inloggen als {body['person_id']}.")
        return see_other("/personen")

    @app.post("/personen/{person_id}/uitzetten")
    async def disable_person(request: Request, person_id: str) -> Response:
        hub = hub_for(request)
        if hub is None:
            return see_other("/inloggen")
        await form_of(request)
        await hub.admin("POST", f"people/{person_id}/disable")
        notice(request, f"{person_id} kan niet meer inloggen.")
        return see_other("/personen")

    @app.get("/papieren-toestemming")
    async def paper_page(request: Request) -> Response:
        hub = hub_for(request)
        if hub is None:
            return see_other("/inloggen")
        orgs = await records.organisations(hub)
        recent = await records.paper_consents(hub, {o.ura: o.name for o in orgs})
        return page(
            request,
            "papier.html",
            orgs=orgs,
            recent=recent,
            categories=ft.CATEGORY_LABELS,
            today=date.today().isoformat(),
        )

    @app.post("/papieren-toestemming")
    async def add_paper(request: Request) -> Response:
        hub = hub_for(request)
        if hub is None:
            return see_other("/inloggen")
        form = await form_of(request)
        fields = {k: str(form.get(k, "")).strip() for k in ("bsn", "decision", "category", "ura", "reason", "signed")}
        problem = records.check_paper(fields)
        if problem:
            notice(request, problem, "error")
            return see_other("/papieren-toestemming")
        patient = await records.patient_by_bsn(hub, fields["bsn"])
        if patient is None:
            notice(request, "Er is geen cliënt met dit BSN in de hub.", "error")
            return see_other("/papieren-toestemming")
        created = await hub.create(records.paper_consent(patient["id"], fields, request.session["admin"]["sub"]))
        notice(
            request,
            f"De papieren {records.DECISIONS[fields['decision']].lower()} voor "
            f"{ft.human_name(patient)} is vastgelegd (Consent/{created.get('id')}).",
        )
        return see_other("/papieren-toestemming")

    @app.get("/auditlog")
    async def audit_page(request: Request) -> Response:
        hub = hub_for(request)
        if hub is None:
            return see_other("/inloggen")
        query = {k: request.query_params.get(k, "").strip() for k in ("bsn", "ura", "app", "from", "to")}
        orgs = await records.organisations(hub)
        result = await records.audit_search(hub, query, {o.ura: o.name for o in orgs})
        verify = request.session.pop("verify", None)
        return page(request, "auditlog.html", query=query, result=result, orgs=orgs, verify=verify)

    @app.post("/auditlog/controleren")
    async def verify(request: Request) -> Response:
        hub = hub_for(request)
        if hub is None:
            return see_other("/inloggen")
        await form_of(request)
        answer = await hub.admin("GET", "audit/verify")
        request.session["verify"] = {
            "ok": bool(answer.get("ok")),
            "records": answer.get("records", 0),
            "checkpoints": answer.get("checkpoints", 0),
            "unsealed": answer.get("unsealed", 0),
            "signatures": bool(answer.get("signatures_checked")),
            "first": (answer.get("problems") or [{}])[0],
            "at": time.strftime("%H:%M:%S"),
        }
        query = request.url.query
        return see_other(f"/auditlog?{query}#controle" if query else "/auditlog#controle")

    @app.get("/meldingen")
    async def deliveries(request: Request) -> Response:
        hub = hub_for(request)
        if hub is None:
            return see_other("/inloggen")
        try:
            answer = await hub.admin("GET", "events/dead-letters")
        except HubError as exc:
            if exc.status not in (404, 405):
                raise
            return page(request, "meldingen.html", available=False, failed=[])
        return page(
            request,
            "meldingen.html",
            available=True,
            failed=answer.get("subscriptions") or [],
            counters=answer.get("counters") or {},
        )

    return app
