"""Who is calling, and what they may do: authentication (tokens, the hub's own authorization
server) and the one access decision (:mod:`hub.access.policy`), with the derived facts it rests on
(:mod:`hub.access.facts`, :mod:`hub.access.grants`)."""

from hub.access.grants import CATEGORIES, decide
from hub.access.policy import AccessPolicy, build_policy
from hub.access.principal import Principal
from hub.access.tokens import AuthConfig, TokenVerifier

__all__ = ["CATEGORIES", "AccessPolicy", "AuthConfig", "Principal", "TokenVerifier", "build_policy", "decide"]
