"""Export jobs: persisted in ``export_job``/``export_file``, run by a background task in the hub
process, written as NDJSON files under ``var/exports/{job}/``.

What a job exports is decided by the same access policy as every other read: each statement carries
the caller's ``sql_filter``, so an export holds exactly what the caller could have found by searching.
A job reads in keyset batches (``pid > last``, :data:`BATCH` rows per statement), so memory stays
flat and progress (``done`` of ``total``) is known after every batch. When the process stops, its
unfinished jobs are picked up again by the next start (the caller's facts are in the job row).

Audit: when a job completes, one record per client (Patient) whose data it holds: the disclosure of
that client's data to the requester, as ``who saw my data`` needs it.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import shutil
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import and_, delete, false, func, insert, or_, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from hub.access.decision import Policy
from hub.access.principal import Principal
from hub.bulk.tables import export_file, export_job
from hub.fhir import jsonio
from hub.fhir.instants import now_us
from hub.store.search.predicates import local_target
from hub.store.tables import idx_compartment, idx_reference, resource

log = logging.getLogger("hub.bulk")

#: Rows read per statement.
BATCH = 1000
#: Lines per NDJSON file (a type with more gets several files).
FILE_LINES = 50_000
#: Types never exported (the hub's own conformance package is not client data).
NOT_EXPORTED = frozenset({"StructureDefinition", "SearchParameter", "CapabilityStatement", "OperationDefinition"})

ACTIVE = ("queued", "in-progress")
#: A running job reports after every batch; one silent this long (µs) is taken over by another worker.
STALE_US = 60_000_000


@dataclass(frozen=True, slots=True)
class JobSpec:
    """What a kick-off asked for."""

    level: str  # system | patient | group
    types: tuple[str, ...]  # empty: every type
    since: int | None
    group_id: str | None
    request_url: str
    base: str


def owner_of(principal: Principal | None) -> str:
    """Who may poll, download and cancel: the requesting app and the subject it acts as."""
    return f"{getattr(principal, 'client_id', None) or ''}|{getattr(principal, 'subject', '')}"


def principal_json(principal: Principal | None) -> dict[str, Any]:
    if principal is None:
        raise ValueError("an export is a caller's (the hub's own work exports nothing)")
    data = dataclasses.asdict(principal)
    data["scopes"] = sorted(data.get("scopes") or ())
    return data


def principal_from_json(data: dict[str, Any]) -> Principal:
    data = dict(data)
    data["scopes"] = frozenset(data.get("scopes") or ())
    if data.get("practitioner") is not None:
        data["practitioner"] = tuple(data["practitioner"])
    return Principal(**data)


class ExportManager:
    """Creates, runs, cancels and serves export jobs (one per app, started in the lifespan)."""

    def __init__(self, services: Any, directory: Path) -> None:
        self.services = services
        self.directory = directory
        self._tasks: dict[str, asyncio.Task[None]] = {}

    # -- lifecycle ------------------------------------------------------------------------------

    async def start(self) -> None:
        """Pick up the jobs an earlier process left unfinished (they run again from the start)."""
        async with self.services.repo.db.read() as conn:
            rows = (await conn.execute(select(export_job).where(export_job.c.status.in_(ACTIVE)))).mappings().all()
        for row in rows:
            self._spawn(row["job_id"], None)

    async def stop(self) -> None:
        tasks = list(self._tasks.values())
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._tasks.clear()

    async def wait(self, job_id: str) -> None:
        """Until the job's task ends (tests and tools; clients poll)."""
        task = self._tasks.get(job_id)
        if task is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await task

    # -- jobs -----------------------------------------------------------------------------------

    async def submit(self, spec: JobSpec, policy: Policy) -> str:
        """Persist a new job and start it; returns its id."""
        job_id = uuid.uuid4().hex
        now = now_us()
        context = {"principal": principal_json(policy.principal), "base": spec.base}
        async with self.services.repo.db.write() as conn:
            await conn.execute(
                insert(export_job).values(
                    job_id=job_id,
                    owner=owner_of(policy.principal),
                    principal=jsonio.dumps(context).decode(),
                    level=spec.level,
                    group_id=spec.group_id,
                    types=",".join(spec.types) or None,
                    since=spec.since,
                    request_url=spec.request_url,
                    status="queued",
                    created=now,
                    transaction_time=now,
                    heartbeat=now,
                    done=0,
                )
            )
        self._spawn(job_id, policy)
        return job_id

    async def job(self, job_id: str) -> dict[str, Any] | None:
        async with self.services.repo.db.read() as conn:
            row = (await conn.execute(select(export_job).where(export_job.c.job_id == job_id))).mappings().first()
            if row is None:
                return None
            job = dict(row)
            files = (
                (
                    await conn.execute(
                        select(export_file).where(export_file.c.job_id == job_id).order_by(export_file.c.name)
                    )
                )
                .mappings()
                .all()
            )
        job["files"] = [dict(f) for f in files]
        return job

    async def cancel(self, job_id: str) -> None:
        """Stop the job (if running) and delete it and its files."""
        async with self.services.repo.db.write() as conn:
            await conn.execute(update(export_job).where(export_job.c.job_id == job_id).values(status="cancelled"))
        task = self._tasks.pop(job_id, None)
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        async with self.services.repo.db.write() as conn:
            await conn.execute(delete(export_file).where(export_file.c.job_id == job_id))
            await conn.execute(delete(export_job).where(export_job.c.job_id == job_id))
        shutil.rmtree(self.directory / job_id, ignore_errors=True)

    def file_path(self, job_id: str, name: str) -> Path:
        return self.directory / job_id / name

    # -- running --------------------------------------------------------------------------------

    def _spawn(self, job_id: str, policy: Policy | None) -> None:
        """Run the job; ``policy`` None: a job picked up after a restart, its decision rebuilt."""
        task = asyncio.create_task(self._run(job_id, policy), name=f"export-{job_id}")
        self._tasks[job_id] = task
        task.add_done_callback(lambda _t: self._tasks.pop(job_id, None))

    async def _run(self, job_id: str, policy: Policy | None) -> None:
        try:
            await _Run(self, job_id, policy).run()
        except asyncio.CancelledError:
            raise
        except _Cancelled:
            return
        except Exception as exc:  # the job fails; the hub goes on
            log.exception("Export %s failed", job_id)
            async with self.services.repo.db.write() as conn:
                await conn.execute(
                    update(export_job)
                    .where(export_job.c.job_id == job_id, export_job.c.status.in_(ACTIVE))
                    .values(status="failed", error=f"The export failed: {type(exc).__name__}", finished=now_us())
                )


