"""``make conformance``: Nictiz's eOverdracht 4.0 qualification TestScripts against the hub and the
wijkverpleging adapter, in each role.

    .venv/bin/python -m scripts.conformance.eoverdracht --scripts DIR [--out FILE]

The scripts are Nictiz's (not copied into the repository): ``--scripts`` names their
``eOverdracht-4.0-Test`` folder (Nictiz's testscripts repository, checked out wherever you like); when
it is not given or holds no scripts this says so and exits 2. A live hub (SQLite, in a temporary
directory) is started with the adapter registered as a system app of the nursing organisation, the
adapter runs as its own process
(``adapter-wijkverpleging serve``), and :mod:`.simulator` plays Nictiz's side.

Each script tests phase 2 (the handoff, 'overdrachtfase'); phase 1 (the advance notice, which Nictiz
tests in scripts not among these) is brought about first by the harness through the same public paths:

- ``Receiving-XIS`` and ``Receiving-XIS-NoDocument`` (the simulator sends, the hub receives): the
  simulator serves the scenario's Task as ``requested`` with an advance notice, notifies the adapter,
  and the receiving organisation accepts in the hub; then the script runs (the simulator without
  ``$document`` for NoDocument). The receiving organisation's steps in the hub (in-progress, completed)
  are what the harness does when the script awaits the SUT's Task update.
- ``Sending-XIS`` (the hub sends, the simulator receives): the sending organisation stores the
  scenario's handoff in the hub and starts an exported overdracht; the simulator accepts, the handoff is
  attached, the simulator sets in-progress; then the script runs, awaiting the adapter's notification.
"""

from __future__ import annotations

import argparse
import asyncio
import copy
import json
import re
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import httpx
from dateutil.relativedelta import relativedelta

from scripts.conformance.profiles import ProfileCheck
from scripts.conformance.simulator import RUNNER_HEADER, Simulator
from scripts.conformance.testscript import Exchange, Json, Operation, Outcome, Runner, Script, stu3_json

REPO = Path(__file__).resolve().parents[2]
ROLES = ("Receiving-XIS", "Receiving-XIS-NoDocument", "Sending-XIS")
OWN_URA = "00056789"
URA = "http://fhir.nl/fhir/NamingSystem/ura"
BSN = "http://fhir.nl/fhir/NamingSystem/bsn"
SCT = "http://snomed.info/sct"
SOURCE = "urn:ietf:rfc:3986"
EXCHANGE = "https://zorgnet-hub.nl/fhir/CodeSystem/overdracht-exchange"
HANDOFF_STU3 = "11171000146100"
SENDER_ID = "nictiz"
WAIT = 30.0

_DATE = re.compile(r"\$\{DATE,\s*T\s*(?:,\s*([YyMDd])\s*,\s*([+-]?\d+))?\s*\}")
_UNITS = {"Y": "years", "y": "years", "M": "months", "D": "days", "d": "days"}


def fixture_text(text: str, values: dict[str, str]) -> str:
    """A reference resource with Touchstone's variables resolved: dates relative to today
    (``${DATE, T, d, -5}``, ``${CURRENTDATE}``) and the script's variables (``${task-id}``)."""
    today = date.today()

    def shifted(m: re.Match[str]) -> str:
        if m.group(1) is None:
            return today.isoformat()
        return (today + relativedelta(**{_UNITS[m.group(1)]: int(m.group(2))})).isoformat()

    text = _DATE.sub(shifted, text).replace("${CURRENTDATE}", today.isoformat())
    for name, value in values.items():
        text = text.replace("${" + name + "}", value)
    return text


