"""The app's side of OAuth 2 authorization code + PKCE (RFC 7636, S256) with the hub.

The app is a public client as the hub registers PGO apps; the verifier, the state and the tokens
stay on the server side of the browser (in the encrypted session), per the OAuth 2.0 for
Browser-Based Apps "backend for frontend" pattern.
"""

from __future__ import annotations

import base64
import hashlib
import secrets
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

import httpx

#: What a PGO asks for: the client's own data (read and write) and the patient launch context.
PGO_SCOPES = "launch/patient patient/*.cruds"


def new_verifier() -> str:
    """A 86-character code verifier (RFC 7636 §4.1 allows 43..128 unreserved characters)."""
    return secrets.token_urlsafe(64)


def challenge(verifier: str) -> str:
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def authorize_url(
    hub_url: str, *, client_id: str, redirect_uri: str, state: str, verifier: str, scope: str = PGO_SCOPES
) -> str:
    query = {
        "response_type": "code",
        "client_id": client_id,
        "redirect_uri": redirect_uri,
        "scope": scope,
        "state": state,
        "code_challenge": challenge(verifier),
        "code_challenge_method": "S256",
        "aud": f"{hub_url}/fhir",
    }
    return f"{hub_url}/auth/authorize?{urlencode(query)}"


@dataclass(frozen=True)
class TokenResponse:
    access_token: str
    expires_in: int
    scope: str
    patient: str | None
    patient_bsn: str | None


class TokenError(Exception):
    """The hub refused the code exchange (RFC 6749 §5.2 error)."""

    def __init__(self, error: str, description: str) -> None:
        super().__init__(f"{error}: {description}")
        self.error = error
        self.description = description


async def exchange_code(
    http: httpx.AsyncClient, hub_url: str, *, client_id: str, code: str, redirect_uri: str, verifier: str
) -> TokenResponse:
    """Redeem an authorization code at ``/auth/token``."""
    answer = await http.post(
        f"{hub_url}/auth/token",
        data={
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": redirect_uri,
            "code_verifier": verifier,
            "client_id": client_id,
        },
    )
    body: dict[str, Any] = (
        answer.json() if answer.headers.get("content-type", "").startswith("application/json") else {}
    )
    if answer.status_code != 200 or "access_token" not in body:
        raise TokenError(str(body.get("error", answer.status_code)), str(body.get("error_description", "")))
    return TokenResponse(
        access_token=body["access_token"],
        expires_in=int(body.get("expires_in", 0)),
        scope=str(body.get("scope", "")),
        patient=body.get("patient"),
        patient_bsn=body.get("patient_bsn"),
    )


def unverified_claims(token: str) -> dict[str, Any]:
    """The claims of a JWT without checking it: only to label the session (the hub checks every call)."""
    import orjson

    try:
        payload = token.split(".")[1]
        data = orjson.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    except (IndexError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}
