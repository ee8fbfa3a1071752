"""Liveness and readiness for load balancers and ``make run``'s own check."""

from __future__ import annotations

from fastapi import APIRouter, Request
from starlette.responses import JSONResponse

router = APIRouter()


@router.get("/healthz", include_in_schema=False)
async def healthz() -> JSONResponse:
    return JSONResponse({"status": "ok"})


@router.get("/readyz", include_in_schema=False)
async def readyz(request: Request) -> JSONResponse:
    db = request.app.state.services.repo.db
    await db.ping()
    return JSONResponse({"status": "ready", "database": db.dialect})