def load_reference(scripts: Path) -> list[Json]:
    """The scenarios' shared resources (patients, organisations, the handoffs and what they reference)."""
    out = []
    for path in sorted((scripts / "_reference" / "resources" / "resources-generic").glob("*.xml")):
        out.append(stu3_json(fixture_text(path.read_text("utf-8"), {}).encode()))
    return out


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class World:
    """The hub, the adapter's registration and credentials, the simulator."""

    def __init__(self, hub: Any, registered: Any, work: Path, sim: Simulator) -> None:
        self.hub = hub
        self.registered = registered
        self.work = work
        self.sim = sim
        self.org_token = hub.token(f"org:{OWN_URA}")
        self.config = work / "adapter.json"  # the running adapter's configuration (see :func:`adapter`)

    def org(self) -> httpx.AsyncClient:
        """The nursing organisation's own system working in the hub (not the adapter)."""
        return httpx.AsyncClient(
            base_url=self.hub.base, headers={"Authorization": f"Bearer {self.org_token}"}, timeout=60
        )

    def hub_client(self) -> Any:
        from adapters.common.auth import ClientCredentials, load_private_key
        from adapters.common.client import HubClient, RetryPolicy

        token_url = self.hub.base[: -len("/fhir")] + "/auth/token"
        creds = ClientCredentials(self.registered.client_id, load_private_key(self.registered.key_file), token_url)
        return HubClient(self.hub.base, creds, retry=RetryPolicy(attempts=3, base_delay=0.1))


def register_network(hub: Any, reference: list[Json]) -> None:
    """As the network's administrator: the nursing organisation, the scenarios' clients, and the
    organisation in each client's care team (the referral that led to the handover)."""
    admin = {"Authorization": f"Bearer {hub.token('admin')}", "Content-Type": "application/fhir+json"}
    with httpx.Client(base_url=hub.base, headers=admin, timeout=60) as http:
        org = {
            "resourceType": "Organization",
            "identifier": [{"system": URA, "value": OWN_URA}],
            "active": True,
            "name": "Wijkzorg Rivierstad",
        }
        r = http.post("/Organization", json=org, headers={"If-None-Exist": f"identifier={URA}|{OWN_URA}"})
        r.raise_for_status()
        org_id = r.json()["id"]
        for patient in (r for r in reference if r["resourceType"] == "Patient"):
            bsn = next((i["value"] for i in patient.get("identifier") or [] if i.get("system") == BSN), None)
            if not bsn:
                continue
            name = (patient.get("name") or [{}])[0]
            body = {
                "resourceType": "Patient",
                "identifier": [{"system": BSN, "value": bsn}],
                "name": [{"family": name.get("family", "onbekend"), "given": name.get("given", [])}],
            }
            r = http.post("/Patient", json=body, headers={"If-None-Exist": f"identifier={BSN}|{bsn}"})
            r.raise_for_status()
            team = {
                "resourceType": "CareTeam",
                "status": "active",
                "subject": {"reference": f"Patient/{r.json()['id']}"},
                "participant": [{"member": {"reference": f"Organization/{org_id}"}}],
            }
            http.post("/CareTeam", json=team).raise_for_status()


@contextmanager
def adapter(world: World, token: str) -> Iterator[str]:
    """``adapter-wijkverpleging serve`` with the simulator as its sender and receiver; yields its URL."""
    port = free_port()
    config = world.work / f"adapter-{port}.json"
    config.write_text(
        json.dumps(
            {
                "hub_base": world.hub.base,
                "client_id": world.registered.client_id,
                "private_key": str(world.registered.key_file),
                "state": str(world.work / f"adapter-{port}.sqlite"),
                "ura": OWN_URA,
                "listen": {"host": "127.0.0.1", "port": port},
                "mirror_interval": 0.3,
                "senders": [{"id": SENDER_ID, "fhir_base": f"{world.sim.base}/fhir"}],
                "receivers": [{"id": SENDER_ID, "notify_url": f"{world.sim.base}/notify", "token": token}],
            }
        ),
        "utf-8",
    )
    cli = Path(sys.executable).parent / "adapter-wijkverpleging"
    log = (world.work / f"adapter-{port}.log").open("wb")
    proc = subprocess.Popen(
        [str(cli), "serve", "--config", str(config)],
        cwd=REPO,  # noqa: S603
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + WAIT
        while True:
            try:
                if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError((world.work / f"adapter-{port}.log").read_text(errors="replace")[-2000:])
            time.sleep(0.1)
        world.config = config
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=15)
        log.close()


