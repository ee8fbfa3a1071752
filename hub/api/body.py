"""Reading request bodies with the size limit applied before the bytes are held."""

from __future__ import annotations

from starlette.requests import Request

from hub.fhir.errors import PayloadTooLarge


async def read_body(request: Request, limit: int) -> bytes:
    """The body, or 413 once it passes ``limit`` bytes (checked on Content-Length and while streaming)."""
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        raise PayloadTooLarge(f"The body ({declared} bytes) is larger than the limit of {limit} bytes")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise PayloadTooLarge(f"The body is larger than the limit of {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)
