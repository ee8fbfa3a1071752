"""The burgerservicenummer (BSN) and its elfproef (11-test).

A BSN is nine digits d1..d9 with 9*d1 + 8*d2 + ... + 2*d8 - 1*d9 divisible by 11. A number that fails
the test is a typing error (or an invented number), never a person: a write that carries one is refused.
"""

from __future__ import annotations

BSN_SYSTEM = "http://fhir.nl/fhir/NamingSystem/bsn"


def is_valid_bsn(value: str) -> bool:
    """Whether ``value`` is nine digits passing the elfproef."""
    if len(value) != 9 or not value.isascii() or not value.isdigit():
        return False
    digits = [int(c) for c in value]
    total = sum(d * (9 - i) for i, d in enumerate(digits[:8])) - digits[8]
    return total % 11 == 0 and value != "000000000"