def announce(world: World, task_id: str) -> None:
    cli = Path(sys.executable).parent / "adapter-wijkverpleging"
    out = subprocess.run(  # noqa: S603
        [
            str(cli),
            "announce",
            "--config",
            str(world.config),
            "--task",
            task_id,
            "--receiver",
            SENDER_ID,
        ],
        capture_output=True,
        check=False,
        cwd=REPO,
    )
    if out.returncode != 0:
        raise RuntimeError(f"announce failed: {out.stderr.decode(errors='replace')[-1500:]}")


async def wait_for(world: World, since: int, match: Any) -> Exchange:
    deadline = time.monotonic() + WAIT
    while True:
        for exchange in world.sim.log[since:]:
            if match(exchange):
                return exchange
        if time.monotonic() > deadline:
            seen = [f"{e.method} {e.path}" for e in world.sim.log[since:]]
            raise TimeoutError(f"the SUT did not make the request in {WAIT:.0f} s (saw {seen})")
        await asyncio.sleep(0.1)


def advance_notice(task: Json) -> Json:
    """Phase 1's advance notice for a scenario's Task (not among the phase-2 reference resources)."""
    agent = copy.deepcopy((task.get("requester") or {}).get("agent") or {})
    agent.pop("extension", None)
    return {
        "resourceType": "Composition",
        "id": f"advance-notice-{task['id']}"[:64],
        "meta": {"profile": ["http://nictiz.nl/fhir/StructureDefinition/eOverdracht-AdvanceNotice"]},
        "status": "final",
        "type": {"coding": [{"system": "http://loinc.org", "code": "57830-2", "display": "Aanmeldbericht"}]},
        "subject": task["for"],
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "author": [agent],
        "title": "Aanmeldbericht",
        "section": [
            {
                "title": "Reden van overdracht",
                "text": {
                    "status": "generated",
                    "div": '<div xmlns="http://www.w3.org/1999/xhtml">Overdracht van zorg</div>',
                },
            }
        ],
    }


def phase1_task(task: Json, notice: Json) -> Json:
    out = copy.deepcopy(task)
    out["status"] = "requested"
    out.pop("output", None)
    out["input"] = [
        {
            "type": {"coding": [{"system": SCT, "code": "721915006", "display": "aanmeldbericht"}]},
            "valueReference": {"reference": f"Composition/{notice['id']}", "display": "Aanmeldbericht"},
        }
    ]
    return out


async def hub_task_of(world: World, sim_task_id: str) -> Json:
    async with world.org() as org:
        r = await org.get("/Task", params={"identifier": f"{SOURCE}|{world.sim.base}/fhir/Task/{sim_task_id}"})
        entries = r.json().get("entry") or []
        if not entries:
            raise RuntimeError(f"the hub has no Task for the simulator's Task/{sim_task_id}")
        return dict(entries[0]["resource"])


async def set_status(world: World, task_id: str, status: str) -> None:
    async with world.org() as org:
        task = (await org.get(f"/Task/{task_id}")).json()
        task["status"] = status
        r = await org.put(f"/Task/{task_id}", json=task)
        if r.status_code != 200:
            raise RuntimeError(f"the organisation could not set {status}: {r.text[:300]}")


