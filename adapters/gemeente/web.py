"""The HTTP inbox: ``POST /wmo`` with an iWmo message answers its retour message.

200 with the retour (accepted or refused for a rule: the RetourCodes say which); 202 for a retour
received or a message that is recorded but not mapped; 400 for input that is not a readable iWmo
message; 413 for a body over the size limit; 503 when the hub cannot be reached. The headers
``X-Wmo-Status`` and ``X-Wmo-Reasons`` carry the outcome in words.
"""

from __future__ import annotations

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from adapters.common.errors import HubUnavailable
from adapters.gemeente.processor import Processor, Result

XML = "application/xml"


def _headers(result: Result) -> dict[str, str]:
    reasons = "; ".join(result.reasons)[:2000]
    return {"X-Wmo-Status": result.status, "X-Wmo-Reasons": reasons.encode("ascii", "replace").decode()}


def create_web_app(processor: Processor) -> Starlette:
    limit = processor.settings.max_message_bytes

    async def inbox(request: Request) -> Response:
        declared = request.headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            return Response(f"message larger than {limit} bytes\n", 413, media_type="text/plain")
        body = bytearray()
        async for chunk in request.stream():
            body += chunk
            if len(body) > limit:
                return Response(f"message larger than {limit} bytes\n", 413, media_type="text/plain")
        try:
            result = await processor.process(bytes(body))
        except HubUnavailable as exc:
            return Response(
                f"hub unavailable, send again later: {exc}\n",
                503,
                media_type="text/plain",
                headers={"Retry-After": "5"},
            )
        if result.retour is not None:
            return Response(result.retour, 200, media_type=XML, headers=_headers(result))
        if result.ok:
            return Response(b"", 202, headers=_headers(result))
        return Response(
            ("\n".join(result.reasons) + "\n").encode(), 400, media_type="text/plain", headers=_headers(result)
        )

    async def health(_request: Request) -> Response:
        return Response("ok\n", media_type="text/plain")

    return Starlette(routes=[Route("/wmo", inbox, methods=["POST"]), Route("/healthz", health)])
