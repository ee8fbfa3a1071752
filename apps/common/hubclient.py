"""The hub's public HTTP API as the apps use it: FHIR calls and the admin REST API, with a bearer token.

Every failure becomes a :class:`HubError` carrying a plain-Dutch sentence (:mod:`apps.common.outcome`),
so a page shows one sentence and never a stack trace.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

import httpx

from apps.common.outcome import UNREACHABLE, plain_dutch

FHIR_JSON = "application/fhir+json"
Params = Mapping[str, str] | list[tuple[str, str]] | None


class HubError(Exception):
    """A refused or failed hub call: ``status`` (0 when unreachable) and a sentence for people."""

    def __init__(self, status: int, message: str, outcome: Any = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.outcome = outcome


class HubClient:
    """One caller's view of the hub (their token); shares the app's connection pool."""

    def __init__(self, http: httpx.AsyncClient, hub_url: str, token: str) -> None:
        self.http = http
        self.hub_url = hub_url.rstrip("/")
        self.fhir = f"{self.hub_url}/fhir"
        self.token = token

    def _headers(self, extra: Mapping[str, str] | None = None) -> dict[str, str]:
        headers = {"Authorization": f"Bearer {self.token}", "Accept": FHIR_JSON}
        return headers | dict(extra or {})

    async def request(
        self,
        method: str,
        url: str,
        *,
        params: Params = None,
        json: Any = None,
        headers: Mapping[str, str] | None = None,
    ) -> Any:
        """Call the hub; the parsed JSON answer (None for an empty one) or a :class:`HubError`."""
        extra = dict(headers or {})
        if json is not None:
            extra.setdefault("Content-Type", FHIR_JSON if "/fhir/" in url else "application/json")
        try:
            query: Any = params
            answer = await self.http.request(method, url, params=query, json=json, headers=self._headers(extra))
        except httpx.HTTPError:
            raise HubError(0, UNREACHABLE) from None
        body: Any = None
        if answer.content:
            try:
                body = answer.json()
            except ValueError:
                body = None
        if answer.status_code >= 400:
            raise HubError(answer.status_code, plain_dutch(answer.status_code, body), body)
        return body

    # --- FHIR

    async def read(self, res_type: str, res_id: str) -> dict[str, Any]:
        return dict(await self.request("GET", f"{self.fhir}/{res_type}/{res_id}"))

    async def search(self, res_type: str, params: Params = None) -> dict[str, Any]:
        """One page of a search (a searchset Bundle)."""
        return dict(await self.request("GET", f"{self.fhir}/{res_type}", params=params))

    async def search_all(self, res_type: str, params: Params = None, *, max_pages: int = 10) -> list[dict[str, Any]]:
        """Every resource of a search (matches and includes), following ``next`` links up to ``max_pages``."""
        bundle = await self.search(res_type, params)
        out = list(resources(bundle))
        for _ in range(max_pages - 1):
            link = next_link(bundle)
            if not link:
                break
            bundle = dict(await self.request("GET", link))
            out += resources(bundle)
        return out

    async def history(self, res_type: str, res_id: str) -> list[dict[str, Any]]:
        return list(resources(dict(await self.request("GET", f"{self.fhir}/{res_type}/{res_id}/_history"))))

    async def create(self, resource: dict[str, Any]) -> dict[str, Any]:
        return dict(
            await self.request(
                "POST",
                f"{self.fhir}/{resource['resourceType']}",
                json=resource,
                headers={"Prefer": "return=representation"},
            )
            or {}
        )

    async def update(self, resource: dict[str, Any]) -> dict[str, Any]:
        headers = {"Prefer": "return=representation"}
        version = (resource.get("meta") or {}).get("versionId")
        if version:
            headers["If-Match"] = f'W/"{version}"'
        url = f"{self.fhir}/{resource['resourceType']}/{resource['id']}"
        return dict(await self.request("PUT", url, json=resource, headers=headers) or {})

    async def operation(self, path: str, parameters: list[dict[str, Any]] | None = None) -> Any:
        """``POST {fhir}/{path}`` with a Parameters body (``GET`` when ``parameters`` is None)."""
        if parameters is None:
            return await self.request("GET", f"{self.fhir}/{path}")
        return await self.request(
            "POST", f"{self.fhir}/{path}", json={"resourceType": "Parameters", "parameter": parameters}
        )

    # --- the hub's admin REST API

    async def admin(self, method: str, path: str, *, params: Params = None, json: Any = None) -> Any:
        return await self.request(method, f"{self.hub_url}/admin/{path.lstrip('/')}", params=params, json=json)


def resources(bundle: Mapping[str, Any]) -> Iterator[dict[str, Any]]:
    for entry in bundle.get("entry") or []:
        if isinstance(entry, dict) and isinstance(entry.get("resource"), dict):
            yield entry["resource"]


def next_link(bundle: Mapping[str, Any]) -> str | None:
    for link in bundle.get("link") or []:
        if link.get("relation") == "next":
            return str(link.get("url"))
    return None
