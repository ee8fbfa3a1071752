"""``HUB_ENVIRONMENT=production`` refuses to start with settings that are only safe on a laptop.

Each problem is one line that names the setting and what to do, so an operator reading a crash
loop's log sees every fix at once.
"""

from __future__ import annotations

from hub.settings import Settings


class UnsafeSettings(RuntimeError):
    """Production settings that must not be used; ``problems`` holds one line per problem."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems


def production_problems(settings: Settings) -> list[str]:
    """What is unsafe about ``settings`` for production (empty outside production)."""
    if settings.environment != "production":
        return []
    problems: list[str] = []
    if settings.dev_login:
        problems.append("HUB_DEV_LOGIN is true: the development login bypasses DigiD; set HUB_DEV_LOGIN=false.")
    if settings.is_sqlite:
        problems.append(
            "HUB_DATABASE_URL is SQLite: production runs on PostgreSQL (postgresql+asyncpg://user@host/db)."
        )
    if settings.demo:
        problems.append("HUB_DEMO is true: the demo network holds made-up clients; set HUB_DEMO=false.")
    if not settings.forwarded_allow_ips.strip():
        problems.append(
            "HUB_FORWARDED_ALLOW_IPS is not set: name the TLS-terminating proxy (addresses or CIDRs) whose "
            "X-Forwarded-For/-Proto headers the hub may trust."
        )
    if not settings.base_url.startswith("https://"):
        problems.append(
            f"HUB_BASE_URL is {settings.base_url!r}: production needs the public https:// URL that the "
            "TLS-terminating proxy serves (it is the token audience)."
        )
    return problems


def check_production(settings: Settings) -> None:
    """Raise :class:`UnsafeSettings` when ``settings`` are unsafe for production."""
    problems = production_problems(settings)
    if problems:
        raise UnsafeSettings(problems)


__all__ = ["UnsafeSettings", "check_production", "production_problems"]
