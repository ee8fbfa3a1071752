"""A typed client of the hub's FHIR API over httpx, with the adapter's own credentials.

- every request carries a bearer token from :class:`~adapters.common.auth.ClientCredentials`
  (refetched once when the hub answers 401);
- connection errors and 5xx answers are retried with exponential backoff (the adapters only send
  requests that are safe to repeat: reads, conditional creates, version-checked updates and
  transactions built from those);
- :meth:`HubClient.upsert` writes a resource idempotently by one of its identifiers.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import httpx

from adapters.common.auth import ClientCredentials
from adapters.common.errors import HubError, HubUnavailable

FHIR_JSON = "application/fhir+json"
Resource = dict[str, Any]

#: Fields the server owns; left out when comparing what is stored with what would be written.
SERVER_FIELDS = frozenset({"id", "meta", "text"})


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how patiently to retry a request that failed for the hub's reasons."""

    attempts: int = 5
    base_delay: float = 0.1
    max_delay: float = 3.0

    def delay(self, attempt: int) -> float:
        """Full-jitter exponential backoff for the ``attempt``-th retry (1-based)."""
        return random.uniform(0, min(self.max_delay, self.base_delay * 2 ** (attempt - 1)))


@dataclass(frozen=True)
class Upserted:
    """What :meth:`HubClient.upsert` did: ``created``, ``updated`` or ``unchanged``; the stored resource."""

    action: str
    resource: Resource


def same_content(a: Mapping[str, Any], b: Mapping[str, Any]) -> bool:
    """Equal apart from server-owned fields (id, meta, narrative)."""
    return {k: v for k, v in a.items() if k not in SERVER_FIELDS} == {
        k: v for k, v in b.items() if k not in SERVER_FIELDS
    }


def identifier_query(system: str, value: str) -> str:
    return f"{system}|{value}"


