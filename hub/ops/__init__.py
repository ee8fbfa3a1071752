"""Running the hub in production: the start-up safety checks, ``hub serve`` with worker processes and
graceful shutdown, and ``hub backup`` / ``hub restore`` for PostgreSQL."""

from hub.ops.safety import UnsafeSettings, production_problems

__all__ = ["UnsafeSettings", "production_problems"]
