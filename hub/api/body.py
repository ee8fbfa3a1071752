"""Reading request bodies with the size limit applied before the bytes are held."""

from __future__ import annotations

from starlette.requests import Request

from hub.fhir.errors import PayloadTooLarge
from hub.fhir.integers import to_int


async def read_body(request: Request, limit: int) -> bytes:
    """The body, or 413 once it passes ``limit`` bytes (checked on Content-Length and while streaming)."""
    declared = to_int(request.headers.get("content-length") or "")
    if declared is not None and declared > limit:
        raise PayloadTooLarge(f"The body ({declared} bytes) is larger than the limit of {limit} bytes")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise PayloadTooLarge(f"The body is larger than the limit of {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)
