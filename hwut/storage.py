"""A TinyDB storage that survives SIGKILL: whole-file replace with fsync, cached reads.

TinyDB's JSONStorage truncates and rewrites the file in place, so a kill in the
middle leaves half a file. Here every write goes to a temp file in the same
directory, is fsynced, renamed over the old file, and the directory is fsynced,
so the file on disk is always either the old or the new complete version.
Reads come from memory after the first load because this process is the only
writer of the files it keeps open (the users file, which the CLI may also write,
is reloaded by its owner when it changes on disk).
"""
from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

from tinydb.storages import Storage


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Replace ``path`` with ``data`` so a crash leaves the old or the new file, never a mix."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    fsync_dir(path.parent)


class AtomicJSONStorage(Storage):
    """TinyDB storage: atomic durable writes, in-memory reads."""

    def __init__(self, path: str | os.PathLike[str], durable: bool = True) -> None:
        self.path = Path(path)
        self.durable = durable
        self._data: dict[str, Any] | None = None

    def read(self) -> dict[str, Any] | None:
        if self._data is None:
            try:
                raw = self.path.read_bytes()
            except FileNotFoundError:
                return None
            self._data = json.loads(raw) if raw.strip() else None
        if self._data is None:
            return None
        # TinyDB mutates what read() returns before calling write(); hand out a copy
        # of the table dicts so a failed write does not leave memory ahead of disk.
        return {name: dict(table) for name, table in self._data.items()}

    def write(self, data: dict[str, Any]) -> None:
        payload = json.dumps(data, separators=(",", ":")).encode()
        if self.durable:
            atomic_write_bytes(self.path, payload)
        else:
            self.path.write_bytes(payload)
        self._data = {name: dict(table) for name, table in data.items()}

    def reload(self) -> None:
        """Forget the cache; the next read comes from disk."""
        self._data = None

    def close(self) -> None:
        self._data = None