class ReceivingHarness:
    """The simulator sends (destination 1, origin 2); the adapter and the hub receive."""

    def __init__(self, world: World, endpoint: str) -> None:
        self.world = world
        self.endpoint = endpoint
        self.mark = 0
        self.hub_task = ""

    def base(self, destination: int) -> str:
        return f"{self.world.sim.base}/fhir" if destination == 1 else self.endpoint

    async def phase1(self, runner: Runner) -> None:
        task = runner.fixture("initial-task-fixture")
        if task is None:
            raise RuntimeError("the script has no initial-task-fixture")
        notice = advance_notice(task)
        self.world.sim.put(notice)
        self.world.sim.put(phase1_task(task, notice))
        async with httpx.AsyncClient(timeout=60) as http:
            r = await http.post(f"{self.endpoint}/{task['id']}", headers={"Authorization": "Bearer simulator"})
            if r.status_code >= 300:
                raise RuntimeError(f"phase 1 notification refused: {r.status_code} {r.text[:300]}")
        self.hub_task = (await hub_task_of(self.world, task["id"]))["id"]
        since = len(self.world.sim.log)
        await set_status(self.world, self.hub_task, "accepted")
        await wait_for(
            self.world, since, lambda e: e.method == "PUT" and (e.request_body or {}).get("status") == "accepted"
        )
        self.mark = len(self.world.sim.log)

    async def await_sut(self, op: Operation, path: str, fixture: Json | None) -> Exchange:
        method = {"read": "GET", "update": "PUT", "create": "POST"}[op.code]
        if op.code == "update" and fixture is not None:
            want = fixture.get("status")
            current = (await hub_task_of(self.world, str(fixture["id"])))["status"]
            steps = {"accepted": ["in-progress", "completed"], "in-progress": ["completed"]}.get(current, [])
            for step in steps[: steps.index(want) + 1] if want in steps else []:
                await set_status(self.world, self.hub_task, step)
            return await wait_for(
                self.world,
                self.mark,
                lambda e: e.method == method and e.path.endswith(path) and (e.request_body or {}).get("status") == want,
            )
        return await wait_for(self.world, self.mark, lambda e: e.method == method and e.path.endswith(path))


class SendingHarness:
    """The hub and the adapter send (destination 1 is the adapter's STU3 facade); the simulator receives."""

    def __init__(self, world: World, endpoint: str, token: str) -> None:
        self.world = world
        self.facade = f"{endpoint}/stu3/{SENDER_ID}"
        self.token = token
        self.mark = 0
        self.hub_task = ""

    def base(self, destination: int) -> str:
        return self.facade if destination == 1 else self.world.sim.base

    async def phase1(self, script: Script) -> None:
        from adapters.wijkverpleging.receiver import Receiver
        from adapters.wijkverpleging.sender_api import references
        from adapters.wijkverpleging.state import State

        path = script.fixtures["initial-task-fixture"]
        task = stu3_json(fixture_text(path.read_text("utf-8"), {"task-id": f"scenario-{script.id}"[:64]}).encode())
        handoff_ref = next(
            i["valueReference"]["reference"]
            for i in task["input"]
            if any(c.get("code") == HANDOFF_STU3 for c in i["type"]["coding"])
        )
        notice = advance_notice(task)
        first = phase1_task(task, notice)
        store = {**self.world.sim.store, f"Composition/{notice['id']}": notice}
        closure: dict[str, Json] = {}
        queue = [*references(first), handoff_ref]
        while queue:
            ref = queue.pop()
            if ref not in closure and ref in store:
                closure[ref] = store[ref]
                queue += references(store[ref])
        owner_org = store.get(str((task.get("owner") or {}).get("reference")), {})
        owner_id = (owner_org.get("identifier") or [{"system": SOURCE, "value": "urn:nictiz:receiver"}])[0]
        source = "https://sending-xis.example/fhir"
        async with self.world.hub_client() as hub, httpx.AsyncClient() as http:
            receiver = Receiver(hub, http, State(self.world.work / "seed.sqlite"), OWN_URA)
            entries = receiver.transaction(source, {f"Task/{first['id']}": first, **closure}, None)
            receiver.state.close()
            for e in entries:
                if e["resource"]["resourceType"] == "Task":
                    e["resource"]["meta"]["tag"] = [{"system": EXCHANGE, "code": "exported"}]
                    e["resource"]["requester"] = {"reference": f"Organization?identifier={URA}|{OWN_URA}"}
                    e["resource"]["owner"] = {
                        "identifier": {"system": owner_id["system"], "value": owner_id["value"]},
                        "display": owner_org.get("name", "ontvangende organisatie"),
                    }
            await hub.transaction(entries)
            hub_task = (await hub.search("Task", {"identifier": f"{SOURCE}|{source}/Task/{first['id']}"}))[0]
            handoff = (await hub.search("Composition", {"identifier": f"{SOURCE}|{source}/{handoff_ref}"}))[0]
        self.hub_task = str(hub_task["id"])
        since = len(self.world.sim.log)
        announce(self.world, self.hub_task)
        await wait_for(self.world, since, lambda e: e.method == "POST")
        await self._decide("accepted")
        async with self.world.org() as org:
            r = await org.patch(
                f"/Task/{self.hub_task}",
                json=[
                    {
                        "op": "add",
                        "path": "/input/-",
                        "value": {
                            "type": {
                                "coding": [
                                    {
                                        "system": SCT,
                                        "code": HANDOFF_STU3,
                                        "display": "verslag van verpleegkundige overdracht",
                                    }
                                ]
                            },
                            "valueReference": {"reference": f"Composition/{handoff['id']}"},
                        },
                    }
                ],
                headers={"Content-Type": "application/json-patch+json"},
            )
            if r.status_code != 200:
                raise RuntimeError(f"attaching the handoff failed: {r.text[:300]}")
        await self._decide("in-progress")
        self.mark = len(self.world.sim.log)

    async def _decide(self, status: str) -> None:
        headers = {"Authorization": self.token, RUNNER_HEADER: "1"}
        async with httpx.AsyncClient(timeout=60, headers=headers) as http:
            task = (await http.get(f"{self.facade}/Task/{self.hub_task}")).json()
            task["status"] = status
            r = await http.put(f"{self.facade}/Task/{self.hub_task}", json=task)
            if r.status_code != 200:
                raise RuntimeError(f"the simulated receiver could not set {status}: {r.text[:300]}")

    async def await_sut(self, op: Operation, path: str, fixture: Json | None) -> Exchange:
        if op.code == "create":  # the notification: the sending organisation announces (again)
            announce(self.world, self.hub_task)
            return await wait_for(self.world, self.mark, lambda e: e.method == "POST")
        raise RuntimeError(f"no way to make the sending SUT do '{op.code}'")


