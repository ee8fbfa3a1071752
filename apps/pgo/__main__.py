"""``python -m apps.pgo``: register with the hub at first start (``hub apps add --pgo``), then serve."""

from __future__ import annotations

import logging


def main() -> None:
    import uvicorn

    from apps.common.config import PgoSettings
    from apps.common.registration import ensure_pgo_client, wait_for_hub
    from apps.pgo.app import create_app

    settings = PgoSettings()
    logging.basicConfig(level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)
    wait_for_hub(settings.hub_url)
    client_id = ensure_pgo_client(
        settings.hub_command,
        settings.state_dir / "pgo",
        name="Mijn Zorgnet (PGO)",
        redirect_uri=settings.redirect_uri,
        client_id=settings.client_id,
    )
    settings.state_dir = settings.state_dir / "pgo"
    print(f"Mijn Zorgnet (PGO) on {settings.public_url}  (client {client_id}, hub {settings.hub_url})", flush=True)
    uvicorn.run(
        create_app(settings, client_id=client_id),
        host=settings.host,
        port=settings.port,
        log_level=settings.log_level,
        access_log=False,
        timeout_graceful_shutdown=2,
    )


if __name__ == "__main__":
    main()
