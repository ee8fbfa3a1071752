"""Column types that SQLAlchemy does not have in the shape we need."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Text, cast
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.types import TypeDecorator


class _JSONBText(TypeDecorator[str]):
    """A JSONB column whose values travel as text (no driver-side JSON codec, no parsing on read).

    JSONB keeps the precision of decimals (``1.50`` stays ``1.50``), which FHIR requires.
    """

    impl = JSONB
    cache_ok = True

    def bind_processor(self, dialect: Any) -> None:
        return None

    def result_processor(self, dialect: Any, coltype: Any) -> None:
        return None

    def bind_expression(self, bindvalue: Any) -> Any:
        return cast(cast(bindvalue, Text), JSONB)

    def column_expression(self, col: Any) -> Any:
        return cast(col, Text)


#: Resource JSON kept as text end to end: JSONB on PostgreSQL, TEXT elsewhere. Reads never parse
#: the JSON (stored bytes are served as they are).
RawJSON = Text().with_variant(_JSONBText(), "postgresql")
