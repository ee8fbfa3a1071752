"""Emergency access ("break the glass"): a stored, time-bounded grant for one client.

A professional of a *registered* care provider (:mod:`hub.access.organisations`) opens it with
``POST Patient/{id}/$break-glass`` naming a reason from :data:`REASONS` and a free text. The grant
lasts :data:`DEFAULT_MINUTES` (setting ``break_glass_minutes``) and then ends by itself; while it is
in force, that organisation's requests carrying the ``X-Break-Glass`` header also see the client's
data the client did not object to (:meth:`hub.access.policy.AccessPolicy._emergency`). Opening it
is logged against the client at once (so it is in the client's own audit view before the answer
leaves) and counted (``hub_break_glass_total`` in /metrics).
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import insert
from sqlalchemy.ext.asyncio import AsyncConnection

from hub.access import organisations
from hub.access.tables import break_glass
from hub.fhir.errors import BadRequest, Forbidden

#: Why the glass may be broken (code -> meaning).
REASONS: dict[str, str] = {
    "acute-zorg": "Acute zorg: direct handelen nodig",
    "levensbedreigend": "Levensbedreigende situatie",
    "niet-aanspreekbaar": "Client niet aanspreekbaar, geen vertegenwoordiger bereikbaar",
    "spoedoverdracht": "Spoedoverdracht zonder toestemming vooraf",
}
DEFAULT_MINUTES = 120
MIN_TEXT = 5


@dataclass(frozen=True, slots=True)
class Grant:
    org_ura: str
    patient_id: str
    reason_code: str
    reason_text: str
    start: int
    end: int


def check_reason(code: object, text: object) -> tuple[str, str]:
    if not isinstance(code, str) or code not in REASONS:
        raise BadRequest(f"reason must be one of {', '.join(sorted(REASONS))}", code="value", expression="reason")
    if not isinstance(text, str) or len(text.strip()) < MIN_TEXT:
        raise BadRequest(f"text must explain the emergency (at least {MIN_TEXT} characters)", expression="text")
    return code, text.strip()


async def open_grant(
    conn: AsyncConnection,
    ura: str | None,
    practitioner: str | None,
    patient_id: str,
    code: str,
    text: str,
    now: int,
    minutes: int = DEFAULT_MINUTES,
) -> Grant:
    """Store a grant for [now, now + minutes) after checking the organisation is a registered,
    active care provider."""
    org = await organisations.get(conn, ura)
    if ura is None or org is None or org.kind != "zorgaanbieder":
        raise Forbidden("Emergency access (break the glass) is for registered care providers only")
    end = now + minutes * 60 * 1_000_000
    await conn.execute(
        insert(break_glass).values(
            org_ura=ura,
            patient_id=patient_id,
            reason_code=code,
            reason_text=text,
            practitioner=practitioner,
            start=now,
            end=end,
        )
    )
    return Grant(ura, patient_id, code, text, now, end)


__all__ = ["DEFAULT_MINUTES", "REASONS", "Grant", "check_reason", "open_grant"]
