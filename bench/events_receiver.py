"""A notification receiver for tests and the benchmark: a separate process, real HTTP on loopback.

    python bench/events_receiver.py [--fail-first N] [--hang-first N] [--hang-seconds S]

Prints ``READY <port>`` once listening. ``POST /<anything>`` takes a notification Bundle: the first
``--fail-first`` event notifications are answered 500, the first ``--hang-first`` are held for
``--hang-seconds`` before a 500 (a worker killed meanwhile never hears back); after that each is
answered 200 and its events recorded with the delay from the event's timestamp to now.
``GET /state`` returns what arrived: per request the subscription, the notification type and the
event numbers (with their timestamps and the arrival time), plus the headers of the last request;
``GET /count`` only the totals. Uses only the standard library.
"""

from __future__ import annotations

import argparse
import json
import threading
import time
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class State:
    def __init__(self, fail_first: int, hang_first: int, hang_seconds: float) -> None:
        self.lock = threading.Lock()
        self.fail_left = fail_first
        self.hang_left = hang_first
        self.hang_seconds = hang_seconds
        self.accepted: list[dict[str, Any]] = []
        self.refused = 0
        self.in_flight = 0
        self.last_headers: dict[str, str] = {}


def _parse(body: bytes) -> dict[str, Any]:
    bundle = json.loads(body)
    status = bundle["entry"][0]["resource"]
    params = {p["name"]: p for p in status["parameter"] if p["name"] != "notification-event"}
    events = []
    for p in status["parameter"]:
        if p["name"] != "notification-event":
            continue
        parts = {q["name"]: q for q in p["part"]}
        stamp = datetime.fromisoformat(parts["timestamp"]["valueInstant"].replace("Z", "+00:00")).timestamp()
        focus = parts.get("focus", {}).get("valueReference", {}).get("reference")
        events.append({"number": int(parts["event-number"]["valueString"]), "timestamp": stamp, "focus": focus})
    return {
        "subscription": params["subscription"]["valueReference"]["reference"].rsplit("/", 1)[-1],
        "type": params["type"]["valueCode"],
        "events": events,
        "resources": [e["resource"] for e in bundle["entry"][1:] if "resource" in e],
        "entries": len(bundle["entry"]) - 1,
    }


def make_handler(state: State) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        # The stdlib handler writes the status line and headers, then the body, as two small packets;
        # with Nagle's algorithm on, the second waits for the client's delayed ACK of the first: 40 ms
        # per request on Linux loopback (measured: 48 ms per POST from a bare httpx client). A real
        # receiver (uvicorn, nginx) sets TCP_NODELAY; so does this one.
        disable_nagle_algorithm = True

        def log_message(self, *_args: Any) -> None:
            return

        def _answer(self, code: int, payload: bytes = b"{}") -> None:
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def do_GET(self) -> None:  # noqa: N802
            with state.lock:
                if self.path.startswith("/count"):
                    data: dict[str, Any] = {
                        "events": sum(len(n["events"]) for n in state.accepted),
                        "handshakes": sum(1 for n in state.accepted if n["type"] == "handshake"),
                        "refused": state.refused,
                        "in_flight": state.in_flight,
                    }
                else:
                    data = {
                        "accepted": state.accepted,
                        "refused": state.refused,
                        "in_flight": state.in_flight,
                        "last_headers": state.last_headers,
                    }
            self._answer(200, json.dumps(data).encode())

        def do_POST(self) -> None:  # noqa: N802
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            received = time.time()
            note = _parse(body)
            hang = fail = False
            with state.lock:
                state.last_headers = dict(self.headers.items())
                if note["type"] == "event-notification":
                    if state.hang_left > 0:
                        state.hang_left -= 1
                        hang = True
                    elif state.fail_left > 0:
                        state.fail_left -= 1
                        fail = True
                state.in_flight += 1
            try:
                if hang:
                    time.sleep(state.hang_seconds)
                if hang or fail:
                    with state.lock:
                        state.refused += 1
                    self._answer(500)
                    return
                note["received"] = received
                with state.lock:
                    state.accepted.append(note)
                self._answer(200)
            finally:
                with state.lock:
                    state.in_flight -= 1

    return Handler


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--fail-first", type=int, default=0)
    parser.add_argument("--hang-first", type=int, default=0)
    parser.add_argument("--hang-seconds", type=float, default=30.0)
    args = parser.parse_args()
    state = State(args.fail_first, args.hang_first, args.hang_seconds)
    server = ThreadingHTTPServer(("127.0.0.1", args.port), make_handler(state))
    server.daemon_threads = True
    print(f"READY {server.server_address[1]}", flush=True)
    try:
        server.serve_forever(poll_interval=0.2)
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
