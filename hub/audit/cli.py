"""``hub audit verify | export | rotate-key``: the operator's side of the audit log.

Mounted by :mod:`hub.cli` as ``app.add_typer(audit_app, name="audit")``. Exit codes: 0 when the
log verifies, 1 when it does not (the first broken place is printed), 2 for usage errors.
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path
from typing import Any

import typer

audit_app = typer.Typer(help="Audit log: verify the chain and signatures, export, rotate keys.", no_args_is_help=True)


def _settings() -> Any:
    from hub.settings import serving_settings

    return serving_settings()


def require_database(database_url: str) -> None:
    """Exit 2 with one line when the database is missing or has no hub schema (never create it)."""
    from hub.store.migrate import database_problem

    problem = asyncio.run(database_problem(database_url))
    if problem is not None:
        typer.echo(problem, err=True)
        raise typer.Exit(2)


def default_key_dir(settings: Any) -> Path:
    return Path(settings.var_dir) / "audit-keys"


async def run_verify(database_url: str, key_dir: Path | None, *, deep: bool = True) -> Any:
    """Open the database, verify the log, close. Returns the :class:`VerifyResult`."""
    from hub.audit.checkpoints import KEYRING_FILE, AuditKeyring
    from hub.audit.verify import verify_log
    from hub.store.db import Database

    keyring = None
    if key_dir is not None and (key_dir / KEYRING_FILE).exists():
        keyring = AuditKeyring.load(key_dir)
    db = Database(database_url, pool_size=1)
    try:
        async with db.read() as conn:
            return await verify_log(conn, keyring=keyring, witness_dir=key_dir, deep=deep)
    finally:
        await db.dispose()


@audit_app.command("verify")
def verify(
    keys: Path = typer.Option(None, help="Audit key directory (default: HUB_VAR_DIR/audit-keys)."),
    deep: bool = typer.Option(True, "--deep/--chain-only", help="Also check search columns and index rows."),
) -> None:
    """Check the hash chain, the index rows and every checkpoint signature; name the first broken place."""
    settings = _settings()
    key_dir = keys or default_key_dir(settings)
    require_database(settings.database_url)
    result = asyncio.run(run_verify(settings.database_url, key_dir, deep=deep))
    typer.echo(result.summary())
    if not result.ok:
        for problem in sorted(result.problems, key=lambda p: p.seq)[:20]:
            typer.echo(f"  {problem}")
        raise typer.Exit(1)


@audit_app.command("export")
def export(
    since: str = typer.Option(
        None, help="Only records from this date/instant on (e.g. 2026-11-01), or after a seq: 'seq:12345'."
    ),
    out: Path = typer.Option(None, "--out", "-o", help="File to write (default: standard output)."),
) -> None:
    """Write the log as NDJSON: one AuditEvent per line, with its chain hashes."""
    from hub.audit.export import export_ndjson
    from hub.fhir.errors import BadRequest
    from hub.fhir.integers import to_int
    from hub.fhir.normalize import date_range
    from hub.store.db import Database

    kwargs: dict[str, int] = {}
    if since:
        seq = to_int(since[4:]) if since.startswith("seq:") else None
        if seq is not None:
            kwargs["since_seq"] = seq
        else:
            try:
                kwargs["since_us"] = date_range(since, "dateTime")[0]
            except BadRequest:
                typer.echo(f"--since must be a date, an instant or seq:N, not {since!r}", err=True)
                raise typer.Exit(2) from None
    settings = _settings()

    require_database(settings.database_url)

    async def run() -> int:
        db = Database(settings.database_url, pool_size=1)
        try:
            async with db.read() as conn:
                if out is None:
                    return await export_ndjson(conn, sys.stdout.buffer, **kwargs)
                with out.open("wb") as fh:
                    return await export_ndjson(conn, fh, **kwargs)
        finally:
            await db.dispose()

    n = asyncio.run(run())
    typer.echo(f"Exported {n} records.", err=True)


@audit_app.command("rotate-key")
def rotate_key(keys: Path = typer.Option(None, help="Audit key directory.")) -> None:
    """Start signing checkpoints with a new Ed25519 key (old public keys stay for verification)."""
    from hub.audit.checkpoints import rotate

    kid = rotate(keys or default_key_dir(_settings()))
    typer.echo(f"New active audit key: {kid}")


__all__ = ["audit_app", "run_verify"]
