"""``hub backup`` and ``hub restore`` (mounted by :mod:`hub.cli`). Exit codes: 0 done, 1 the restored
audit log does not verify, 2 the backup or restore could not be made (the line printed says why)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import typer


def backup(out: Path = typer.Argument(..., help="New directory to write the backup into.")) -> None:
    """Back up a PostgreSQL hub: pg_dump of a consistent snapshot, the key files, the audit witness."""
    from hub.ops.backup import BackupError
    from hub.ops.backup import backup as run_backup
    from hub.settings import get_settings

    settings = get_settings()
    try:
        manifest = run_backup(settings.database_url, Path(settings.var_dir), out)
    except BackupError as exc:
        typer.echo(f"hub backup: {exc}", err=True)
        raise typer.Exit(2) from None
    head = manifest["audit_head"]
    typer.echo(f"Backup written to {out} (audit log up to seq {head['seq']}, {len(manifest['files'])} files).")


def restore(
    source: Path = typer.Argument(..., help="A directory written by `hub backup`."),
    force: bool = typer.Option(False, "--force", help="Replace an existing hub schema and key files."),
    verify: bool = typer.Option(True, "--verify/--no-verify", help="Run `hub audit verify` afterwards."),
) -> None:
    """Restore a backup into HUB_DATABASE_URL and HUB_VAR_DIR, then verify the audit log."""
    from hub.audit.cli import default_key_dir, run_verify
    from hub.ops.backup import BackupError
    from hub.ops.backup import restore as run_restore
    from hub.settings import get_settings

    settings = get_settings()
    try:
        manifest = run_restore(settings.database_url, Path(settings.var_dir), source, force=force)
    except BackupError as exc:
        typer.echo(f"hub restore: {exc}", err=True)
        raise typer.Exit(2) from None
    typer.echo(f"Restored {source} (audit log up to seq {manifest['audit_head']['seq']}).")
    if verify:
        result = asyncio.run(run_verify(settings.database_url, default_key_dir(settings)))
        typer.echo(result.summary())
        if not result.ok:
            raise typer.Exit(1)


__all__ = ["backup", "restore"]
