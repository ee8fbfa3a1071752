"""Backup and restore of a PostgreSQL hub: the database (``pg_dump``/``pg_restore``), the key files and
the audit witness, as one directory with a manifest.

Consistency: the dump is taken from an exported snapshot (``pg_export_snapshot``) of a REPEATABLE
READ transaction that also reads the audit chain head, so the manifest names exactly the last audit
record in the dump. The witness file is copied up to that record: checkpoints sealed while the
backup ran belong to records the dump does not hold, and a restored hub must verify clean.

A backup directory holds::

    manifest.json           what, when, the audit head (seq, hash), sha256 of every file
    database.dump           pg_dump custom format (pg_restore reads it; compressed)
    keys/jwks.json          the token signing keys (private: keep the backup as secret as the keys)
    audit-keys/keyring.json the audit checkpoint keys
    audit-keys/witness.ndjson  the witnessed checkpoints up to the audit head
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
from sqlalchemy.engine import URL, make_url

from hub.keyfiles import write_private_json

MANIFEST = "manifest.json"
DUMP = "database.dump"
FORMAT = "zorgnet-hub-backup/1"
#: Files under HUB_VAR_DIR that belong in a backup (relative paths).
KEY_FILES = ("keys/jwks.json", "audit-keys/keyring.json")
WITNESS = "audit-keys/witness.ndjson"


class BackupError(RuntimeError):
    """A backup or restore that cannot go on; the message says why."""


@dataclass(frozen=True, slots=True)
class Libpq:
    """Connection arguments for the PostgreSQL client tools, from the hub's SQLAlchemy URL."""

    args: list[str]
    env: dict[str, str]
    conninfo: str
    database: str

    @classmethod
    def from_url(cls, database_url: str) -> Libpq:
        url: URL = make_url(database_url)
        if url.get_backend_name() != "postgresql":
            raise BackupError(
                f"hub backup/restore is for PostgreSQL; HUB_DATABASE_URL is {url.get_backend_name()} "
                "(back up the embedded SQLite file with `sqlite3 var/hub.db .backup FILE`)"
            )
        args: list[str] = []
        env = dict(os.environ)
        if url.host:
            args += ["-h", url.host]
        if url.port:
            args += ["-p", str(url.port)]
        if url.username:
            args += ["-U", url.username]
        if url.password is not None:
            env["PGPASSWORD"] = str(url.password)  # not on the command line, where ps shows it
        for key, value in url.query.items():
            if key in ("sslmode", "ssl"):
                env["PGSSLMODE"] = str(value if isinstance(value, str) else value[0])
        plain = url.set(drivername="postgresql", query={})
        return cls(args, env, plain.render_as_string(hide_password=False), url.database or "")


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _tool(name: str) -> str:
    found = shutil.which(name)
    if found is None:
        raise BackupError(f"{name} is not installed (Debian: apt-get install postgresql-client)")
    return found


