"""``hub worker``: the delivery worker as its own process (the production shape with PostgreSQL)."""

from __future__ import annotations

import asyncio
import logging
import signal

from hub.settings import Settings
from hub.store.db import Database

log = logging.getLogger("hub.events")


async def run_worker(settings: Settings) -> None:
    """Run until SIGTERM/SIGINT; then finish the notification in flight and give back the leases."""
    from hub.audit.writer import AuditWriter
    from hub.events.delivery import DeliveryConfig, Worker
    from hub.store.migrate import prepare_database

    db = Database(settings.database_url, pool_size=4)
    await prepare_database(db, settings)
    audit = AuditWriter.from_settings(db, settings)
    await audit.start()
    worker = Worker(db, settings.fhir_base, config=DeliveryConfig.from_settings(settings), audit=audit)
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, worker.stop)
    log.info("notification worker %s started", worker.name)
    try:
        await worker.run()
    finally:
        await audit.stop()
        await db.dispose()
