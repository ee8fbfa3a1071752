"""``GET /metrics``: the Prometheus text exposition (see :mod:`hub.api.metrics`).

Unauthenticated, like every scrape target: keep it off the public ingress (the Helm chart's
NetworkPolicy lets only the monitoring namespace reach the metrics port).
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from starlette.responses import Response

router = APIRouter()


@router.get("/metrics", include_in_schema=False)
async def metrics(request: Request) -> Response:
    body, content_type = request.app.state.metrics.exposition()
    return Response(body, media_type=content_type)
