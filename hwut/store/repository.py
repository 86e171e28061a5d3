"""The job repository: a small live table, archive shards for ended jobs, an in-memory index.

Why this shape: TinyDB rewrites a whole file on every write, so one table holding
every job ever run makes each submit slower than the last. Here the file rewritten
on a submit or a status change holds only the live jobs (WAITING, QUEUED, RUNNING),
and an ended job moves once into the archive shard for its id range
(``shard_size`` ids per file, 250 by default: small enough that reading an old
job parses little), so no write touches more than one bounded file.
An in-memory index (id -> owner, status, board, plus per-owner id lists) answers
listings and the next id without reading the archive.

Reading one old job must not cost a whole shard's parse. Parsed shards are kept in
a small LRU (``open_shards``), but with 100k jobs there are 400 shards and random
lookups miss it almost every time. So the first read of a shard that is not in the
LRU decodes only the wanted record from the file's text: the file is compact JSON,
``"<id>":{`` marks each record, and that pattern cannot occur inside a JSON string,
where quotes are escaped (a file in any other layout falls back to the full parse).
A shard read again soon after (a listing page, a client polling an old job) is
parsed into the LRU.

A damaged file stops the repository from opening (:class:`hwut.storage.DamagedStoreFile`)
instead of reading as an empty table (``tolerate_damage`` opens it for inspection).

Ids are never reused: ``db/last_id.json`` holds the highest id ever given out and is
written (atomically, fsynced) before the job is recorded, so even a lost table does
not bring an old id back. A missing mark (a data dir from before it existed) is
rebuilt from the tables; a damaged one refuses like any other store file.

Out of space, writes raise :class:`hwut.storage.StorageFull`; the in-memory state
changes only after its write succeeded.

Every status change goes through :meth:`JobRepository.transition`, under the lock, and
is refused when :data:`hwut.jobs.TRANSITIONS` does not allow it; a change naming a
field a job does not have is refused too (:class:`UnknownField`). Whoever must follow
the changes (the queue) registers with :meth:`JobRepository.listen` and is called
under the lock after each write.
"""
from __future__ import annotations

import bisect
import json
import logging
import sys
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, fields
from functools import partial
from pathlib import Path
from typing import Any

from tinydb import TinyDB
from tinydb.table import Document

from ..jobs import ENDED, Job, JobStatus, TransitionError, allowed
from ..storage import (
    AtomicJSONStorage,
    DamagedStoreFile,
    atomic_write_bytes,
    read_json_file,
    read_tables,
)

log = logging.getLogger(__name__)

#: The file in ``db/`` holding the highest job id ever given out.
ID_MARK_NAME = "last_id.json"
#: The file in ``db/`` that fixes the data dir's shard size.
LAYOUT_NAME = "layout.json"

#: The job fields that name files in the artifact dir.
ARTIFACT_FIELDS = ("filename_executable", "filename_log", "filename_other", "filename_infra",
                   "filename_trace", "filename_log_times")

#: The fields a change may name: every field of a job but its id and status (the
#: status changes through transition() only).
CHANGEABLE_FIELDS = frozenset(f.name for f in fields(Job)) - {"id", "status"}

_DECODER = json.JSONDecoder()
_STATUS_VALUES = frozenset(s.value for s in JobStatus)


def find_record(text: str, job_id: int) -> dict[str, Any] | None:
    """Job ``job_id``'s record in a shard file's compact JSON text, decoding nothing else.

    None when it is not there or the text is not in the compact layout
    ``{"jobs":{"1":{...},"2":{...}}}`` (the caller then parses the file in full).
    """
    key = f'"{job_id}":{{'
    pos = text.find(key)
    while pos > 0:
        if text[pos - 1] in "{,":  # a key of the jobs table, not of a nested object
            try:
                record, _ = _DECODER.raw_decode(text, pos + len(key) - 1)
            except ValueError:
                return None
            return record if isinstance(record, dict) else None
        pos = text.find(key, pos + 1)
    return None


