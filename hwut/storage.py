"""A TinyDB storage that survives SIGKILL and refuses damaged files; typed disk-full errors.

TinyDB's JSONStorage truncates and rewrites the file in place, so a kill in the
middle leaves half a file. Here every write goes to a temp file in the same
directory, is fsynced, renamed over the old file, and the directory is fsynced,
so the file on disk is always either the old or the new complete version.
Reads come from memory after the first load because this process is the only
writer of the files it keeps open (the users file, which the CLI may also write,
is reloaded by its owner when it changes on disk).

TinyDB (and the code before this module) takes an empty file for an empty table.
For a store that is wrong: a 0-byte ``live.json`` left by a failing disk would
make the server forget its jobs, reuse their ids and delete their artifacts as
orphans, and a 0-byte ``users.json`` would get a fresh admin. So every JSON file
the store opens goes through :func:`read_json_file`, which tells "not there yet"
(a new data dir: fine) from "there but unreadable" (:class:`DamagedStoreFile`,
whose message names the file and the way out: restore or ``hwut store repair``).

A write that fails for lack of space (ENOSPC, or EDQUOT for a quota) raises
:class:`StorageFull` after removing what it had created, and leaves the old file
and the in-memory cache as they were, so the store keeps working once space is
freed.
"""
from __future__ import annotations

import errno
import fcntl
import json
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

from tinydb.storages import Storage

#: Everything the store creates is its owner's alone: directories 0700, files 0600
#: (explicit modes at creation, not the process umask; temp files from mkstemp are 0600).
PRIVATE_DIR_MODE = 0o700
PRIVATE_FILE_MODE = 0o600

#: errno values that mean "no room to write": the disk, or the owner's quota.
FULL_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT})


class DamagedStoreFile(RuntimeError):
    """A store file exists but cannot be read as what it should hold (empty, truncated,
    not JSON, wrong shape). The store refuses to open rather than guess: taking it for
    an empty table would reuse ids and delete artifacts."""

    def __init__(self, path: str | os.PathLike[str], reason: str) -> None:
        self.path = Path(path)
        self.reason = reason
        data_dir = data_dir_of(self.path)
        where = f" --data-dir {data_dir}" if data_dir is not None else ""
        super().__init__(
            f"damaged store file {self.path}: {reason}. The server does not start on a "
            f"damaged file (it would forget jobs and reuse their ids). Restore the file "
            f"from a backup, or run `hwut store check{where}` to see what is readable and "
            f"`hwut store repair{where}` to salvage it (the damaged file is kept beside it).")


class StorageFull(OSError):
    """A store write failed for lack of space; nothing partial was left behind and the
    store is unchanged (retry once space is freed)."""

    @classmethod
    def from_error(cls, exc: OSError, path: str | os.PathLike[str]) -> StorageFull:
        return cls(exc.errno, os.strerror(exc.errno or errno.ENOSPC), str(path))


class DataDirInUse(RuntimeError):
    """Another server (or a repair) already uses this data dir (two writers would
    corrupt it)."""


def data_dir_of(path: Path) -> Path | None:
    """The data dir a store file lives in (the parent of its ``db`` folder), if any."""
    for parent in path.parents:
        if parent.name == "db":
            return parent.parent
    return None


def lock_data_dir(data_dir: Path) -> IO[str]:
    """Hold an exclusive lock on the data dir for as long as the handle is open; the
    kernel drops it when the process dies, so a SIGKILLed server never blocks a restart."""
    make_private_dir(data_dir)
    handle = open(data_dir / "server.lock", "a",  # noqa: SIM115 - held by the caller
                  opener=private_opener)
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.close()
        raise DataDirInUse(f"another hwut server uses the data dir {data_dir}") from None
    return handle


def private_opener(path: str, flags: int) -> int:
    """``open(..., opener=private_opener)``: a file created by it is mode 0600."""
    return os.open(path, flags, PRIVATE_FILE_MODE)


def make_private_dir(path: Path) -> None:
    """Create ``path`` (mode 0700) and missing parents; an existing one is left as is."""
    Path(path).mkdir(mode=PRIVATE_DIR_MODE, parents=True, exist_ok=True)


def is_full(exc: BaseException) -> bool:
    """True for the OSErrors that mean the disk (or quota) is full."""
    return isinstance(exc, OSError) and exc.errno in FULL_ERRNOS


