"""``python -m apps.admin``: the administrator's console (log in with an admin token of the hub)."""

from __future__ import annotations

import logging


def main() -> None:
    import uvicorn

    from apps.admin.app import create_app
    from apps.common.config import AdminSettings

    settings = AdminSettings()
    settings.state_dir = settings.state_dir / "admin"
    logging.basicConfig(level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)
    print(f"Zorgnet beheer on {settings.public_url}  (hub {settings.hub_url})", flush=True)
    uvicorn.run(
        create_app(settings),
        host=settings.host,
        port=settings.port,
        log_level=settings.log_level,
        access_log=False,
        timeout_graceful_shutdown=2,
    )


if __name__ == "__main__":
    main()