def read_id_mark(path: Path) -> int | None:
    """The highest job id given out, from the mark file; None when there is none yet."""
    data = read_json_file(path)
    if data is None:
        return None
    value = data.get("last_id") if isinstance(data, dict) else None
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise DamagedStoreFile(path, 'not a job id mark: expected {"last_id": <id>}')
    return value


def write_id_mark(path: Path, last_id: int, durable: bool = True) -> None:
    atomic_write_bytes(path, json.dumps({"last_id": last_id}).encode(), durable=durable)


def read_layout(path: Path) -> int | None:
    """The data dir's shard size from ``layout.json``; None when the file does not exist."""
    data = read_json_file(path)
    if data is None:
        return None
    value = data.get("shard_size") if isinstance(data, dict) else None
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise DamagedStoreFile(path, 'not a layout: expected {"shard_size": <ids per shard>}')
    return value


def check_job_record(path: Path, doc_id: str, record: dict[str, Any]) -> Job:
    """The job in a table record, or :class:`DamagedStoreFile` naming the record: a
    record that cannot be read is damage too, not a reason to crash with a KeyError."""
    try:
        job = Job.from_record(record)
    except (KeyError, TypeError, ValueError) as exc:
        raise DamagedStoreFile(path, f"job record {doc_id} is not a job ({exc!r})") from None
    if str(job.id) != doc_id:
        raise DamagedStoreFile(path, f"job record {doc_id} holds job {job.id}")
    return job


def archived_summaries(path: Path) -> list[tuple[int, str, JobStatus, str, dict[str, Any]]]:
    """(id, owner, status, board, record) of every job in an archive shard, checked only
    as far as the index needs (a full :class:`Job` per record would slow every start);
    :class:`DamagedStoreFile` for a damaged file or record; [] for a missing file."""
    tables = read_tables(path)
    out = []
    for doc_id, record in (tables or {}).get("jobs", {}).items():
        owner, status, board = record.get("owner"), record.get("status"), record.get("board")
        if not (isinstance(owner, str) and isinstance(board, str)
                and status in _STATUS_VALUES and record.get("id") == int(doc_id)):
            raise DamagedStoreFile(path, f"job record {doc_id} lacks a valid id, owner, "
                                   "status or board")
        out.append((int(doc_id), owner, JobStatus(status), board, record))
    return out


class UnknownJob(KeyError):
    """No job with this id."""


class UnknownField(ValueError):
    """A change names a field no job has (a typo such as ``instnace``): nothing written."""

    def __init__(self, names: Iterable[str]) -> None:
        self.names = sorted(names)
        super().__init__(f"a job has no field {', '.join(map(repr, self.names))}; fields that "
                         f"may change: {', '.join(sorted(CHANGEABLE_FIELDS))}")


def check_changes(changes: dict[str, Any]) -> None:
    """:class:`UnknownField` when ``changes`` names a field a job does not have;
    ValueError for ``status`` or ``id``, which no plain change may touch."""
    if "status" in changes or "id" in changes:
        raise ValueError("a job's id never changes, and its status only through transition()")
    unknown = set(changes) - CHANGEABLE_FIELDS
    if unknown:
        raise UnknownField(unknown)


@dataclass(frozen=True, slots=True)
class _Summary:
    """What listings filter on, for every job ever run: kept small (slots, interned names)."""

    owner: str
    status: JobStatus
    board: str


#: Called under the lock after a job was written: (its status before, None for a job new
#: to the live table; the job as written).
Listener = Callable[[JobStatus | None, Job], None]


