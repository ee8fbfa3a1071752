"""Reading a GP system's FHIR endpoint (STU3 or R4): the queries of Nictiz's GP data TestScripts, per client.

The GP system is the other side's server: it may be slow, page its answers, or fail now and then.
Every search follows its ``next`` links to the end; a 5xx, 429 or a connection problem is retried with
backoff, and after the last attempt the client's sync stops with :class:`GpUnavailable` (it resumes
from its high-water mark the next time).
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

import httpx

log = logging.getLogger("adapter.huisarts.gp")
FHIR_JSON = "application/fhir+json"
BSN = "http://fhir.nl/fhir/NamingSystem/bsn"
PRESCRIPTION = "http://snomed.info/sct|16076005"
NHG45 = "https://referentiemodel.nhg.org/tabellen/nhg-tabel-45-diagnostische-bepalingen"


class GpUnavailable(RuntimeError):
    """The GP system did not answer usefully after the retries."""


class GpRefused(RuntimeError):
    """The GP system refused a query (4xx): a configuration or conformance problem, not retried."""


@dataclass(frozen=True)
class Query:
    """One search the adapter sends per client (``patient`` and ``_lastUpdated`` are added)."""

    resource_type: str
    params: tuple[tuple[str, str], ...] = ()


JOURNAAL = "http://fhir.nl/fhir/NamingSystem/journaalregeltypen"
#: How far back measurements go in the summary.
MEASUREMENT_MONTHS = 14


def summary_queries(today: date) -> tuple[Query, ...]:
    """The summary's queries. Those of the MedMij GP data 2.0 TestScripts for a GP system (XIS-Server),
    with the practice-level ``patient`` parameter added (a PHR gets the patient from its token): episodes,
    allergies, current prescriptions with their products (``category`` = prescription,
    ``_include=MedicationRequest:medication``) and diagnostic results (``code`` = NHG table 45, ``date``
    from 14 months back). Added for the network: problems (the episodes' diagnoses), alerts, SOEP journal
    lines (by journaalregeltype) and treatment directives."""
    since = (today - timedelta(days=MEASUREMENT_MONTHS * 31)).isoformat()
    return (
        Query("Condition"),
        Query("EpisodeOfCare"),
        Query("Flag"),
        Query("AllergyIntolerance"),
        Query("MedicationRequest", (("category", PRESCRIPTION), ("_include", "MedicationRequest:medication"))),
        Query("Observation", (("code", f"{NHG45}|"), ("date", f"ge{since}"))),
        Query("Observation", (("code", f"{JOURNAAL}|"),)),
        Query("Consent"),
    )


class GpClient:
    """A GP system's FHIR base (``.../fhir``) with the practice's own credentials (a bearer token)."""

    def __init__(
        self,
        base: str,
        token: str,
        *,
        attempts: int = 6,
        base_delay: float = 0.2,
        timeout: float = 20.0,
        page_size: int = 50,
        http: httpx.AsyncClient | None = None,
    ) -> None:
        self.base = base.rstrip("/")
        self.token = token
        self.attempts = attempts
        self.base_delay = base_delay
        self.page_size = page_size
        self._own = http is None
        self.http = http or httpx.AsyncClient(timeout=timeout)

    async def aclose(self) -> None:
        if self._own:
            await self.http.aclose()

    async def _get(self, url: str, params: Sequence[tuple[str, str]] | None = None) -> dict[str, Any]:
        for attempt in range(1, self.attempts + 1):
            try:
                response = await self.http.get(
                    url,
                    params=list(params) if params else None,
                    headers={"Accept": FHIR_JSON, "Authorization": f"Bearer {self.token}"},
                )
            except httpx.TransportError as exc:
                problem = f"{url}: {exc!r}"
            else:
                if response.status_code == 200:
                    body = response.json()
                    if not isinstance(body, dict):
                        raise GpRefused(f"{url}: the answer is not a FHIR resource")
                    return body
                if response.status_code < 500 and response.status_code != 429:
                    raise GpRefused(f"{url}: {response.status_code} {response.text[:300]}")
                problem = f"{url}: {response.status_code}"
            if attempt == self.attempts:
                raise GpUnavailable(problem)
            log.warning("GP system: %s (attempt %d of %d), retrying", problem, attempt, self.attempts)
            await asyncio.sleep(random.uniform(0, min(5.0, self.base_delay * 2 ** (attempt - 1))))
        raise GpUnavailable(url)  # pragma: no cover - the loop always returns or raises

    async def search(
        self, resource_type: str, params: Sequence[tuple[str, str]]
    ) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        """Every match of a search (all pages), and the included resources."""
        matches: list[dict[str, Any]] = []
        included: list[dict[str, Any]] = []
        bundle = await self._get(f"{self.base}/{resource_type}", [*params, ("_count", str(self.page_size))])
        pages = 0
        while True:
            pages += 1
            if bundle.get("resourceType") != "Bundle":
                raise GpRefused(f"{resource_type}: the answer is not a Bundle")
            for entry in bundle.get("entry", []):
                resource = entry.get("resource")
                if not isinstance(resource, dict):
                    continue
                mode = (entry.get("search") or {}).get("mode", "match")
                (included if mode == "include" else matches).append(resource)
            nxt = next((link.get("url") for link in bundle.get("link", []) if link.get("relation") == "next"), None)
            if not nxt or pages > 1000:
                return matches, included
            bundle = await self._get(str(nxt))

    async def patient_by_bsn(self, bsn: str) -> dict[str, Any] | None:
        """The practice's Patient with this BSN (with its general practitioner), or None."""
        found, _gp = await self.search(
            "Patient", [("identifier", f"{BSN}|{bsn}"), ("_include", "Patient:general-practitioner")]
        )
        return found[0] if found else None


__all__ = ["MEASUREMENT_MONTHS", "GpClient", "GpRefused", "GpUnavailable", "Query", "summary_queries"]
