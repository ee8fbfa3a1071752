"""An adapter's own credentials: OAuth 2 client_credentials with a private_key_jwt assertion (RFC 7523).

The adapter is registered with the hub as a system client (``hub apps add --system --public-key``);
it proves itself with a short-lived JWT signed by its private key (iss = sub = client_id,
aud = the token endpoint, a fresh jti) and caches the access token until shortly before expiry.
"""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import httpx
from joserfc import jwt
from joserfc.jwk import ECKey, OKPKey, RSAKey, import_key

from adapters.common.errors import HubError, HubUnavailable

JWT_BEARER = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
SigningKey = RSAKey | ECKey | OKPKey


def load_private_key(path: Path) -> SigningKey:
    """A private signing key from a PEM file (RSA, EC P-256/P-384 or Ed25519)."""
    data = path.read_bytes()
    for kind in ("EC", "RSA", "OKP"):
        try:
            key = import_key(data, kind)
        except Exception:  # noqa: S112 - try the next key type
            continue
        if isinstance(key, RSAKey | ECKey | OKPKey) and key.is_private:
            return key
    raise ValueError(f"{path}: not a private RSA, EC or Ed25519 key in PEM form")


def algorithm_for(key: SigningKey) -> str:
    if isinstance(key, RSAKey):
        return "RS256"
    if isinstance(key, ECKey):
        return {"P-256": "ES256", "P-384": "ES384"}[key.curve_name]
    return "EdDSA"


@dataclass
class ClientCredentials:
    """Gets and caches access tokens for one registered client."""

    client_id: str
    key: SigningKey
    token_url: str
    scope: str | None = None
    #: Renew this many seconds before the token expires.
    leeway: float = 30.0
    clock: Callable[[], float] = time.time
    _token: str | None = field(default=None, init=False, repr=False)
    _expires: float = field(default=0.0, init=False, repr=False)
    _lock: asyncio.Lock = field(default_factory=asyncio.Lock, init=False, repr=False)

    def assertion(self) -> str:
        """A fresh client assertion (valid 2 minutes, single use)."""
        now = int(self.clock())
        claims = {
            "iss": self.client_id,
            "sub": self.client_id,
            "aud": self.token_url,
            "jti": secrets.token_urlsafe(18),
            "iat": now,
            "exp": now + 120,
        }
        header = {"alg": algorithm_for(self.key), "kid": self.key.thumbprint(), "typ": "JWT"}
        return jwt.encode(header, claims, self.key)

    def invalidate(self) -> None:
        """Forget the cached token (the hub refused it)."""
        self._token = None
        self._expires = 0.0

    async def token(self, http: httpx.AsyncClient) -> str:
        """A valid access token, fetched when none is cached or it is about to expire."""
        async with self._lock:
            if self._token is not None and self.clock() < self._expires - self.leeway:
                return self._token
            form = {
                "grant_type": "client_credentials",
                "client_assertion_type": JWT_BEARER,
                "client_assertion": self.assertion(),
            }
            if self.scope:
                form["scope"] = self.scope
            try:
                response = await http.post(self.token_url, data=form)
            except httpx.TransportError as exc:
                raise HubUnavailable(0, f"token endpoint unreachable: {exc}") from exc
            if response.status_code >= 500:
                raise HubUnavailable(response.status_code, "token endpoint failed")
            if response.status_code != 200:
                raise HubError(response.status_code, f"token request refused: {response.text[:300]}")
            body = response.json()
            self._token = str(body["access_token"])
            self._expires = self.clock() + float(body.get("expires_in", 300))
            return self._token
