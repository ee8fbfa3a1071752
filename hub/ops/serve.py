"""``hub serve``: uvicorn with N worker processes, trusted proxy headers, JSON logs and a graceful stop.

On SIGTERM (Kubernetes, ``docker stop``) or SIGINT, uvicorn stops accepting connections, lets the
requests in flight finish (at most ``HUB_GRACEFUL_TIMEOUT`` seconds), then runs the app's lifespan
shutdown: the audit writer commits every record still queued and seals the chain with a checkpoint.
With ``--workers N`` the supervisor passes the signal to every worker, each stops the same way.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from hub.settings import Settings


def prepare_metrics_dir(settings: Settings) -> str | None:
    """With several workers, each keeps its metric values in files under one directory that
    ``/metrics`` sums (prometheus-client multiprocess mode). The directory is emptied at start."""
    if settings.workers <= 1 or not settings.metrics:
        return None
    directory = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if not directory:
        directory = str(Path(tempfile.gettempdir()) / f"hub-metrics-{settings.port}")
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = directory
    path = Path(directory)
    path.mkdir(parents=True, exist_ok=True)
    for stale in path.glob("*.db"):
        stale.unlink()
    return directory


def run(settings: Settings) -> None:
    """Serve until signalled; returns after a graceful shutdown."""
    import uvicorn

    from hub.api.accesslog import logging_config
    from hub.api.onewrite import OneWriteProtocol

    prepare_metrics_dir(settings)
    uvicorn.run(
        "hub.app:create_app",
        factory=True,
        http=OneWriteProtocol,  # httptools, a response's head and body in one write
        host=settings.host,
        port=settings.port,
        workers=settings.workers,
        log_level=settings.log_level,
        log_config=logging_config(settings.log_level, settings.log_format),
        access_log=False,  # the hub writes its own JSON access line per request
        proxy_headers=True,
        forwarded_allow_ips=settings.forwarded_allow_ips or None,
        timeout_graceful_shutdown=settings.graceful_timeout,
        # uvicorn's supervisor restarts a worker that does not answer its ping in time; 5 s (its default)
        # is shorter than a start on a busy node (imports, the conformance package), so be patient.
        timeout_worker_healthcheck=30,
        server_header=False,
    )


__all__ = ["prepare_metrics_dir", "run"]