class RunnerClient(httpx.AsyncClient):
    """The runner's own requests, marked so that the simulator does not log them as the SUT's."""

    def __init__(self) -> None:
        super().__init__(timeout=60, headers={RUNNER_HEADER: "1"})


async def run_script(world: World, role: str, path: Path, checks: ProfileCheck) -> tuple[Script, list[Outcome]]:
    script = Script.load(path)
    token = script.token() or "Bearer simulator-token-000000"
    world.sim.document = role != "Receiving-XIS-NoDocument"
    with adapter(world, token.removeprefix("Bearer ")) as endpoint:
        async with RunnerClient() as http:
            if role.startswith("Receiving"):
                receiving = ReceivingHarness(world, f"{endpoint}/senders/{SENDER_ID}/Task")
                given = {"notificationEndpoint": receiving.endpoint, "authorization-token-id": "Bearer simulator"}
                runner = Runner(script, receiving, http, checks, given, fixture_text)
                try:
                    await receiving.phase1(runner)
                except Exception as exc:  # noqa: BLE001 - reported as the script's failure
                    return script, [Outcome("phase 1", "harness", "fail", str(exc))]
            else:
                sending = SendingHarness(world, endpoint, token)
                runner = Runner(script, sending, http, checks, {}, fixture_text)
                try:
                    await sending.phase1(script)
                except Exception as exc:  # noqa: BLE001 - reported as the script's failure
                    return script, [Outcome("phase 1", "harness", "fail", str(exc))]
            return script, await runner.run()


@asynccontextmanager
async def _database(backend: str, work: Path) -> AsyncIterator[str]:
    """The hub's database: a SQLite file in ``work``, or a PostgreSQL database made now (under
    ``HUB_TEST_PG_ADMIN_URL``, as the tests do) and dropped afterwards."""
    from tests.conftest import _pg_create, _pg_drop

    if backend == "sqlite":
        yield f"sqlite+aiosqlite:///{work / 'hub.db'}"
        return
    name = f"hub_conformance_{uuid.uuid4().hex[:12]}"
    url = await _pg_create(name)
    try:
        yield url
    finally:
        await _pg_drop(name)


