"""All tables of the hub in one MetaData (storage, access, audit, bulk, events, workflows), for Alembic
(hub/store/migrations/env.py) and tests. It sits on top of the layers: it imports every one that has tables."""

from __future__ import annotations

from hub.store.tables import metadata


def _load_all() -> None:
    """Import the modules that add tables to the shared metadata."""
    import hub.access.tables  # noqa: F401
    import hub.audit.tables  # noqa: F401
    import hub.bulk.tables  # noqa: F401
    import hub.events.tables  # noqa: F401
    import hub.workflows.tables  # noqa: F401


_load_all()

__all__ = ["metadata"]