class _Cancelled(Exception):
    """The job was cancelled (possibly by another worker process) while it ran."""


class _Run:
    """One run of one job."""

    def __init__(self, manager: ExportManager, job_id: str, policy: Policy | None) -> None:
        self.manager = manager
        self.db = manager.services.repo.db
        self.job_id = job_id
        #: None until :meth:`run` rebuilds the requester's decision (a job picked up after a restart).
        self.policy: Policy | None = policy
        self.patients: set[str] = set()

    async def run(self) -> None:
        job = await self.manager.job(self.job_id)
        if job is None or job["status"] not in ACTIVE:
            return
        context = jsonio.loads(job["principal"])
        if self.policy is None:  # picked up after a restart: the same decision, rebuilt
            from hub.access.policy import build_policy

            async with self.db.read() as conn:
                self.policy = await build_policy(conn, principal_from_json(context["principal"]))
        if not await self._claim():
            return  # another worker runs it
        folder = self.manager.directory / self.job_id
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir(parents=True, exist_ok=True)
        async with self.db.write() as conn:
            await conn.execute(delete(export_file).where(export_file.c.job_id == self.job_id))
        async with self.db.read() as conn:
            scope = await self._scope(conn, job)
            types = await self._types(conn, job, scope)
            total = 0
            for t in types:
                total += int(
                    (
                        await conn.execute(
                            select(func.count()).select_from(resource).where(*self._conds(t, job, scope))
                        )
                    ).scalar_one()
                )
        await self._progress(0, total)
        done = 0
        for t in types:
            done = await self._export_type(t, job, scope, folder, done, total)
        await self._finish(job)

    async def _claim(self) -> bool:
        """Take the job: a queued one, or an in-progress one whose runner went quiet (one runner each)."""
        now = now_us()
        j = export_job.c
        async with self.db.write() as conn:
            result = await conn.execute(
                update(export_job)
                .where(
                    j.job_id == self.job_id,
                    or_(j.status == "queued", and_(j.status == "in-progress", j.heartbeat < now - STALE_US)),
                )
                .values(status="in-progress", done=0, heartbeat=now)
            )
        return bool(result.rowcount)

    async def _scope(self, conn: AsyncConnection, job: dict[str, Any]) -> Any:
        """For a Group export: the ids of its member Patients (on this hub)."""
        if job["level"] != "group":
            return None
        group = resource.alias("grp")
        ref = idx_reference
        rows = await conn.execute(
            select(ref.c.target_id)
            .select_from(ref.join(group, group.c.pid == ref.c.pid))
            .where(
                group.c.res_type == "Group",
                group.c.res_id == job["group_id"],
                group.c.deleted == false(),
                ref.c.param == "member",
                ref.c.target_type == "Patient",
                local_target(ref, jsonio.loads(job["principal"])["base"]),
            )
        )
        return sorted({r[0] for r in rows})

    async def _types(self, conn: AsyncConnection, job: dict[str, Any], scope: Any) -> list[str]:
        if job["types"]:
            return [t for t in job["types"].split(",") if t]
        rows = await conn.execute(select(resource.c.res_type).where(resource.c.deleted == false()).distinct())
        return sorted(r[0] for r in rows if r[0] not in NOT_EXPORTED)

    def _conds(self, res_type: str, job: dict[str, Any], scope: Any) -> list[Any]:
        r = resource
        conds: list[Any] = [r.c.res_type == res_type, r.c.deleted == false()]
        if job["since"] is not None:
            conds.append(r.c.last_updated >= job["since"])
        if job["level"] in ("patient", "group"):
            comp = select(idx_compartment.c.pid).where(
                idx_compartment.c.comp_type == "Patient", idx_compartment.c.res_type == res_type
            )
            if job["level"] == "group":
                comp = comp.where(idx_compartment.c.comp_id.in_(scope or [""]))
                own = and_(r.c.res_type == "Patient", r.c.res_id.in_(scope or [""]))
            else:
                own = r.c.res_type == "Patient"
            conds.append(or_(r.c.pid.in_(comp), own))
        assert self.policy is not None, "run() builds the policy first"
        conds.append(self.policy.sql_filter(r))
        return conds

    async def _export_type(
        self, res_type: str, job: dict[str, Any], scope: Any, folder: Path, done: int, total: int
    ) -> int:
        last = 0
        part, lines, count = 0, 0, 0
        handle = None
        file_patients: set[str] = set()
        name = ""
        try:
            while True:
                async with self.db.read() as conn:
                    rows = (
                        await conn.execute(
                            select(resource.c.pid, resource.c.content)
                            .where(*self._conds(res_type, job, scope), resource.c.pid > last)
                            .order_by(resource.c.pid)
                            .limit(BATCH)
                        )
                    ).all()
                    if not rows:
                        break
                    from hub.store.resources import patients_of

                    batch_patients = await patients_of(conn, [r[0] for r in rows])
                for _pid, content in rows:
                    if handle is None or lines >= FILE_LINES:
                        if handle is not None:
                            handle.close()
                            await self._file(name, res_type, lines, file_patients)
                            file_patients = set()
                        part += 1
                        name = f"{res_type}-{part}.ndjson"
                        handle = (folder / name).open("wb")
                        lines = 0
                    handle.write(_one_line(content))
                    lines += 1
                    count += 1
                file_patients |= batch_patients
                self.patients |= batch_patients
                last = rows[-1][0]
                done += len(rows)
                await self._progress(done, total)
        finally:
            if handle is not None:
                handle.close()
        if handle is not None and lines:
            await self._file(name, res_type, lines, file_patients)
        return done

    async def _file(self, name: str, res_type: str, count: int, patients: set[str]) -> None:
        async with self.db.write() as conn:
            await conn.execute(
                insert(export_file).values(
                    job_id=self.job_id, name=name, res_type=res_type, count=count, patients=",".join(sorted(patients))
                )
            )

    async def _progress(self, done: int, total: int) -> None:
        async with self.db.write() as conn:
            status = (
                await conn.execute(select(export_job.c.status).where(export_job.c.job_id == self.job_id))
            ).scalar_one_or_none()
            if status not in ACTIVE:
                raise _Cancelled(self.job_id)
            await conn.execute(
                update(export_job)
                .where(export_job.c.job_id == self.job_id)
                .values(done=done, total=total, heartbeat=now_us())
            )

    async def _finish(self, job: dict[str, Any]) -> None:
        async with self.db.write() as conn:
            await conn.execute(
                update(export_job)
                .where(export_job.c.job_id == self.job_id, export_job.c.status.in_(ACTIVE))
                .values(status="completed", finished=now_us())
            )
        await self._audit(job)

    async def _audit(self, job: dict[str, Any]) -> None:
        """One disclosure record per client whose data the export holds."""
        writer = self.manager.services.audit
        if writer is None or not getattr(writer, "enabled", False) or not self.patients:
            return
        from hub.audit.trail import AuditTrail

        path = job["request_url"].split("/fhir/", 1)[-1].split("?", 1)[0]
        query = job["request_url"].partition("?")[2]
        principal = self.policy.principal if self.policy is not None else None
        trail = AuditTrail(writer, "GET", path, query, interaction="operation", principal=principal)
        trail.operation = "export"
        await trail.disclose(200, [(patient,) for patient in sorted(self.patients)])


def _one_line(content: Any) -> bytes:
    """One NDJSON line: the stored JSON, re-serialised only if it is not on one line already."""
    raw = content.encode() if isinstance(content, str) else bytes(content)
    if b"\n" in raw or b"\r" in raw:
        raw = jsonio.dumps(jsonio.loads(raw))
    return raw + b"\n"
