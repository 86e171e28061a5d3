"""Which board instances are offline, kept across server restarts.

An instance goes offline after ``offline_after`` infrastructure errors in a row, or
when an admin takes it out (``hwut board offline``); it must stay out after ``hwut
serve`` restarts (a crash included) until an admin puts it back, or a restarted
server would send jobs to a board known to be broken. One small JSON file in the
data dir's ``db`` folder, ``{"instances": {NAME: {"reason": ..., "since": ...}}}``,
rewritten whole and atomically on every change (``hwut.storage.atomic_write_bytes``:
a kill leaves the old or the new file). A damaged file stops the server from
starting, as every store file does (``DamagedStoreFile``): guessing "all online"
would put a broken board back in service.

Bounded by the server config: records of instances the config no longer serves are
dropped when the server starts (``keep_only``).
"""
from __future__ import annotations

import json
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from ..storage import DamagedStoreFile, atomic_write_bytes, read_json_file

FILE_NAME = "offline.json"
#: A reason longer than this is cut (the scheduler's reasons are one line; an admin's
#: is checked by the API): the file stays small whatever is sent.
MAX_REASON = 1000


@dataclass(frozen=True)
class OfflineRecord:
    """Why an instance is offline and since when (UTC, ISO 8601)."""

    reason: str
    since: str


class OfflineStore:
    """The offline instances, in memory and in ``path``; thread-safe."""

    def __init__(self, path: Path, durable: bool = True) -> None:
        self.path = Path(path)
        self.durable = durable
        self._lock = threading.Lock()
        self._records = self._read()

    def _read(self) -> dict[str, OfflineRecord]:
        data = read_json_file(self.path)
        if data is None:
            return {}
        instances = data.get("instances") if isinstance(data, dict) else None
        if not isinstance(instances, dict):
            raise DamagedStoreFile(self.path, 'not an offline file: no "instances" object')
        records = {}
        for name, entry in instances.items():
            if not (isinstance(entry, dict) and isinstance(entry.get("reason"), str)
                    and isinstance(entry.get("since"), str)):
                raise DamagedStoreFile(self.path, f"instance {name!r} has no reason and "
                                                  "time as strings")
            records[name] = OfflineRecord(entry["reason"], entry["since"])
        return records

    def _write(self) -> None:
        payload = {"instances": {name: {"reason": r.reason, "since": r.since}
                                 for name, r in sorted(self._records.items())}}
        atomic_write_bytes(self.path, json.dumps(payload, indent=1).encode(),
                           durable=self.durable)

    def records(self) -> dict[str, OfflineRecord]:
        with self._lock:
            return dict(self._records)

    def get(self, name: str) -> OfflineRecord | None:
        with self._lock:
            return self._records.get(name)

    def set_offline(self, name: str, reason: str, since: str) -> OfflineRecord:
        """Record ``name`` offline (kept on disk before this returns). OSError
        (``StorageFull``) when it cannot be written; memory then keeps the old state."""
        record = OfflineRecord(reason[:MAX_REASON], since)
        with self._lock:
            before = self._records.get(name)
            self._records[name] = record
            try:
                self._write()
            except BaseException:
                self._restore(name, before)
                raise
        return record

    def set_online(self, name: str) -> None:
        with self._lock:
            before = self._records.pop(name, None)
            if before is None:
                return
            try:
                self._write()
            except BaseException:
                self._restore(name, before)
                raise

    def keep_only(self, names: Iterable[str]) -> list[str]:
        """Drop the records of instances not in ``names`` (the config no longer serves
        them); returns the names dropped."""
        wanted = set(names)
        with self._lock:
            gone = sorted(set(self._records) - wanted)
            if gone:
                for name in gone:
                    del self._records[name]
                self._write()
        return gone

    def _restore(self, name: str, before: OfflineRecord | None) -> None:
        if before is None:
            self._records.pop(name, None)
        else:
            self._records[name] = before
