"""End to end in a real browser: the client, their mantelzorger and an administrator, on SQLite and PostgreSQL.

The hub, the PGO and the admin console run as separate live processes; Debian's Chromium is driven by
Playwright. Every page must not trip its own Content-Security-Policy, and is checked with axe-core (no
serious or critical violations) at desktop and 360 px width and must not scroll sideways on a phone:
those page checks judge the apps' HTML, the same on either database, and run on SQLite only (so do the
screenshots of every page, to docs/screenshots/). Every step and assertion of the flows runs on both.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import Browser, Page, expect

from tests.apps.browser import Checker, chromium, new_context
from tests.apps.stack import Stack, people_side

CLIENT_BSN = "999993653"  # Johanna Smit in the demo network
HUISARTS = "org:00012345:practitioner:900001111"  # Anna de Vries, Huisartsenpraktijk De Linde
WIJKVERPLEGING = "org:00023456:practitioner:900002222"
VERPLEEGHUIS = "org:00056789:practitioner:900005555"
URA = "http://fhir.nl/fhir/NamingSystem/ura"
HUB_NS = "https://zorgnet-hub.nl/fhir"


@pytest.fixture(scope="module")
def stack(backend: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    with people_side(backend, tmp_path_factory.mktemp(f"people-{backend}")) as running:
        yield running


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with chromium() as b:
        yield b


def _fhir(stack: Stack, spec: str, **headers: str) -> httpx.Client:
    token = stack.hub.token(spec)
    return httpx.Client(base_url=stack.hub.base, headers={"Authorization": f"Bearer {token}", **headers}, timeout=30)


def _professionals_at_work(stack: Stack) -> str:
    """What the professionals do before the client looks: reads, a changed wish, a handover, an emergency."""
    with _fhir(stack, HUISARTS) as ha:
        found = ha.get("/Patient", params={"identifier": f"http://fhir.nl/fhir/NamingSystem/bsn|{CLIENT_BSN}"})
        patient = found.json()["entry"][0]["resource"]["id"]
        assert ha.get("/CarePlan", params={"subject": f"Patient/{patient}"}).status_code == 200
        wishes = ha.get("/Consent", params={"patient": f"Patient/{patient}", "scope": "treatment"}).json()
        directive = wishes["entry"][0]["resource"]
        directive["dateTime"] = "2026-06-01"
        assert ha.put(f"/Consent/{directive['id']}", json=directive).status_code == 200
    with _fhir(stack, WIJKVERPLEGING) as wv:
        notice = {
            "resourceType": "Composition",
            "status": "final",
            "type": {"coding": [{"system": "http://loinc.org", "code": "57830-2", "display": "Aanmeldbericht"}]},
            "subject": {"reference": f"Patient/{patient}"},
            "date": "2026-11-20T10:00:00+01:00",
            "author": [{"identifier": {"system": URA, "value": "00023456"}}],
            "title": "Aanmeldbericht",
        }
        created = wv.post("/Composition", json=notice)
        assert created.status_code == 201, created.text
        task = {
            "resourceType": "Task",
            "status": "requested",
            "intent": "order",
            "code": {
                "coding": [{"system": "http://snomed.info/sct", "code": "308292007", "display": "Overdracht van zorg"}]
            },
            "for": {"reference": f"Patient/{patient}"},
            "requester": {"identifier": {"system": URA, "value": "00023456"}},
            "owner": {"identifier": {"system": URA, "value": "00056789"}},
            "description": "Overdracht naar Verpleeghuis De Boomgaard",
            "input": [
                {
                    "type": {"coding": [{"system": "http://loinc.org", "code": "57830-2"}]},
                    "valueReference": {"reference": f"Composition/{created.json()['id']}"},
                }
            ],
        }
        sent = wv.post("/Task", json=task)
        assert sent.status_code == 201, sent.text
    with _fhir(stack, VERPLEEGHUIS, **{"x-break-glass": "Bewusteloos binnengebracht, familie onbereikbaar"}) as vh:
        assert vh.get("/CarePlan", params={"subject": f"Patient/{patient}"}).status_code == 200
    return str(patient)


def _public_pem() -> str:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    key = ec.generate_private_key(ec.SECP256R1()).public_key()
    return key.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo).decode()


def _login_client(page: Page, stack: Stack, bsn: str) -> None:
    page.goto(stack.pgo + "/")
    expect(page).to_have_url(re.compile(r"/inloggen$"))
    page.get_by_role("button", name="Inloggen").click()
    page.fill("input[name=login_bsn]", bsn)  # the hub's development login (stands in for DigiD)
    page.get_by_role("button", name="Log in").click()
    page.get_by_role("button", name="Approve").click()
    expect(page).to_have_url(stack.pgo + "/")


def _login_person(page: Page, stack: Stack, person: str) -> None:
    page.goto(stack.pgo + "/inloggen")
    page.get_by_role("button", name="Inloggen").click()
    page.check(f"input[name=person_id][value={person}]")
    page.get_by_role("button", name="Log in").click()
    page.get_by_role("button", name="Approve").click()
    expect(page).to_have_url(stack.pgo + "/")


def test_client_mantelzorger_and_admin(stack: Stack, browser: Browser, backend: str) -> None:
    checker = Checker(write_screenshots=backend == "sqlite", page_checks=backend == "sqlite")
    patient = _professionals_at_work(stack)

    # --- the client logs in and looks around
    client_ctx = new_context(browser)
    page = checker.watch(client_ctx.new_page())
    page.goto(stack.pgo + "/")
    checker.check(page, "pgo-inloggen")
    _login_client(page, stack, CLIENT_BSN)
    expect(page.get_by_role("heading", level=1)).to_contain_text("Johanna Smit")
    checker.check(page, "pgo-overzicht")

    page.get_by_role("link", name="Mijn netwerk").first.click()
    main = page.locator("main")
    for name in ("Marieke Smit", "Henk de Boer", "Anna de Vries", "Huisartsenpraktijk De Linde", "Wijkverpleegkundige"):
        expect(main).to_contain_text(name)
    text = main.inner_text()
    assert "00012345" not in text and "900001111" not in text  # names and roles, never URA/UZI
    checker.check(page, "pgo-netwerk")

    page.goto(stack.pgo + "/zorgplan")
    expect(main).to_contain_text("Hulp bij wassen en aankleden")
    expect(main).to_contain_text("Geen valincidenten")
    own_goal = page.get_by_label("Mijn doel")
    expect(own_goal).to_have_value("Zo lang mogelijk zelfstandig thuis blijven wonen")
    own_goal.fill("Zo lang mogelijk thuis wonen, met mijn tuin")
    page.get_by_role("button", name="Doel opslaan").click()
    expect(page.get_by_role("status").filter(has_text="Uw doel is opgeslagen")).to_be_visible()
    expect(page.get_by_label("Mijn doel")).to_have_value("Zo lang mogelijk thuis wonen, met mijn tuin")
    expect(page.locator(".goal").filter(has_text="Geen valincidenten").locator("textarea")).to_have_count(0)
    checker.check(page, "pgo-zorgplan")

    page.goto(stack.pgo + "/wensen")
    expect(main).to_contain_text("Ik wil dit niet: reanimatie")
    expect(main).to_contain_text("Eerdere versies (1)")
    expect(main).to_contain_text("Thuis")
    checker.check(page, "pgo-wensen")

    page.goto(stack.pgo + "/overdracht")
    expect(main).to_contain_text("Overdracht naar Verpleeghuis De Boomgaard")
    expect(main).to_contain_text("Aangevraagd")
    expect(main).to_contain_text("Wijkverpleging Zorg Dichtbij")
    checker.check(page, "pgo-overdracht")
    # live update: the nursing home accepts the handover while the client looks at the page
    with _fhir(stack, VERPLEEGHUIS) as vh:  # the receiver answers its own Task (the workflow rules)
        task = vh.get("/Task", params={"patient": f"Patient/{patient}", "status": "requested"}).json()
        resource = task["entry"][0]["resource"]
        resource["status"] = "accepted"
        answered = vh.put(f"/Task/{resource['id']}", json=resource)
        assert answered.status_code == 200, answered.text
    expect(page.locator("#live-region")).to_be_visible(timeout=15_000)
    page.get_by_role("link", name="Toon de nieuwe versie").click()
    expect(main).to_contain_text("Geaccepteerd")

    page.goto(stack.pgo + "/wie-keek-mee")
    expect(main).to_contain_text("Anna de Vries")
    expect(main).to_contain_text("Huisartsenpraktijk De Linde")
    expect(page.locator(".look.emergency").first).to_contain_text("Bewusteloos binnengebracht")
    expect(page.locator(".look.emergency").first).to_contain_text("Verpleeghuis De Boomgaard")
    checker.check(page, "pgo-wie-keek-mee")

    page.goto(stack.pgo + "/toestemming")
    checker.check(page, "pgo-toestemming")
    # object to the home care organisation seeing my wishes, then withdraw the objection
    home_care = page.locator("details.org").filter(has_text="Thuiszorg Samen Thuis")
    home_care.locator("summary").click()
    home_care.get_by_label("Ik wil niet dat Thuiszorg Samen Thuis dit ziet:").select_option("acp")
    home_care.get_by_role("button", name="Bezwaar maken").click()
    objection = page.locator(".objections li").filter(has_text="Thuiszorg Samen Thuis")
    expect(objection).to_contain_text("Wensen voor zorg en behandeling")
    home_care = page.locator("details.org").filter(has_text="Thuiszorg Samen Thuis")
    home_care.locator("summary").click()
    expect(home_care.locator("li").filter(has_text="Wensen voor zorg")).to_contain_text("Mag niet zien")
    objection.get_by_role("button", name="Bezwaar intrekken").click()
    expect(page.locator("main")).to_contain_text("U heeft geen bezwaren vastgelegd")
    page.get_by_label("Inlognaam van uw mantelzorger").fill("marieke")
    page.get_by_label("Zorgplan (doelen en afspraken)").check()
    page.get_by_label("Tot en met welke datum?").fill((date.today() + timedelta(days=90)).isoformat())
    page.get_by_role("button", name="Toestemming geven").click()
    expect(page.locator(".delegations")).to_contain_text("marieke")
    expect(page.locator(".delegations")).to_contain_text("Zorgplan")

    # --- the mantelzorger logs in: only the care plan, adds an activity of her own
    carer_ctx = new_context(browser)
    carer = checker.watch(carer_ctx.new_page())
    _login_person(carer, stack, "marieke")
    nav = carer.get_by_role("navigation", name="Onderdelen")
    expect(nav.get_by_role("link")).to_have_count(1)
    expect(nav.get_by_role("link", name="Mijn zorgplan")).to_be_visible()
    checker.check(carer, "pgo-mantelzorger-overzicht")
    carer.goto(stack.pgo + "/netwerk")
    expect(carer.locator("main")).to_contain_text("Er is niemand in uw netwerk die u hier mag zien")
    carer.goto(stack.pgo + "/wensen")
    expect(carer.locator("main")).to_contain_text("Er zijn geen wensen vastgelegd")
    carer.goto(stack.pgo + "/zorgplan")
    expect(carer.locator("main")).to_contain_text("Hulp bij wassen en aankleden")
    carer.get_by_label("Wat gaat u doen?").select_option("gezelschap")
    carer.get_by_label("Korte beschrijving").fill("Samen wandelen op zondag")
    carer.get_by_role("button", name="Toevoegen").click()
    mine = carer.locator(".activity").filter(has_text="Samen wandelen op zondag")
    expect(mine).to_contain_text("Gepland")
    mine.get_by_label("Hoe staat het ervoor?").select_option("in-progress")
    mine.get_by_role("button", name="Bijwerken").click()
    expect(carer.locator(".activity").filter(has_text="Samen wandelen op zondag")).to_contain_text("Bezig")
    expect(carer.locator(".activity").filter(has_text="Hulp bij wassen").get_by_role("button")).to_have_count(0)
    expect(carer.locator(".say")).to_have_count(0)  # pausing or ending another party's activity is the client's
    checker.check(carer, "pgo-mantelzorger-zorgplan")

    # --- the client sees the new activity and withdraws the delegation; the carer's next page is empty
    page.goto(stack.pgo + "/zorgplan")
    expect(page.locator("main")).to_contain_text("Samen wandelen op zondag")
    page.goto(stack.pgo + "/toestemming")
    page.locator(".delegations li").filter(has_text="marieke").get_by_role("button", name="Intrekken").click()
    expect(page.locator("main")).to_contain_text("Niemand kijkt namens u mee")
    carer.goto(stack.pgo + "/zorgplan")
    expect(carer.locator("main")).to_contain_text("Er is geen zorgplan dat u mag zien")
    expect(carer.locator("main")).not_to_contain_text("Samen wandelen")

    # --- the administrator records a paper opt-in and verifies the audit chain
    admin_ctx = new_context(browser)
    admin = checker.watch(admin_ctx.new_page())
    admin.goto(stack.admin + "/")
    expect(admin).to_have_url(re.compile(r"/inloggen$"))
    checker.check(admin, "admin-inloggen")
    admin.get_by_label("Beheerderstoken").fill(stack.hub.token("admin"))
    admin.get_by_role("button", name="Inloggen").click()
    expect(admin).to_have_url(stack.admin + "/")
    checker.check(admin, "admin-overzicht")
    admin.goto(stack.admin + "/organisaties")
    expect(admin.locator("main")).to_contain_text("Verpleeghuis De Boomgaard")
    admin.get_by_label("Naam", exact=True).fill("Apotheek De Brug")
    admin.get_by_label("URA (8 cijfers)").fill("00067890")
    admin.get_by_label("Soort organisatie").select_option("A1")
    admin.get_by_role("button", name="Toevoegen").click()
    pharmacy = admin.locator("tr").filter(has_text="Apotheek De Brug")
    expect(pharmacy).to_contain_text("00067890")
    pharmacy.get_by_role("button", name="Uitzetten Apotheek De Brug").click()
    expect(admin.locator("tr").filter(has_text="Apotheek De Brug")).to_contain_text("nee")
    checker.check(admin, "admin-organisaties")
    admin.goto(stack.admin + "/koppelingen")
    expect(admin.locator("main")).to_contain_text("Mijn Zorgnet (PGO)")
    admin.get_by_label("Naam", exact=True).last.fill("Proef-app")
    admin.get_by_label("Redirect-URI (precies)").fill("https://proef.example/callback")
    admin.get_by_role("button", name="Registreren").last.click()
    expect(admin.get_by_role("status").filter(has_text="Proef-app is geregistreerd")).to_be_visible()
    admin.get_by_role("button", name="Uitzetten Proef-app").click()
    expect(admin.locator("tr").filter(has_text="Proef-app")).to_contain_text("uitgezet")
    admin.get_by_label("Naam", exact=True).first.fill("Proef-ECD")
    admin.get_by_label("URA van de organisatie").fill("00023456")
    admin.get_by_label("Publieke sleutel (PEM)").fill(_public_pem())
    admin.get_by_role("button", name="Registreren").first.click()
    system = admin.locator("tr").filter(has_text="Proef-ECD")
    expect(system).to_contain_text("Wijkverpleging Zorg Dichtbij")
    system.locator("summary").click()
    system.get_by_label("Nieuwe publieke sleutel (PEM)").fill(_public_pem())
    system.get_by_role("button", name="Sleutel vervangen").click()
    expect(admin.get_by_role("status").filter(has_text="De nieuwe sleutel is vastgelegd")).to_be_visible()
    checker.check(admin, "admin-koppelingen")
    admin.goto(stack.admin + "/personen")
    expect(admin.locator("main")).to_contain_text("Marieke Smit")
    admin.get_by_label("Inlognaam").fill("sara.vrijwilliger")
    admin.get_by_label("Naam", exact=True).fill("Sara Jansen")
    admin.get_by_role("button", name="Toevoegen").click()
    expect(admin.locator("tr").filter(has_text="Sara Jansen")).to_contain_text("actief")
    admin.get_by_role("button", name="Uitzetten Sara Jansen").click()
    expect(admin.locator("tr").filter(has_text="Sara Jansen")).to_contain_text("uitgezet")
    checker.check(admin, "admin-personen")
    admin.goto(stack.admin + "/meldingen")
    checker.check(admin, "admin-meldingen")

    admin.goto(stack.admin + "/papieren-toestemming")
    admin.get_by_label("BSN van de cliënt").fill(CLIENT_BSN)
    admin.get_by_label("Toestemming (opt-in)").check()
    admin.get_by_label("Welke gegevens?").select_option("medisch")
    admin.get_by_label("Voor welke organisatie?").select_option("00012345")
    admin.get_by_label("Datum van ondertekening").fill(date.today().isoformat())
    admin.get_by_label("Reden van vastlegging door de beheerder (verplicht)").fill(
        "Formulier afgegeven bij de balie; mevrouw gebruikt geen PGO"
    )
    admin.get_by_role("button", name="Vastleggen").click()
    expect(admin.get_by_role("status").filter(has_text="is vastgelegd")).to_be_visible()
    recent = admin.locator("table").filter(has_text="Papieren toestemmingen")
    expect(recent).to_contain_text("Formulier afgegeven bij de balie")
    expect(recent).to_contain_text("Johanna Smit")
    checker.check(admin, "admin-papieren-toestemming")

    admin.goto(stack.admin + f"/auditlog?bsn={CLIENT_BSN}&ura=00056789")
    expect(admin.locator("table.audit")).to_contain_text("NOODTOEGANG")
    expect(admin.locator("table.audit")).to_contain_text("Verpleeghuis De Boomgaard")
    admin.goto(stack.admin + f"/auditlog?bsn={CLIENT_BSN}")
    expect(admin.locator("table.audit")).to_contain_text("Consent/")
    admin.get_by_role("button", name="Keten controleren").click()
    expect(admin.locator("#keten-status")).to_contain_text("De keten is in orde")
    expect(admin).to_have_url(re.compile(rf"/auditlog\?bsn={CLIENT_BSN}#controle$"))
    checker.check(admin, "admin-auditlog")

    # the opt-in is in force at once: the client's permissions page says the GP may now see medical data
    page.goto(stack.pgo + "/toestemming")
    gp = page.locator("details.org").filter(has_text="Huisartsenpraktijk De Linde")
    gp.locator("summary").click()
    expect(gp.locator("li").filter(has_text="Medische gegevens")).to_contain_text("Mag zien")
    expect(gp.locator("li").filter(has_text="Medische gegevens")).to_contain_text("toestemming voor gegeven")

    assert not checker.console_errors, checker.console_errors
    for ctx in (client_ctx, carer_ctx, admin_ctx):
        ctx.close()
    assert len(checker.checked) == 18
    if checker.write_screenshots:
        shots = sorted(p.name for p in (Path(__file__).resolve().parents[2] / "docs" / "screenshots").glob("*.png"))
        assert len(shots) >= 36


def _plan_of(stack: Stack) -> tuple[str, dict[str, Any]]:
    with _fhir(stack, WIJKVERPLEGING) as wv:
        found = wv.get("/Patient", params={"identifier": f"http://fhir.nl/fhir/NamingSystem/bsn|{CLIENT_BSN}"})
        patient = found.json()["entry"][0]["resource"]["id"]
        plans = wv.get("/CarePlan", params={"subject": f"Patient/{patient}", "status": "active"}).json()
        return str(patient), plans["entry"][0]["resource"]


def _wijk_activity(plan: dict[str, Any], code: str, description: str) -> dict[str, Any]:
    """An activity the wijkverpleging performs: its nurse (the plan's author, the coordinator) is the performer."""
    return {
        "detail": {
            "extension": [
                {"url": f"{HUB_NS}/StructureDefinition/ext-ActivityPerformerKind", "valueCode": "professional"}
            ],
            "code": {"coding": [{"system": f"{HUB_NS}/CodeSystem/care-activity", "code": code}]},
            "status": "scheduled",
            "description": description,
            "performer": [plan["author"]],
        }
    }


def _detail(stack: Stack, description: str) -> dict[str, Any]:
    """The activity's detail as the hub has it (read back through the API by the wijkverpleging)."""
    _, plan = _plan_of(stack)
    return next(a["detail"] for a in plan["activity"] if a["detail"].get("description") == description)


def test_client_cancels_the_wijkverplegings_activity_with_a_reason(
    stack: Stack,
    browser: Browser,
    backend: str,
) -> None:
    checker = Checker(write_screenshots=backend == "sqlite", page_checks=backend == "sqlite")
    wound, pills = "Wondzorg aan het linkerbeen, maandag en donderdag", "Medicijnen klaarzetten voor de week"
    _, plan = _plan_of(stack)
    plan["activity"] += [_wijk_activity(plan, "verpleging", wound), _wijk_activity(plan, "medicatie", pills)]
    with _fhir(stack, WIJKVERPLEGING) as wv:  # the coordinator assigns activities, here to itself
        assert wv.put(f"/CarePlan/{plan['id']}", json=plan).status_code == 200

    ctx = new_context(browser)
    page = checker.watch(ctx.new_page())
    _login_client(page, stack, CLIENT_BSN)
    page.goto(stack.pgo + "/zorgplan")
    activity = page.locator(".activity").filter(has_text=wound)
    expect(activity).to_contain_text("Gepland")
    activity.get_by_text("Verpleging pauzeren of annuleren").click()
    reason = activity.get_by_label("Reden (verplicht)")
    expect(reason).to_be_visible()
    expect(activity.locator("button")).to_have_text(["Pauzeren", "Annuleren"])
    # only spaces: the app refuses, says why at the field, and puts the focus there
    reason.fill("   ")
    activity.get_by_role("button", name="Annuleren").click()
    expect(page.get_by_role("alert")).to_have_text("Schrijf de reden op.")
    reason = page.locator(".activity").filter(has_text=wound).get_by_label("Reden (verplicht)")
    expect(reason).to_be_focused()
    expect(reason).to_have_attribute("aria-invalid", "true")
    checker.check(page, "pgo-zorgplan-reden")

    reason.fill("Mijn dochter verzorgt het been nu zelf")
    page.locator(".activity").filter(has_text=wound).get_by_role("button", name="Annuleren").click()
    expect(page.get_by_role("status").filter(has_text="Verpleging is geannuleerd")).to_be_visible()
    activity = page.locator(".activity").filter(has_text=wound)
    expect(activity).to_contain_text("Geannuleerd")
    expect(activity).to_contain_text("Reden: Mijn dochter verzorgt het been nu zelf")
    expect(activity.locator(".say")).to_have_count(0)  # final: no more buttons
    detail = _detail(stack, wound)
    assert detail["status"] == "cancelled"
    assert detail["statusReason"] == {"text": "Mijn dochter verzorgt het been nu zelf"}

    # the wijkverpleging reports the other activity done while the client's page is open: the hub
    # refuses her cancel (a final status is the performer's) and the app says so
    pills_form = page.locator(".activity").filter(has_text=pills)
    pills_form.get_by_text("Hulp bij medicijnen pauzeren of annuleren").click()
    pills_form.get_by_label("Reden (verplicht)").fill("Dat doe ik liever zelf")
    _, plan = _plan_of(stack)
    done = next(a for a in plan["activity"] if a["detail"].get("description") == pills)
    done["detail"]["status"] = "completed"
    with _fhir(stack, WIJKVERPLEGING) as wv:
        assert wv.put(f"/CarePlan/{plan['id']}", json=plan).status_code == 200
    pills_form.get_by_role("button", name="Annuleren").click()
    alert = page.get_by_role("alert")
    expect(alert).to_contain_text("de zorgnet-hub staat dit niet toe")
    expect(alert).to_contain_text("Er is niets veranderd")
    expect(page.locator(".activity").filter(has_text=pills)).to_contain_text("Klaar")
    expect(page.locator(".activity").filter(has_text=pills).locator(".say")).to_have_count(0)
    assert _detail(stack, pills)["status"] == "completed"
    assert "statusReason" not in _detail(stack, pills)

    assert not checker.console_errors, checker.console_errors
    ctx.close()
