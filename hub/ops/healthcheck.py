"""``python -m hub.ops.healthcheck``: the container's HEALTHCHECK. Exit 0 when this container's hub
answers ``/healthz`` on HUB_PORT (loopback), 1 otherwise; no dependencies beyond the standard library."""

from __future__ import annotations

import os
import sys
import urllib.error
import urllib.request


def check(port: int, path: str = "/healthz", timeout: float = 4.0) -> bool:
    url = f"http://127.0.0.1:{port}{path}"
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:  # noqa: S310 - fixed loopback URL
            return bool(response.status == 200)
    except (urllib.error.URLError, OSError):
        return False


def main() -> int:
    port = int(os.environ.get("HUB_PORT", "8080"))
    path = sys.argv[1] if len(sys.argv) > 1 else "/healthz"
    return 0 if check(port, path) else 1


if __name__ == "__main__":
    raise SystemExit(main())