@contextmanager
def storage_full_guard(path: str | os.PathLike[str], remove: bool = True) -> Iterator[None]:
    """Turn ENOSPC/EDQUOT raised inside the block into :class:`StorageFull`, first
    removing ``path`` (the partial file the block was writing) when ``remove``.
    For writers outside this module (a job's log files)."""
    try:
        yield
    except OSError as exc:
        if not is_full(exc) or isinstance(exc, StorageFull):
            raise
        if remove:
            Path(path).unlink(missing_ok=True)
        raise StorageFull.from_error(exc, path) from exc


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def atomic_write_bytes(path: Path, data: bytes, durable: bool = True) -> None:
    """Replace ``path`` with ``data`` so a crash leaves the old or the new file, never a
    mix (``durable`` adds the fsyncs that make it survive a power cut, not only a kill).
    Out of space: :class:`StorageFull`, the temp file removed, the old file untouched."""
    path = Path(path)
    tmp: str | None = None
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            if durable:
                os.fsync(fh.fileno())
        os.replace(tmp, path)
        tmp = None
        if durable:
            fsync_dir(path.parent)
    except BaseException as exc:
        if tmp is not None:
            Path(tmp).unlink(missing_ok=True)
        if isinstance(exc, OSError) and is_full(exc) and not isinstance(exc, StorageFull):
            raise StorageFull.from_error(exc, path) from exc
        raise


def parse_json_bytes(path: Path, raw: bytes) -> Any:
    """``raw`` (the content of ``path``) decoded, or :class:`DamagedStoreFile` saying how
    it is damaged. Every file of the store is written whole by :func:`atomic_write_bytes`,
    so anything but one complete JSON document means the file was damaged after."""
    if not raw:
        raise DamagedStoreFile(path, "the file is empty (0 bytes)")
    if not raw.strip():
        raise DamagedStoreFile(path, f"the file holds only {len(raw)} blank bytes")
    if not raw.strip(b"\0"):
        raise DamagedStoreFile(path, f"the file holds only {len(raw)} zero bytes")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        what = "truncated" if exc.reason == "unexpected end of data" else "not UTF-8 text"
        raise DamagedStoreFile(path, f"{what} (byte {exc.start} of {len(raw)})") from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        if exc.pos >= len(text.rstrip()) or exc.msg.startswith("Unterminated string"):
            what = "truncated: the JSON ends early"
        else:
            what = f"not valid JSON ({exc.msg})"
        raise DamagedStoreFile(path, f"{what} at character {exc.pos} of {len(text)}"
                               ) from None


def read_json_file(path: str | os.PathLike[str]) -> Any:
    """The JSON document in ``path``; None when the file does not exist (a new data dir);
    :class:`DamagedStoreFile` when it exists but is empty, truncated or not JSON."""
    path = Path(path)
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return None
    return parse_json_bytes(path, raw)


def check_tables(path: Path, data: Any) -> dict[str, dict[str, dict[str, Any]]]:
    """``data`` if it has TinyDB's shape ``{table: {doc_id: {record}}}``, else
    :class:`DamagedStoreFile` (valid JSON of another shape is no table either)."""
    if not isinstance(data, dict):
        raise DamagedStoreFile(path, f"not a TinyDB file: the top level is a "
                               f"{type(data).__name__}, not an object of tables")
    for name, table in data.items():
        if not isinstance(table, dict):
            raise DamagedStoreFile(path, f"not a TinyDB file: table {name!r} is a "
                                   f"{type(table).__name__}, not an object of records")
        for doc_id, record in table.items():
            if not doc_id.isdigit() or not isinstance(record, dict):
                raise DamagedStoreFile(path, f"not a TinyDB file: table {name!r} has "
                                       f"entry {doc_id!r} that is not a numbered record")
    return data


def read_tables(path: str | os.PathLike[str]) -> dict[str, dict[str, dict[str, Any]]] | None:
    """A TinyDB file's tables, None when it does not exist, or :class:`DamagedStoreFile`:
    the one check every store file goes through (jobs, users, targets)."""
    path = Path(path)
    data = read_json_file(path)
    return None if data is None else check_tables(path, data)


class AtomicJSONStorage(Storage):
    """TinyDB storage: atomic durable writes, in-memory reads, damaged files refused."""

    def __init__(self, path: str | os.PathLike[str], durable: bool = True) -> None:
        self.path = Path(path)
        self.durable = durable
        self._data: dict[str, Any] | None = None

    def read(self) -> dict[str, Any] | None:
        if self._data is None:
            self._data = read_tables(self.path)
        if self._data is None:
            return None
        # TinyDB mutates what read() returns before calling write(); hand out a copy
        # of the table dicts so a failed write does not leave memory ahead of disk.
        return {name: dict(table) for name, table in self._data.items()}

    def write(self, data: dict[str, Any]) -> None:
        payload = json.dumps(data, separators=(",", ":")).encode()
        try:
            atomic_write_bytes(self.path, payload, durable=self.durable)
        except BaseException:
            # TinyDB's update() changes records in place, and the records are shared
            # with the cache: forget it, the next read comes from the unchanged file.
            self._data = None
            raise
        self._data = {name: dict(table) for name, table in data.items()}

    def reload(self) -> None:
        """Forget the cache; the next read comes from disk."""
        self._data = None

    def close(self) -> None:
        self._data = None
