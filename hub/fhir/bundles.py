"""Building response Bundles from stored rows without parsing them: entries embed the stored JSON
as raw fragments (orjson.Fragment), so a page of 500 resources costs no JSON parsing at all.
"""

from __future__ import annotations

import uuid
from typing import Any, Protocol

import orjson

from hub.fhir.instants import now_us, to_iso


class Stored(Protocol):
    """One stored version as a Bundle entry needs it (:class:`hub.store.resources.Stored` is one;
    this layer knows the standard, not the store)."""

    @property
    def res_type(self) -> str: ...
    @property
    def res_id(self) -> str: ...
    @property
    def version(self) -> int: ...
    @property
    def last_updated(self) -> int: ...
    @property
    def deleted(self) -> bool: ...
    @property
    def content(self) -> str | None: ...
    @property
    def method(self) -> str | None: ...
    @property
    def etag(self) -> str: ...


def raw(content: str | bytes) -> orjson.Fragment:
    return orjson.Fragment(content)


def bundle(
    bundle_type: str,
    entries: list[dict[str, Any]],
    *,
    total: int | None = None,
    links: list[tuple[str, str]] | None = None,
) -> dict[str, Any]:
    out: dict[str, Any] = {
        "resourceType": "Bundle",
        "id": str(uuid.uuid4()),
        "meta": {"lastUpdated": to_iso(now_us())},
        "type": bundle_type,
    }
    if total is not None:
        out["total"] = total
    if links:
        out["link"] = [{"relation": rel, "url": url} for rel, url in links]
    out["entry"] = entries
    if not entries:
        del out["entry"]
    return out


def full_url(base: str, stored: Stored) -> str:
    return f"{base}/{stored.res_type}/{stored.res_id}"


def history_entry(base: str, stored: Stored) -> dict[str, Any]:
    """A history Bundle entry: the version (absent for a deletion), and how it came to be."""
    entry: dict[str, Any] = {"fullUrl": full_url(base, stored)}
    if stored.content is not None and not stored.deleted:
        entry["resource"] = raw(stored.content)
    method = stored.method or "PUT"
    url = stored.res_type if method == "POST" else f"{stored.res_type}/{stored.res_id}"
    entry["request"] = {"method": "PUT" if method == "PATCH" else method, "url": url}
    status = {"POST": "201 Created", "DELETE": "204 No Content"}.get(method, "200 OK")
    if method == "PUT" and stored.version == 1:
        status = "201 Created"
    entry["response"] = {
        "status": status,
        "etag": stored.etag,
        "lastModified": to_iso(stored.last_updated),
    }
    return entry


def search_entry(base: str, stored: Stored, mode: str = "match", content: Any = None) -> dict[str, Any]:
    return {
        "fullUrl": full_url(base, stored),
        "resource": content if content is not None else raw(stored.content or "{}"),
        "search": {"mode": mode},
    }
