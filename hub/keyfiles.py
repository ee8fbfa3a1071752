"""Files that hold private keys (token signing keys, audit checkpoint keys): written atomically
with mode 0600 in a 0700 directory, changed under an advisory lock, re-read when they change."""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson


def write_private_json(path: Path, data: dict[str, Any], *, exclusive: bool = False) -> None:
    """Write ``data`` atomically (mode 0600); with ``exclusive``, only if no file exists yet
    (another worker that got there first wins, and its file is kept)."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}-", suffix=".tmp")  # mode 0600
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(orjson.dumps(data, option=orjson.OPT_INDENT_2))
            fh.flush()
            os.fsync(fh.fileno())
        if exclusive:
            with contextlib.suppress(FileExistsError):
                os.link(tmp, path)
        else:
            os.replace(tmp, path)
            tmp = ""
    finally:
        if tmp:
            os.unlink(tmp)


def file_stamp(path: Path) -> tuple[int, int, int]:
    """What changes when the file is replaced (inode, mtime, size): cheap change detection."""
    st = path.stat()
    return st.st_ino, st.st_mtime_ns, st.st_size


@contextlib.contextmanager
def locked(path: Path, lock_name: str) -> Iterator[None]:
    """An exclusive advisory lock (POSIX flock) on ``lock_name`` beside ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    import fcntl

    with open(path.parent / lock_name, "a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)
