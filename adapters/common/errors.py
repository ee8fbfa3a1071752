"""The adapters' exceptions.

AdapterError
├── UnsafeXml          input refused before or while parsing (size, DTD/entities, depth, syntax)
└── HubError           the hub answered with an error status (carries status and OperationOutcome)
    └── HubUnavailable the hub could not be reached or kept failing (5xx) after the retries
"""

from __future__ import annotations

from typing import Any


class AdapterError(Exception):
    """Base of every error an adapter raises on purpose."""


class UnsafeXml(AdapterError):
    """XML input refused: too large, too deep, a DTD or entity, or not well-formed."""


class HubError(AdapterError):
    """The hub answered ``status``; ``outcome`` is its OperationOutcome (or the body) when it sent one."""

    def __init__(self, status: int, message: str, outcome: Any = None) -> None:
        super().__init__(f"hub answered {status}: {message}")
        self.status = status
        self.outcome = outcome


class HubUnavailable(HubError):
    """No usable answer from the hub after the retries (connection errors, 5xx)."""
