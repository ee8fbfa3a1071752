"""``adapter-huisarts``: sync GP summaries into the hub, once or on an interval.

    adapter-huisarts sync --config adapter-huisarts.json [--full]
    adapter-huisarts run  --config adapter-huisarts.json --interval 300

Prints a JSON report per practice. Exit 0 when every practice synced, 1 when one failed (the others
still ran; a failed practice resumes from its marks the next time), 2 for a bad configuration.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import sys
import time
from pathlib import Path

from pydantic import ValidationError

from adapters.common.auth import ClientCredentials, load_private_key
from adapters.common.client import HubClient
from adapters.common.errors import AdapterError
from adapters.huisarts.config import HuisartsConfig
from adapters.huisarts.gp import GpClient, GpRefused, GpUnavailable
from adapters.huisarts.state import SyncState
from adapters.huisarts.sync import Syncer

log = logging.getLogger("adapter.huisarts")


async def sync_all(config: HuisartsConfig, *, full: bool = False) -> bool:
    credentials = ClientCredentials(config.client_id, load_private_key(config.private_key), config.resolved_token_url())
    state = SyncState(config.state)
    ok = True
    try:
        async with HubClient(config.hub_base, credentials) as hub:
            for pc in config.practices:
                practice = config.practice(pc)
                gp = GpClient(practice.fhir_base, practice.token)
                try:
                    report = await Syncer(hub, gp, practice, state).run(full=full)
                    print(json.dumps({"practice": practice.id, **report.as_json()}), flush=True)
                except (AdapterError, GpUnavailable, GpRefused) as exc:
                    ok = False
                    log.error("practice %s: sync stopped: %s", practice.id, exc)
                    print(json.dumps({"practice": practice.id, "error": str(exc)}), flush=True)
                finally:
                    await gp.aclose()
    finally:
        state.close()
    return ok


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="adapter-huisarts", description="GP summaries into the Zorgnet Hub.")
    sub = parser.add_subparsers(dest="command", required=True)
    for name in ("sync", "run"):
        cmd = sub.add_parser(name)
        cmd.add_argument("--config", type=Path, required=True)
        cmd.add_argument("--full", action="store_true", help="fetch everything and find records removed at the source")
        if name == "run":
            cmd.add_argument("--interval", type=float, default=300.0)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        config = HuisartsConfig.load(args.config)
    except (OSError, ValueError, ValidationError) as exc:
        print(f"adapter-huisarts: bad configuration {args.config}: {exc}", file=sys.stderr)
        return 2
    if args.command == "sync":
        return 0 if asyncio.run(sync_all(config, full=args.full)) else 1
    while True:
        asyncio.run(sync_all(config, full=args.full))
        time.sleep(args.interval)


if __name__ == "__main__":
    raise SystemExit(main())