async def run_all(
    scripts: Path, out: Path, roles: tuple[str, ...] = ROLES, match: str = "", backend: str = "sqlite"
) -> int:
    """Every script of ``roles`` against a live hub on ``backend`` (a SQLite file, or a throwaway
    PostgreSQL database under ``HUB_TEST_PG_ADMIN_URL``) and the adapter."""
    from tests.adapters.registration import register_system_app
    from tests.api.live import live_hub

    reference = load_reference(scripts)
    checks = ProfileCheck()
    results: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="conformance-") as tmp:
        work = Path(tmp)
        async with _database(backend, work) as url:
            with live_hub(url, work) as hub:
                registered = register_system_app(hub.env, work, "wijkzorg-conformance", OWN_URA)
                register_network(hub, reference)
                sim = Simulator(reference, free_port())
                sim.start()
                try:
                    world = World(hub, registered, work, sim)
                    for role in roles:
                        for path in sorted(p for p in (scripts / role).glob("*.xml") if match in p.name):
                            script, outcomes = await run_script(world, role, path, checks)
                            counts = {
                                k: sum(1 for o in outcomes if o.result == k)
                                for k in ("pass", "fail", "warning", "skip")
                            }
                            print(
                                f"{role:26} {script.id:50} " + " ".join(f"{k} {v}" for k, v in counts.items()),
                                flush=True,
                            )
                            results.append(
                                {
                                    "role": role,
                                    "script": script.id,
                                    "counts": counts,
                                    "outcomes": [o.__dict__ for o in outcomes],
                                }
                            )
                finally:
                    sim.stop()
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=1), "utf-8")
    print(summary(results))
    return 0 if all(r["counts"]["fail"] == 0 and r["counts"]["skip"] == 0 for r in results) else 1


def summary(results: list[dict[str, Any]]) -> str:
    """The README table: per role, scripts and asserts passed, and every failure with its reason."""
    lines = ["| role | scripts | asserts passed | failed | warnings | skipped |", "|---|---|---|---|---|---|"]
    for role in ROLES:
        rows = [r for r in results if r["role"] == role]
        total = {k: sum(r["counts"][k] for r in rows) for k in ("pass", "fail", "warning", "skip")}
        asserts = sum(total.values())
        lines.append(
            f"| {role} | {len(rows)} | {total['pass']}/{asserts} | {total['fail']} | {total['warning']} | "
            f"{total['skip']} |"
        )
    failures: dict[tuple[str, str, str], list[str]] = {}
    for r in results:
        for o in r["outcomes"]:
            if o["result"] in ("fail", "warning"):
                message = re.sub(r"[0-9a-f]{8}-[0-9a-f-]{27}", "<id>", o["message"])[:160]
                failures.setdefault((r["role"], o["label"], message), []).append(r["script"])
    if failures:
        lines += ["", "| role | assert | result | scripts |", "|---|---|---|---|"]
        for (role, label, message), names in sorted(failures.items()):
            lines.append(f"| {role} | {label} | {message} | {len(names)} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--scripts", type=Path, default=None, help="the eOverdracht-4.0-Test folder of Nictiz's testscripts"
    )
    parser.add_argument("--out", type=Path, default=REPO / "var" / "conformance" / "eoverdracht.json")
    parser.add_argument("--role", choices=ROLES, action="append", help="only these roles (default: all)")
    parser.add_argument("--match", default="", help="only scripts whose file name contains this")
    parser.add_argument(
        "--backend", choices=("sqlite", "postgresql"), default="sqlite", help="the hub's database (default: sqlite)"
    )
    args = parser.parse_args(argv)
    if args.scripts is None or not (args.scripts / "Sending-XIS").is_dir():
        where = f"not at {args.scripts}" if args.scripts is not None else "not given"
        print(
            f"make conformance: Nictiz's eOverdracht 4.0 TestScripts are {where}; nothing was run.\n"
            "They are not part of the repository; give their eOverdracht-4.0-Test folder: "
            "make conformance CONFORMANCE_SCRIPTS=DIR.",
            file=sys.stderr,
        )
        return 2
    return asyncio.run(run_all(args.scripts, args.out, tuple(args.role or ROLES), args.match, args.backend))


if __name__ == "__main__":
    sys.exit(main())
