"""What a professional system does to get a token from the hub (SMART Backend Services, RFC 7523).

    python examples/client_assertion.py new-key ecd.key.pem ecd.pub.pem
        an EC P-256 key pair: keep the private key, register the public one (hub apps add --system)
    python examples/client_assertion.py sign ecd.key.pem CLIENT_ID TOKEN_URL
        a signed client assertion (a JWT, valid for 2 minutes, single use) on standard output

Any JOSE library does the same; this one uses joserfc, which the hub itself depends on.
"""

from __future__ import annotations

import secrets
import sys
import time
from pathlib import Path

from joserfc import jwt
from joserfc.jwk import ECKey


def new_key(private_path: Path, public_path: Path) -> None:
    key = ECKey.generate_key("P-256", private=True)
    private_path.write_bytes(key.as_pem(private=True))
    private_path.chmod(0o600)
    public_path.write_bytes(key.as_pem(private=False))


def sign(private_path: Path, client_id: str, token_url: str) -> str:
    key = ECKey.import_key(private_path.read_bytes())
    now = int(time.time())
    claims = {
        "iss": client_id,
        "sub": client_id,
        "aud": token_url,
        "iat": now,
        "exp": now + 120,
        "jti": secrets.token_urlsafe(16),
    }
    # kid: the key's RFC 7638 thumbprint, which is how the hub names a key registered from a PEM file
    return jwt.encode({"alg": "ES256", "kid": key.thumbprint(), "typ": "JWT"}, claims, key)


def main(argv: list[str]) -> int:
    if len(argv) == 4 and argv[1] == "new-key":
        new_key(Path(argv[2]), Path(argv[3]))
        return 0
    if len(argv) == 5 and argv[1] == "sign":
        print(sign(Path(argv[2]), argv[3], argv[4]))
        return 0
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    raise SystemExit(main(sys.argv))
