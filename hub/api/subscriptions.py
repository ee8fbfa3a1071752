"""``Subscription`` and ``SubscriptionTopic`` over HTTP: which interaction a request is, and the answer's
shape (``Prefer: return=``, Location). What each interaction does is :mod:`hub.events.subscriptions`."""

from __future__ import annotations

from hub.api.context import Call
from hub.api.interaction import FhirRequest, Route, require_body
from hub.api.result import FhirResult, written
from hub.events import subscriptions
from hub.events.subscriptions import Subscriber
from hub.fhir.errors import BadRequest, MethodNotAllowed, NotFound


def _subscriber(call: Call) -> Subscriber:
    return Subscriber(call.svc.repo, call.policy, call.trail, call.base, call.conn)


async def handle(call: Call, req: FhirRequest, route: Route) -> FhirResult:
    """Every interaction on ``Subscription``."""
    who = _subscriber(call)
    kind = route.kind
    if kind in ("create", "update"):
        sub_id = route.res_id if kind == "update" else None
        assert kind == "create" or sub_id
        outcome, shown = await subscriptions.write(
            who,
            require_body(req),
            sub_id,
            if_match=req.if_match,
            allow_http=call.svc.settings.environment != "production",
        )
        stored = outcome.stored
        location = f"{call.base}/Subscription/{stored.res_id}/_history/{stored.version}"
        return written(stored, outcome.status, shown, location, req.prefer_return)
    if kind == "read":
        assert route.res_id
        stored, shown = await subscriptions.read(who, route.res_id)
        return FhirResult(200, shown, stored)
    if kind == "delete":
        assert route.res_id
        removed = await subscriptions.remove(who, route.res_id)
        return FhirResult(200 if removed is not None else 204, None, removed.stored if removed else None)
    if kind == "search-type":
        return FhirResult(200, await subscriptions.search(who, req.query))
    if kind == "operation" and route.res_id:
        if route.operation == "status":
            return FhirResult(200, await subscriptions.status(who, route.res_id))
        if route.operation == "events":
            return FhirResult(200, await subscriptions.events(who, route.res_id, dict(req.query)))
        if route.operation == "get-ws-binding-token":
            return FhirResult(200, await subscriptions.ws_token(who, route.res_id))
    if kind == "operation" and not route.res_id and route.operation == "status":
        ids = [v for n, v in req.query if n == "id"]
        if len(ids) == 1:
            return FhirResult(200, await subscriptions.status(who, ids[0]))
        raise BadRequest("Subscription/$status needs one id parameter (or use Subscription/{id}/$status)")
    raise NotFound(
        f"Subscription does not support {kind}{' $' + route.operation if route.operation else ''}", code="not-supported"
    )


async def topics(call: Call, req: FhirRequest) -> FhirResult:
    """``GET SubscriptionTopic`` and ``GET SubscriptionTopic/{code}`` (read-only)."""
    parts = [p for p in req.path.split("/") if p]
    if req.method not in ("GET", "HEAD"):
        raise MethodNotAllowed("SubscriptionTopic is read-only", headers={"Allow": "GET"})
    return FhirResult(200, subscriptions.topics(parts, list(req.query), call.base))