def backup(database_url: str, var_dir: Path, out: Path) -> dict[str, Any]:
    """Write a backup of the hub at ``database_url`` (keys from ``var_dir``) into the new directory ``out``."""
    import psycopg

    pq = Libpq.from_url(database_url)
    if out.exists() and any(out.iterdir()):
        raise BackupError(f"{out} is not empty; a backup goes into a new directory")
    out.mkdir(parents=True, exist_ok=True, mode=0o700)
    with psycopg.connect(pq.conninfo) as conn:
        conn.execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
        snapshot = conn.execute("SELECT pg_export_snapshot()").fetchone()
        head = conn.execute("SELECT last_seq, last_hash FROM audit_head WHERE id = 1").fetchone()
        revision = conn.execute("SELECT version_num FROM alembic_version").fetchall()
        assert snapshot is not None
        # The snapshot lives as long as this transaction: pg_dump runs inside it.
        done = subprocess.run(  # noqa: S603 - fixed tool, arguments from the hub's own settings
            [
                _tool("pg_dump"),
                *pq.args,
                "--format=custom",
                "--no-owner",
                "--no-privileges",
                f"--snapshot={snapshot[0]}",
                "--file",
                str(out / DUMP),
                pq.database,
            ],
            env=pq.env,
            capture_output=True,
            text=True,
            check=False,
        )
        conn.rollback()
    if done.returncode != 0:
        raise BackupError(f"pg_dump failed: {done.stderr.strip()}")
    last_seq, last_hash = (int(head[0]), str(head[1])) if head else (0, "")
    files: dict[str, str] = {DUMP: _sha256(out / DUMP)}
    for rel in KEY_FILES:
        src = var_dir / rel
        if src.exists():
            dst = out / rel
            dst.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            shutil.copy2(src, dst)
            os.chmod(dst, 0o600)
            files[rel] = _sha256(dst)
    witness = var_dir / WITNESS
    if witness.exists():
        kept = [
            line
            for line in witness.read_bytes().splitlines()
            if line.strip() and int(orjson.loads(line)["seq"]) <= last_seq
        ]
        dst = out / WITNESS
        dst.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        dst.write_bytes(b"".join(line + b"\n" for line in kept))
        files[WITNESS] = _sha256(dst)
    manifest = {
        "format": FORMAT,
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "database": pq.database,
        "alembic_revision": sorted(r[0] for r in revision),
        "audit_head": {"seq": last_seq, "hash": last_hash},
        "files": files,
    }
    write_private_json(out / MANIFEST, manifest)
    return manifest


def read_manifest(source: Path) -> dict[str, Any]:
    """The manifest of the backup in ``source``, after checking every file's sha256."""
    path = source / MANIFEST
    if not path.exists():
        raise BackupError(f"{source} holds no {MANIFEST}: not a hub backup")
    manifest: dict[str, Any] = orjson.loads(path.read_bytes())
    if manifest.get("format") != FORMAT:
        raise BackupError(f"{path}: unknown backup format {manifest.get('format')!r}")
    for rel, digest in manifest["files"].items():
        file = source / rel
        if not file.exists():
            raise BackupError(f"{file} is missing from the backup")
        if _sha256(file) != digest:
            raise BackupError(f"{file} does not match its checksum in the manifest (damaged or changed)")
    return manifest


def restore(database_url: str, var_dir: Path, source: Path, *, force: bool = False) -> dict[str, Any]:
    """Restore the backup in ``source`` into the (empty) database at ``database_url`` and its key files
    into ``var_dir``. ``force`` replaces an existing schema and existing key files."""
    import psycopg

    manifest = read_manifest(source)
    pq = Libpq.from_url(database_url)
    with psycopg.connect(pq.conninfo) as conn:
        has_schema = conn.execute("SELECT to_regclass('public.resource') IS NOT NULL").fetchone()
    if has_schema and has_schema[0] and not force:
        raise BackupError(
            f"database {pq.database!r} already holds a hub; restore into an empty database "
            "or pass --force to replace it"
        )
    for rel in (*KEY_FILES, WITNESS):
        dst = var_dir / rel
        if rel in manifest["files"] and dst.exists() and not force and _sha256(dst) != manifest["files"][rel]:
            raise BackupError(f"{dst} exists and differs from the backup's; pass --force to replace it")
    args = [
        _tool("pg_restore"),
        *pq.args,
        "--no-owner",
        "--no-privileges",
        "--exit-on-error",
        "--single-transaction",
        "--dbname",
        pq.database,
    ]
    if force:
        args[-2:-2] = ["--clean", "--if-exists"]
    done = subprocess.run(  # noqa: S603 - fixed tool, arguments from the hub's own settings
        [*args, str(source / DUMP)], env=pq.env, capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        raise BackupError(f"pg_restore failed: {done.stderr.strip()}")
    for rel in (*KEY_FILES, WITNESS):
        if rel not in manifest["files"]:
            continue
        dst = var_dir / rel
        dst.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        tmp = dst.with_name(f".{dst.name}.restore")
        shutil.copyfile(source / rel, tmp)
        os.chmod(tmp, 0o600)
        os.replace(tmp, dst)
    return manifest


__all__ = ["BackupError", "backup", "read_manifest", "restore"]
