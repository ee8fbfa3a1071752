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


keys_app = typer.Typer(
    help="The hub's private keys: token signing keys and audit checkpoint keys.", no_args_is_help=True
)


@keys_app.command("init")
def keys_init(
    var_dir: Path = typer.Option(None, "--var-dir", help="Where to write keys/ and audit-keys/ (HUB_VAR_DIR)."),
) -> None:
    """Create the token signing key set and the audit keyring (kept if they exist), e.g. to put them in a
    Kubernetes Secret: keys/jwks.json and audit-keys/keyring.json."""
    from hub.access.keys import HubKeys
    from hub.audit.checkpoints import AuditKeyring
    from hub.settings import get_settings

    root = var_dir or Path(get_settings().var_dir)
    signing = HubKeys.load_or_create(root / "keys")
    audit = AuditKeyring.load_or_create(root / "audit-keys")
    typer.echo(f"{signing.path} (active signing key {signing.active_kid})")
    typer.echo(f"{audit.path} (active audit key {audit.active_kid})")


@keys_app.command("rotate")
def keys_rotate(
    var_dir: Path = typer.Option(None, "--var-dir", help="Where keys/ lives (HUB_VAR_DIR)."),
) -> None:
    """Add a new token signing key and make it active; old keys keep verifying until retired."""
    from hub.access.keys import rotate_keys
    from hub.settings import get_settings

    root = var_dir or Path(get_settings().var_dir)
    typer.echo(f"New active signing key: {rotate_keys(root / 'keys')}")


@keys_app.command("retire")
def keys_retire(
    kid: str = typer.Argument(..., help="The key id to remove (not the active one)."),
    var_dir: Path = typer.Option(None, "--var-dir", help="Where keys/ lives (HUB_VAR_DIR)."),
) -> None:
    """Remove an old signing key: tokens it signed stop verifying."""
    from hub.access.keys import retire_key
    from hub.settings import get_settings

    root = var_dir or Path(get_settings().var_dir)
    try:
        retire_key(root / "keys", kid)
    except (KeyError, ValueError) as exc:
        typer.echo(f"hub keys retire: {exc}", err=True)
        raise typer.Exit(2) from None
    typer.echo(f"Retired {kid}.")


__all__ = ["backup", "keys_app", "restore"]
