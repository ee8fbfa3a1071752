"""Canonical JSON for hashing: RFC 8785 (JCS) for the values an AuditEvent holds.

JCS is: object members sorted by key (UTF-16 code units), no insignificant whitespace, strings
with the minimal escapes (``\\b \\t \\n \\f \\r``, other control characters as ``\\u00xx``), UTF-8.
``orjson`` with ``OPT_SORT_KEYS`` produces exactly that for strings, integers, booleans, null,
arrays and objects with ASCII keys, at ~1 µs instead of the ~30 µs of a pure-Python JCS. Floats
are where JSON serializers disagree (``1.0`` vs ``1``, exponent forms), so they are refused here:
an audit record never needs one, and refusing them keeps "canonical" true instead of nearly true.
"""

from __future__ import annotations

from typing import Any

import orjson

#: Integers JCS can carry exactly (IEEE-754 doubles); larger ones are refused.
MAX_SAFE_INT = 2**53 - 1


class NotCanonicalizable(ValueError):
    """The value holds something this canonical form does not cover (floats, non-ASCII keys ...)."""


def canonical(value: Any) -> bytes:
    """The JCS bytes of ``value`` (a JSON tree of dict/list/str/int/bool/None without floats).

    The check walks the tree once (a few µs for an AuditEvent); :func:`canonical_trusted` skips
    it for trees the hub built itself from known keys.
    """
    _check(value)
    return canonical_trusted(value)


def canonical_trusted(value: Any) -> bytes:
    """JCS bytes without the input check: for trees built by :mod:`hub.audit.records` only."""
    try:
        return orjson.dumps(value, option=orjson.OPT_SORT_KEYS)
    except TypeError as exc:  # non-str keys, unknown types, lone surrogates
        raise NotCanonicalizable(str(exc)) from None


def _check(value: Any) -> None:
    stack = [value]
    while stack:
        v = stack.pop()
        if v is None or v is True or v is False or type(v) is str:
            continue
        if type(v) is int:
            if not -MAX_SAFE_INT <= v <= MAX_SAFE_INT:
                raise NotCanonicalizable(f"integer {v} is outside the exactly representable range")
        elif type(v) is dict:
            for k, item in v.items():
                if type(k) is not str or not k.isascii():
                    raise NotCanonicalizable(f"object key {k!r} must be an ASCII string")
                stack.append(item)
        elif type(v) in (list, tuple):
            stack.extend(v)
        elif type(v) is float:
            raise NotCanonicalizable("floats are not allowed in canonical audit JSON")
        else:
            raise NotCanonicalizable(f"{type(v).__name__} is not a JSON value")


__all__ = ["MAX_SAFE_INT", "NotCanonicalizable", "canonical", "canonical_trusted"]
