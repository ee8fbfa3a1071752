"""``adapter-wijkverpleging``: receive eOverdracht 4.0 transfers into the hub and mirror their states back.

    adapter-wijkverpleging serve  --config adapter-wijkverpleging.json   # endpoint + mirror loop
    adapter-wijkverpleging mirror --config adapter-wijkverpleging.json   # one mirror round, JSON report
    adapter-wijkverpleging announce --config ... --task HUB_TASK_ID --receiver RECEIVER_ID   # sender role
    adapter-wijkverpleging zorgplan --config ...   # one round of the nursing care plans (also in serve)

Exit 2 for a bad configuration.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import sys
from pathlib import Path

import httpx
import uvicorn
from pydantic import ValidationError

from adapters.common.auth import ClientCredentials, load_private_key
from adapters.common.client import HubClient
from adapters.common.errors import AdapterError
from adapters.wijkverpleging.config import WijkverplegingConfig
from adapters.wijkverpleging.receiver import Receiver
from adapters.wijkverpleging.sender import Sender
from adapters.wijkverpleging.sender_api import TransferError
from adapters.wijkverpleging.server import build_app
from adapters.wijkverpleging.state import State
from adapters.wijkverpleging.zorgplan import NursingCarePlan

log = logging.getLogger("adapters.wijkverpleging")


async def _zorgplan(sync: NursingCarePlan | None, careplans: list[str]) -> dict[str, object]:
    """One round of the nursing care plans: each pushed to the hub, then the hub's changes sent back."""
    if sync is None:
        return {}
    pushed = {}
    for plan_id in careplans:
        try:
            synced = await sync.push(plan_id)
            pushed[plan_id] = {"added": synced.added, "changed": synced.changed}
        except TransferError as exc:
            log.warning("nursing care plan %s not synced (%s): %s", plan_id, exc.offending, exc)
    return {"pushed": pushed, "sent_back": await sync.pull_back()}


async def _run(
    config: WijkverplegingConfig, serve: bool, announce: tuple[str, str] | None = None, zorgplan: bool = False
) -> int:
    credentials = ClientCredentials(config.client_id, load_private_key(config.private_key), config.resolved_token_url())
    state = State(config.state)
    try:
        async with HubClient(config.hub_base, credentials) as hub, httpx.AsyncClient(timeout=30) as http:
            receiver = Receiver(hub, http, state, config.ura)
            nursing = config.nursing_system
            sync = NursingCarePlan(hub, http, state, config.ura, nursing.fhir_base) if nursing else None
            careplans = nursing.careplans if nursing else []
            if zorgplan:
                print(json.dumps(await _zorgplan(sync, careplans)), flush=True)
                return 0
            if announce is not None:
                task_id, receiver_id = announce
                target = next((r for r in config.receivers if r.id == receiver_id), None)
                if target is None:
                    print(f"adapter-wijkverpleging: unknown receiver {receiver_id!r}", file=sys.stderr)
                    return 2
                sent = await Sender(hub, http, state).announce(target.id, target.notify_url, task_id)
                print(json.dumps({"announced": f"Task/{sent['id']}", "to": target.id}), flush=True)
                return 0
            if not serve:
                delivered = await receiver.mirror()
                print(json.dumps({"mirrored": delivered}), flush=True)
                return 0

            async def mirror_loop() -> None:
                while True:
                    await asyncio.sleep(config.mirror_interval)
                    try:
                        await receiver.mirror()
                        await _zorgplan(sync, careplans)
                    except AdapterError as exc:
                        log.error("mirror round failed: %s", exc)

            app = build_app(
                receiver,
                {s.id: s.fhir_base for s in config.senders},
                Sender(hub, http, state),
                {r.id: r.token for r in config.receivers},
            )
            server = uvicorn.Server(
                uvicorn.Config(app, host=config.listen.host, port=config.listen.port, log_level="warning")
            )
            loop_task = asyncio.create_task(mirror_loop())
            try:
                await server.serve()
            finally:
                loop_task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await loop_task
            return 0
    finally:
        state.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="adapter-wijkverpleging", description="eOverdracht 4.0 into the hub.")
    sub = parser.add_subparsers(dest="command", required=True)
    for name in ("serve", "mirror", "announce", "zorgplan"):
        cmd = sub.add_parser(name)
        cmd.add_argument("--config", type=Path, required=True)
        if name == "announce":
            cmd.add_argument("--task", required=True, help="the hub's overdracht Task id")
            cmd.add_argument("--receiver", required=True, help="a configured receiver id")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        config = WijkverplegingConfig.load(args.config)
    except (OSError, ValueError, ValidationError) as exc:
        print(f"adapter-wijkverpleging: bad configuration {args.config}: {exc}", file=sys.stderr)
        return 2
    announce = (args.task, args.receiver) if args.command == "announce" else None
    zorgplan = args.command == "zorgplan"
    return asyncio.run(_run(config, serve=args.command == "serve", announce=announce, zorgplan=zorgplan))


if __name__ == "__main__":
    raise SystemExit(main())
