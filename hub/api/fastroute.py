"""The FHIR catch-all, matched first and by a prefix test.

FastAPI matches a request against every route of every included router in order (twice for the
router it picks) and then solves the endpoint's dependencies; for ``/fhir/...``, nearly every
request the hub gets, that cost as much as the rest of the request path outside the store. This
route sits first in the app's routes, claims ``/fhir`` and ``/fhir/...`` for the methods the FHIR
endpoint takes, and runs the endpoint as a plain Starlette request-response app (the same
exception handlers apply). Everything else, also a path under ``/fhir`` that another route serves
(``/fhir/bulkstatus/...``) or a method the endpoint does not take, is left to the routes behind
it, where the FHIR router stays included: answers are the same as without this route.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable
from typing import Any

from starlette._exception_handler import wrap_app_handling_exceptions
from starlette.datastructures import URLPath
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Match, NoMatchFound, get_route_path
from starlette.types import ASGIApp, Receive, Scope, Send

Endpoint = Callable[[Request, str], Awaitable[Response]]


class PrefixRoute(BaseRoute):
    """``prefix`` and everything under it, except paths starting with one of ``others`` (the static
    beginnings of other routes' paths under ``prefix``), for ``methods``; the endpoint gets the rest
    of the path (``""`` for the prefix itself), as ``{path:path}`` would."""

    def __init__(self, prefix: str, endpoint: Endpoint, methods: Iterable[str], others: Iterable[str] = ()) -> None:
        self.prefix = prefix.rstrip("/")
        self.methods = frozenset(m.upper() for m in methods)
        self.others = tuple(sorted(set(others)))
        self.endpoint = endpoint

    def matches(self, scope: Scope) -> tuple[Match, Scope]:
        if scope["type"] != "http" or scope["method"] not in self.methods:
            return Match.NONE, {}
        path = get_route_path(scope)
        prefix = self.prefix
        if path == prefix:
            rest = ""
        elif path.startswith(prefix) and path[len(prefix) : len(prefix) + 1] == "/":
            if self.others and path.startswith(self.others):
                return Match.NONE, {}
            rest = path[len(prefix) + 1 :]
        else:
            return Match.NONE, {}
        params = {**scope.get("path_params", {}), "path": rest}
        return Match.FULL, {"endpoint": self.endpoint, "path_params": params}

    def url_path_for(self, name: str, /, **path_params: Any) -> URLPath:
        raise NoMatchFound(name, path_params)  # nameless: url_for finds the named routes behind it

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        """What Starlette's ``request_response`` does, its exception handling (the app's handlers)
        entered only when the endpoint raised: per request that wrapper was two closures and a
        layer around ``send``. The endpoint returns a whole response, which has nothing to raise."""
        request = Request(scope, receive, send)
        try:
            response = await self.endpoint(request, scope["path_params"]["path"])
        except Exception as exc:
            await wrap_app_handling_exceptions(_raising(exc), request)(scope, receive, send)
            return
        await response(scope, receive, send)

    def __repr__(self) -> str:
        return f"PrefixRoute(prefix={self.prefix!r}, methods={sorted(self.methods)!r})"


def _raising(exc: Exception) -> ASGIApp:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        raise exc

    return app


def static_beginnings(paths: Iterable[str], prefix: str) -> list[str]:
    """The part before the first ``{`` of each route path under ``prefix`` (``/fhir/bulkstatus/``
    for ``/fhir/bulkstatus/{job_id}``)."""
    prefix = prefix.rstrip("/") + "/"
    return [p.split("{", 1)[0] for p in paths if p.startswith(prefix)]


__all__ = ["PrefixRoute", "static_beginnings"]