class HubClient:
    """The hub's FHIR API for one adapter. ``base`` is the FHIR base URL (``.../fhir``)."""

    def __init__(
        self,
        base: str,
        credentials: ClientCredentials | None,
        *,
        http: httpx.AsyncClient | None = None,
        retry: RetryPolicy | None = None,
        timeout: float = 30.0,
    ) -> None:
        self.base = base.rstrip("/")
        self.credentials = credentials
        self.retry = retry or RetryPolicy()
        self._own_http = http is None
        self.http = http or httpx.AsyncClient(timeout=timeout, limits=httpx.Limits(max_connections=32))

    async def aclose(self) -> None:
        if self._own_http:
            await self.http.aclose()

    async def __aenter__(self) -> HubClient:
        return self

    async def __aexit__(self, *_exc: object) -> None:
        await self.aclose()

    # -- plumbing -----------------------------------------------------------------------------

    def url(self, path: str) -> str:
        return path if path.startswith(("http://", "https://")) else f"{self.base}/{path.lstrip('/')}"

    async def request(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        params: Mapping[str, str] | Sequence[tuple[str, str]] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> httpx.Response:
        """Send one request; retries connection errors and 5xx (of the token endpoint too); raises
        :class:`HubError` on 4xx."""
        refreshed = False
        attempt = 0
        while True:
            attempt += 1
            all_headers = {"Accept": FHIR_JSON, **(headers or {})}
            if json is not None:
                all_headers["Content-Type"] = FHIR_JSON
            if self.credentials is not None:
                try:
                    token = await self.credentials.token(self.http)
                except HubUnavailable:
                    if attempt >= self.retry.attempts:
                        raise
                    await asyncio.sleep(self.retry.delay(attempt))
                    continue
                all_headers["Authorization"] = f"Bearer {token}"
            try:
                response = await self.http.request(
                    method, self.url(path), json=json, params=_params(params), headers=all_headers
                )
            except httpx.TransportError as exc:
                if attempt >= self.retry.attempts:
                    raise HubUnavailable(0, f"{method} {path}: {exc!r}") from exc
                await asyncio.sleep(self.retry.delay(attempt))
                continue
            if response.status_code == 401 and self.credentials is not None and not refreshed:
                refreshed = True
                self.credentials.invalidate()
                continue
            if response.status_code >= 500:
                if attempt >= self.retry.attempts:
                    raise HubUnavailable(response.status_code, f"{method} {path}: {response.text[:300]}")
                await asyncio.sleep(self.retry.delay(attempt))
                continue
            if response.status_code >= 400:
                raise HubError(response.status_code, f"{method} {path}: {_message(response)}", _body(response))
            return response

    # -- interactions -------------------------------------------------------------------------

    async def read(self, res_type: str, res_id: str) -> Resource:
        return dict((await self.request("GET", f"{res_type}/{res_id}")).json())

    async def search(self, res_type: str, params: Mapping[str, str] | Sequence[tuple[str, str]]) -> list[Resource]:
        """Every match (following ``next`` links), ``_include``d resources too, in server order."""
        return [e["resource"] for e in await self.search_entries(res_type, params)]

    async def search_entries(
        self, res_type: str, params: Mapping[str, str] | Sequence[tuple[str, str]], max_pages: int = 100
    ) -> list[dict[str, Any]]:
        bundle = (await self.request("GET", res_type, params=params)).json()
        entries = list(bundle.get("entry") or [])
        for _ in range(max_pages):
            nxt = next((link["url"] for link in bundle.get("link") or [] if link.get("relation") == "next"), None)
            if not nxt:
                break
            bundle = (await self.request("GET", nxt)).json()
            entries += bundle.get("entry") or []
        return entries

    async def create(self, resource: Resource, *, if_none_exist: str | None = None) -> Resource:
        headers = {"Prefer": "return=representation"}
        if if_none_exist:
            headers["If-None-Exist"] = if_none_exist
        return dict((await self.request("POST", resource["resourceType"], json=resource, headers=headers)).json())

    async def update(self, resource: Resource, *, version: str | None = None) -> Resource:
        headers = {"Prefer": "return=representation"}
        if version is not None:
            headers["If-Match"] = f'W/"{version}"'
        path = f"{resource['resourceType']}/{resource['id']}"
        return dict((await self.request("PUT", path, json=resource, headers=headers)).json())

    async def transaction(self, entries: list[dict[str, Any]]) -> dict[str, Any]:
        """Send entries as one transaction Bundle (all or nothing); the response Bundle."""
        bundle = {"resourceType": "Bundle", "type": "transaction", "entry": entries}
        return dict((await self.request("POST", "", json=bundle)).json())

    async def batch(self, entries: list[dict[str, Any]]) -> dict[str, Any]:
        bundle = {"resourceType": "Bundle", "type": "batch", "entry": entries}
        return dict((await self.request("POST", "", json=bundle)).json())

    async def upsert(self, resource: Resource, system: str, value: str) -> Upserted:
        """Write ``resource`` keyed by identifier ``system|value``: created when absent (a conditional
        create, safe to repeat), updated when different (version-checked), left alone when equal."""
        found = await self.search(resource["resourceType"], {"identifier": identifier_query(system, value)})
        if not found:
            created = await self.create(resource, if_none_exist=f"identifier={identifier_query(system, value)}")
            return Upserted("created", created)
        if len(found) > 1:
            raise HubError(412, f"{resource['resourceType']} identifier {system}|{value} matches {len(found)}")
        current = found[0]
        if same_content(current, resource):
            return Upserted("unchanged", current)
        body = {**resource, "id": current["id"]}
        version = (current.get("meta") or {}).get("versionId")
        return Upserted("updated", await self.update(body, version=version))


def _params(params: Mapping[str, str] | Sequence[tuple[str, str]] | None) -> httpx.QueryParams | None:
    if params is None:
        return None
    return httpx.QueryParams(list(params.items()) if isinstance(params, Mapping) else list(params))


def _body(response: httpx.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        return response.text


def _message(response: httpx.Response) -> str:
    body = _body(response)
    if isinstance(body, dict) and body.get("resourceType") == "OperationOutcome":
        return "; ".join(str(i.get("diagnostics") or i.get("code")) for i in body.get("issue") or [])
    return str(body)[:300]
