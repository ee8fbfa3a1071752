"""A database busy for a moment (SQLite's write lock held past the busy timeout) is answered 503
with Retry-After, never 500: it is neither the client's mistake nor a fault of the hub."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.exc import DBAPIError
from starlette.requests import Request

from hub.api.errors import unexpected_error_handler
from hub.store.db import busy_error


def _locked_error(tmp_path: Path) -> DBAPIError:
    """A real 'database is locked' from SQLite: one connection holds the write lock, another (with no
    busy timeout) tries to write."""
    url = f"sqlite:///{tmp_path / 'busy.db'}"
    holder = create_engine(url, connect_args={"timeout": 0, "isolation_level": None})
    writer = create_engine(url, connect_args={"timeout": 0, "isolation_level": None})
    with holder.connect() as h:
        h.execute(text("CREATE TABLE t (x integer)"))
        h.execute(text("BEGIN IMMEDIATE"))
        h.execute(text("INSERT INTO t VALUES (1)"))
        try:
            with writer.connect() as w:
                w.execute(text("INSERT INTO t VALUES (2)"))
        except DBAPIError as exc:
            return exc
        finally:
            h.execute(text("ROLLBACK"))
    pytest.fail("the second writer was not refused")


def test_a_locked_database_is_a_503_with_retry_after(tmp_path: Path) -> None:
    exc = _locked_error(tmp_path)
    error = busy_error(exc)
    assert error is not None and error.status == 503 and error.headers == {"Retry-After": "1"}
    request = Request({"type": "http", "method": "POST", "path": "/auth/token", "headers": [], "query_string": b""})
    response = asyncio.run(unexpected_error_handler(request, exc))
    assert response.status_code == 503 and response.headers["retry-after"] == "1"
    assert b"busy" in response.body and b"transient" in response.body


def test_other_database_errors_are_not_called_busy(tmp_path: Path) -> None:
    engine = create_engine(f"sqlite:///{tmp_path / 'other.db'}")
    with engine.connect() as conn, pytest.raises(DBAPIError) as caught:
        conn.execute(text("SELECT * FROM no_such_table"))
    assert busy_error(caught.value) is None
