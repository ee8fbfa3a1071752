"""Building the authentication pieces of one app from its settings."""

from __future__ import annotations

from hub.access.keys import HubKeys
from hub.access.tokens import AuthConfig, ExternalIssuer
from hub.settings import Settings


def auth_config(settings: Settings) -> AuthConfig:
    issuers = []
    for item in settings.external_issuers.split(","):
        if item.strip():
            issuer, _, jwks = item.strip().partition("|")
            issuers.append(ExternalIssuer(issuer=issuer, jwks_url=jwks))
    return AuthConfig(
        base_url=settings.base_url,
        key_dir=settings.key_dir,
        dev_login=settings.dev_login,
        external_issuers=tuple(issuers),
    )


def hub_keys(config: AuthConfig) -> HubKeys:
    return HubKeys.load_or_create(config.key_dir, config.key_alg)