class JobRepository:
    """Every job ever run, in ``db_dir``: the live table, the archive shards, the index."""

    def __init__(self, db_dir: Path, lock: threading.RLock, shard_size: int = 250,
                 durable: bool = True, open_shards: int = 16, glanced_shards: int = 8,
                 tolerate_damage: bool = False) -> None:
        self.db_dir = Path(db_dir)
        self.archive_dir = self.db_dir / "archive"
        self.durable = durable
        self.shard_size = self._layout(shard_size)
        self._lock = lock
        self._listeners: list[Listener] = []
        self._live_db = TinyDB(self.db_dir / "live.json", storage=AtomicJSONStorage,
                               durable=durable)
        self._live_table = self._live_db.table("jobs")
        self._shards: OrderedDict[int, TinyDB] = OrderedDict()
        self._open_shards = open_shards
        #: Shards lately read record by record (LRU of shard numbers): read again, parsed.
        self._glanced: OrderedDict[int, None] = OrderedDict()
        self._glanced_shards = glanced_shards
        self._live: dict[int, Job] = {}
        self._index: dict[int, _Summary] = {}
        self._ids: list[int] = []
        self._by_owner: dict[str, list[int]] = {}
        #: The highest id ever given out (what ``db/last_id.json`` says, or more).
        self._last_id = 0
        self.tolerate_damage = tolerate_damage
        #: The damaged files skipped (only with ``tolerate_damage``).
        self.damaged: list[DamagedStoreFile] = []
        #: Artifact names the tables named when they were read (the orphan check).
        self.named_at_load: set[str] = set()
        self._load()

    # ---- loading --------------------------------------------------------------------

    def _layout(self, shard_size: int) -> int:
        """The shard size is fixed when the data dir is created (ids map to shards by it);
        a data dir with shards but no layout cannot be read by guessing it."""
        path = self.db_dir / LAYOUT_NAME
        stored = read_layout(path)
        if stored is not None:
            return stored
        if any(self.archive_dir.glob("jobs-*.json")):
            raise DamagedStoreFile(path, "the file is missing although the archive holds "
                                   "shards (their shard size cannot be guessed)")
        atomic_write_bytes(path, json.dumps({"shard_size": shard_size}).encode())
        return shard_size

    @property
    def id_mark_path(self) -> Path:
        return self.db_dir / ID_MARK_NAME

    def _shard_path(self, shard: int) -> Path:
        return self.archive_dir / f"jobs-{shard:06d}.json"

    def _load(self) -> None:
        """Build the index from the shards and the live table (archive wins on overlap),
        noting which artifact files the jobs name (one pass over what is read anyway)."""
        for folder in (self.db_dir, self.archive_dir):
            for leftover in folder.glob(".*.tmp"):  # a write cut short by a kill
                leftover.unlink(missing_ok=True)
        named: set[str] = set()
        mark = self._guarded(lambda: read_id_mark(self.id_mark_path))
        for path in sorted(self.archive_dir.glob("jobs-*.json")):
            summaries = self._guarded(partial(archived_summaries, path)) or []
            for job_id, owner, status, board, record in summaries:
                self._remember(job_id, owner, status, board)
                named.update(record.get(name) for name in ARTIFACT_FIELDS)
        live_path = self.db_dir / "live.json"
        stale = []
        live = self._guarded(lambda: [check_job_record(live_path, str(doc.doc_id), dict(doc))
                                      for doc in self._live_table.all()]) or []
        for job in live:
            named.update(getattr(job, name) for name in ARTIFACT_FIELDS)
            if job.id in self._index:
                stale.append(job.id)  # killed between archive write and live delete
                continue
            self._live[job.id] = job
            self._remember(job.id, job.owner, job.status, job.board)
        if stale:
            self._live_table.remove(doc_ids=stale)
        self.named_at_load = {n for n in named if isinstance(n, str)}
        highest = self._ids[-1] if self._ids else 0
        self._last_id = max(mark or 0, highest)
        if mark is not None and mark < highest:
            log.warning("%s said %d but job %d exists: raised", self.id_mark_path, mark,
                        highest)
        if (mark is None or mark < highest) and not self.damaged:
            write_id_mark(self.id_mark_path, self._last_id, durable=self.durable)

    def _guarded(self, read: Callable[[], Any]) -> Any:
        """``read()``; with ``tolerate_damage`` a damaged file is noted and reads as None."""
        try:
            return read()
        except DamagedStoreFile as exc:
            if not self.tolerate_damage:
                raise
            log.warning("%s", exc)
            self.damaged.append(exc)
            return None

    def _remember(self, job_id: int, owner: str, status: JobStatus, board: str) -> None:
        if job_id not in self._index:
            if not self._ids or job_id > self._ids[-1]:
                self._ids.append(job_id)
            else:
                bisect.insort(self._ids, job_id)
            ids = self._by_owner.setdefault(owner, [])
            if not ids or job_id > ids[-1]:
                ids.append(job_id)
            else:
                bisect.insort(ids, job_id)
        self._index[job_id] = _Summary(sys.intern(owner), status, sys.intern(board))

    def listen(self, listener: Listener) -> None:
        """Call ``listener`` after each write of a live job (under the lock); the live
        jobs read at start are handed to it at once, as new ones."""
        with self._lock:
            self._listeners.append(listener)
            for job in sorted(self._live.values(), key=lambda j: j.id):
                listener(None, job)

    def _tell(self, old: JobStatus | None, job: Job) -> None:
        for listener in self._listeners:
            listener(old, job)

    def orphan_removal_refused(self) -> str | None:
        """Why files no job names must not be removed now, or None when it is safe: only
        a complete read of every table proves that no job names them."""
        if self.damaged:
            return "unreadable: " + ", ".join(str(d.path) for d in self.damaged)
        if not self._index and self._last_id > 0:
            return (f"the tables hold no job, but ids up to {self._last_id} were given out "
                    f"({self.id_mark_path}); run `hwut store check`")
        return None

    # ---- writing --------------------------------------------------------------------

    def add(self, make: Callable[[int], Job]) -> Job:
        """A new live job, ``make(id)`` with the next id: the id mark is written before
        the job, so a crash between them loses an id, never reuses one."""
        with self._lock:
            job = make(self._last_id + 1)
            if job.id != self._last_id + 1 or job.status in ENDED:
                raise ValueError(f"job {job.id} is not the next live job")
            self._raise_mark(job.id)
            self._live_table.insert(Document(job.to_record(), doc_id=job.id))
            self._live[job.id] = job
            self._remember(job.id, job.owner, job.status, job.board)
            self._tell(None, job)
            return job

    def insert_ended(self, jobs: Iterable[Job]) -> None:
        """Write already-ended jobs straight into the archive, shard by shard (bulk fill)."""
        grouped: dict[int, list[Job]] = {}
        for job in jobs:
            if job.status not in ENDED:
                raise ValueError(f"job {job.id} is {job.status.value}, not ended")
            grouped.setdefault(job.id // self.shard_size, []).append(job)
        with self._lock:
            if grouped:
                self._raise_mark(max(j.id for batch in grouped.values() for j in batch))
            for shard, batch in sorted(grouped.items()):
                table = self._shard(shard).table("jobs")
                table.insert_multiple(Document(j.to_record(), doc_id=j.id) for j in batch)
                for job in batch:
                    self._remember(job.id, job.owner, job.status, job.board)

    def _raise_mark(self, job_id: int) -> None:
        """Record durably that ids up to ``job_id`` are given out (never lowered)."""
        if self.damaged:  # opened for inspection only: the mark may be one of them
            raise self.damaged[0]
        if job_id > self._last_id:
            write_id_mark(self.id_mark_path, job_id, durable=self.durable)
            self._last_id = job_id

    def transition(self, job_id: int, status: JobStatus, **changes: Any) -> Job:
        """The only way a status changes: checked against the table and the job's fields,
        one locked durable write."""
        check_changes(changes)
        with self._lock:
            job = self._live.get(job_id)
            if job is None:
                current = self.get(job_id).status  # raises UnknownJob
                raise TransitionError(job_id, current, status)
            if not allowed(job.status, status):
                raise TransitionError(job_id, job.status, status)
            record = job.to_record()
            record.update(changes)
            record["status"] = status.value
            updated = Job.from_record(record)
            if status in ENDED:
                table = self._shard(job_id // self.shard_size).table("jobs")
                table.upsert(Document(updated.to_record(), doc_id=job_id))
                self._live_table.remove(doc_ids=[job_id])
                del self._live[job_id]
            else:
                self._live_table.update(updated.to_record(), doc_ids=[job_id])
                self._live[job_id] = updated
            self._index[job_id] = _Summary(sys.intern(updated.owner), status,
                                           sys.intern(updated.board))
            self._tell(job.status, updated)
            return updated

    def update_live(self, job_id: int, **changes: Any) -> Job:
        """Change fields of a live job other than its status (e.g. the log's name)."""
        check_changes(changes)
        with self._lock:
            job = self._live.get(job_id)
            if job is None:
                raise UnknownJob(job_id)
            record = job.to_record()
            record.update(changes)
            updated = Job.from_record(record)
            self._live_table.update(updated.to_record(), doc_ids=[job_id])
            self._live[job_id] = updated
            return updated

    # ---- reading --------------------------------------------------------------------

    @property
    def last_id(self) -> int:
        """The highest job id ever given out: the next job gets a higher one."""
        with self._lock:
            return self._last_id

    def _shard(self, shard: int) -> TinyDB:
        """The shard as an open TinyDB (for writes, and reads of recently written shards)."""
        db = self._shards.get(shard)
        if db is None:
            self._glanced.pop(shard, None)
            db = TinyDB(self._shard_path(shard), storage=AtomicJSONStorage,
                        durable=self.durable)
            self._shards[shard] = db
            while len(self._shards) > self._open_shards:
                self._shards.popitem(last=False)[1].close()
        else:
            self._shards.move_to_end(shard)
        return db

    def get(self, job_id: int) -> Job:
        with self._lock:
            job = self._live.get(job_id)
            if job is not None:
                return job
            if job_id not in self._index:
                raise UnknownJob(job_id)
            record = self._archived(job_id)
            if record is None:
                raise UnknownJob(job_id)
            return Job.from_record(record)

    def _archived(self, job_id: int) -> dict[str, Any] | None:
        """An ended job's record: from its parsed shard when that is in the LRU or was read
        lately, else decoded alone from the shard's text (see the module docstring)."""
        shard = job_id // self.shard_size
        if shard not in self._shards and shard not in self._glanced:
            self._glanced[shard] = None
            while len(self._glanced) > self._glanced_shards:
                self._glanced.popitem(last=False)
            try:
                text = self._shard_path(shard).read_text()
            except FileNotFoundError:
                return None
            except UnicodeDecodeError:
                text = ""  # damaged since it was opened: the full parse below says how
            record = find_record(text, job_id)
            if record is not None:
                return record
        doc = self._shard(shard).table("jobs").get(doc_id=job_id)
        return None if doc is None else dict(doc)

    def exists(self, job_id: int) -> bool:
        with self._lock:
            return job_id in self._index

    def live_jobs(self) -> list[Job]:
        with self._lock:
            return sorted(self._live.values(), key=lambda j: j.id)

    def list(self, owner: str | None = None, status: JobStatus | None = None,
             board: str | None = None, limit: int = 50, offset: int = 0) -> list[Job]:
        """Newest first; ``owner`` None means every owner's jobs."""
        with self._lock:
            ids = self._ids if owner is None else self._by_owner.get(owner, [])
            picked: list[int] = []
            skipped = 0
            for job_id in reversed(ids):
                summary = self._index[job_id]
                if status is not None and summary.status is not status:
                    continue
                if board is not None and summary.board != board:
                    continue
                if skipped < offset:
                    skipped += 1
                    continue
                if len(picked) >= limit:
                    break
                picked.append(job_id)
            return [self.get(job_id) for job_id in picked]

    def count(self) -> int:
        with self._lock:
            return len(self._ids)

    def close(self) -> None:
        with self._lock:
            self._live_db.close()
            for db in self._shards.values():
                db.close()
            self._shards.clear()
            self._glanced.clear()
