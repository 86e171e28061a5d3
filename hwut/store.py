"""The job store: a small live table, archive shards for ended jobs, an in-memory index.

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

On start, artifact files that no job names are removed (:meth:`JobStore.recover`):
a server killed between writing an upload and recording its job leaves one behind.
That is only safe when every table was read in full, so a damaged file stops the
store from opening (:class:`hwut.storage.DamagedStoreFile`) instead of reading as an
empty table, and recover() keeps every file when any table was unreadable or the
tables hold no job although ids were given out.

Ids are never reused: ``db/last_id.json`` holds the highest id ever given out and is
written (atomically, fsynced) before the job is recorded, so even a lost table does
not bring an old id back. A missing mark (a data dir from before it existed) is
rebuilt from the tables; a damaged one refuses like any other store file.

Out of space, writes raise :class:`hwut.storage.StorageFull` after removing what
they created; the in-memory state changes only after its write succeeded.

Every status change goes through :meth:`JobStore.transition`, under one lock, and
is refused when :data:`hwut.jobs.TRANSITIONS` does not allow it.

The queue is fair between users: per board, the owners with WAITING jobs take turns
(round-robin), and each owner's jobs go in submit order. Whose turn it is follows
from when each owner was last handed an instance of the board: the owner served
longest ago (or never) goes first, ties broken by the owner's oldest waiting job.
So a user who submits one job while another has a hundred waiting gets the next
free instance, and users with long queues alternate. An owner held back by the
per-user running limit (``max_running`` of :meth:`JobStore.claim_next`) keeps the
turn and gets the first instance free once one of their jobs ends. The turns live
in memory: after a restart everybody starts as never served.
"""
from __future__ import annotations

import bisect
import datetime as _dt
import json
import logging
import os
import secrets
import sys
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

from tinydb import TinyDB
from tinydb.table import Document

from .jobs import ENDED, Job, JobStatus, TransitionError, allowed, format_time, utcnow
from .storage import (
    AtomicJSONStorage,
    DamagedStoreFile,
    StorageFull,
    atomic_write_bytes,
    fsync_dir,
    is_full,
    make_private_dir,
    private_opener,
    read_json_file,
    read_tables,
)
from .targets import TargetStore
from .users import UserStore

log = logging.getLogger(__name__)

Clock = Callable[[], _dt.datetime]
NameFactory = Callable[[], str]

RESTART_DETAIL = "server restarted"

#: The file in ``db/`` holding the highest job id ever given out.
ID_MARK_NAME = "last_id.json"
#: The file in ``db/`` that fixes the data dir's shard size.
LAYOUT_NAME = "layout.json"

#: The job fields that name files in the artifact dir.
ARTIFACT_FIELDS = ("filename_executable", "filename_log", "filename_other", "filename_infra",
                   "filename_trace")

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


def random_name() -> str:
    """A file name no client can choose or guess (43 URL-safe characters)."""
    return secrets.token_urlsafe(32)


def users_path(data_dir: Path) -> Path:
    """Where the users live, so that ``hwut user`` can open them without the job tables."""
    return Path(data_dir) / "db" / "users.json"


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


class QuotaExceeded(Exception):
    """The owner already has ``limit`` WAITING jobs (``waiting`` of them); nothing stored."""

    def __init__(self, owner: str, limit: int, waiting: int) -> None:
        super().__init__(f"{owner} has {waiting} waiting jobs; the limit is {limit}")
        self.owner = owner
        self.limit = limit
        self.waiting = waiting


@dataclass(frozen=True, slots=True)
class _Summary:
    """What listings filter on, for every job ever run: kept small (slots, interned names)."""

    owner: str
    status: JobStatus
    board: str


class JobStore:
    """Jobs and their artifact files (executable, log, trace) inside ``data_dir``."""

    def __init__(self, data_dir: Path, clock: Clock = utcnow,
                 name_factory: NameFactory = random_name, shard_size: int = 250,
                 durable: bool = True, open_shards: int = 16, glanced_shards: int = 8,
                 tolerate_damage: bool = False) -> None:
        """``tolerate_damage`` opens a store with damaged files for inspection: they are
        skipped and listed in :attr:`damaged`, writes to them still refuse, and
        :meth:`recover` then removes nothing. The server never passes it."""
        self.data_dir = Path(data_dir)
        self.db_dir = self.data_dir / "db"
        self.archive_dir = self.db_dir / "archive"
        self.artifact_dir = self.data_dir / "artifacts"
        for folder in (self.data_dir, self.db_dir, self.archive_dir, self.artifact_dir):
            make_private_dir(folder)
        self.clock = clock
        self.name_factory = name_factory
        self.durable = durable
        self.shard_size = self._layout(shard_size)
        self._lock = threading.RLock()
        #: Held by callers that must read and change a job in one step (cancel).
        self.lock = self._lock
        self._changed = threading.Condition(self._lock)
        self._live_db = TinyDB(self.db_dir / "live.json", storage=AtomicJSONStorage,
                               durable=durable)
        self._live_table = self._live_db.table("jobs")
        self._shards: OrderedDict[int, TinyDB] = OrderedDict()
        self._open_shards = open_shards
        #: Shards lately read record by record (LRU of shard numbers): read again, parsed.
        self._glanced: OrderedDict[int, None] = OrderedDict()
        self._glanced_shards = glanced_shards
        #: Artifact files no job named when the store was opened; recover() removes them.
        self._unreferenced: set[str] = set()
        self._live: dict[int, Job] = {}
        self._index: dict[int, _Summary] = {}
        self._ids: list[int] = []
        self._by_owner: dict[str, list[int]] = {}
        #: The highest id ever given out (what ``db/last_id.json`` says, or more).
        self._last_id = 0
        #: The queue (kept by :meth:`_account`): board -> owner -> WAITING ids, oldest
        #: first; an owner without waiting jobs on a board has no entry.
        self._queues: dict[str, dict[str, list[int]]] = {}
        #: WAITING jobs per owner, all boards together (the waiting-jobs quota).
        self._waiting: dict[str, int] = {}
        #: QUEUED or RUNNING jobs per (board, owner) (the running-instances quota).
        self._busy: dict[tuple[str, str], int] = {}
        #: board -> owner -> the claim number when the owner was last handed an
        #: instance of the board (the round-robin's turns; see the module docstring).
        self._served: dict[str, dict[str, int]] = {}
        self._claims = 0
        self.tolerate_damage = tolerate_damage
        #: The damaged files skipped (only with ``tolerate_damage``).
        self.damaged: list[DamagedStoreFile] = []
        self._load()

    # ---- loading and recovery -------------------------------------------------

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
        and note which artifact files no job names (one pass over what is read anyway)."""
        for folder in (self.db_dir, self.archive_dir):
            for leftover in folder.glob(".*.tmp"):  # a write cut short by a kill
                leftover.unlink(missing_ok=True)
        with os.scandir(self.artifact_dir) as entries:
            unreferenced = {e.name for e in entries
                            if e.is_file(follow_symlinks=False) and not e.name.startswith(".")}
        mark = self._guarded(lambda: read_id_mark(self.id_mark_path))
        for path in sorted(self.archive_dir.glob("jobs-*.json")):
            summaries = self._guarded(partial(archived_summaries, path)) or []
            for job_id, owner, status, board, record in summaries:
                self._remember(job_id, owner, status, board)
                for name in ARTIFACT_FIELDS:
                    unreferenced.discard(record.get(name))
        live_path = self.db_dir / "live.json"
        stale = []
        live = self._guarded(lambda: [check_job_record(live_path, str(doc.doc_id), dict(doc))
                                      for doc in self._live_table.all()]) or []
        for job in live:
            for name in ARTIFACT_FIELDS:
                unreferenced.discard(getattr(job, name))
            if job.id in self._index:
                stale.append(job.id)  # killed between archive write and live delete
                continue
            self._live[job.id] = job
            self._remember(job.id, job.owner, job.status, job.board)
            self._account(job, None)
        if stale:
            self._live_table.remove(doc_ids=stale)
        self._unreferenced = unreferenced
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

    def _account(self, job: Job, old: JobStatus | None) -> None:
        """Keep the queue, the waiting counts and the busy counts in step with one
        job's status going from ``old`` (None: a job new to the live table) to
        ``job.status``. Called under the lock, after the change was written."""
        if old is JobStatus.WAITING:
            queues = self._queues[job.board]
            queues[job.owner].remove(job.id)
            if not queues[job.owner]:
                del queues[job.owner]
                if not queues:
                    del self._queues[job.board]
            self._waiting[job.owner] -= 1
            if not self._waiting[job.owner]:
                del self._waiting[job.owner]
        elif old in (JobStatus.QUEUED, JobStatus.RUNNING):
            key = (job.board, job.owner)
            self._busy[key] -= 1
            if not self._busy[key]:
                del self._busy[key]
        if job.status is JobStatus.WAITING:
            queue = self._queues.setdefault(job.board, {}).setdefault(job.owner, [])
            if not queue or job.id > queue[-1]:
                queue.append(job.id)
            else:
                bisect.insort(queue, job.id)  # a claimed job given back (server stop)
            self._waiting[job.owner] = self._waiting.get(job.owner, 0) + 1
        elif job.status in (JobStatus.QUEUED, JobStatus.RUNNING):
            key = (job.board, job.owner)
            self._busy[key] = self._busy.get(key, 0) + 1

    def recover(self) -> list[int]:
        """After a restart: QUEUED and RUNNING jobs become ERROR; WAITING ones stay to run.
        Artifact files that no job named when the store was opened are removed: an upload
        written by a server killed before it recorded the job (or a log or trace file
        created for a run whose job never came to name it); nothing could ever serve them."""
        failed = []
        with self._lock:
            for job in sorted(self._live.values(), key=lambda j: j.id):
                if job.status in (JobStatus.QUEUED, JobStatus.RUNNING):
                    self.transition(job.id, JobStatus.ERROR, detail=RESTART_DETAIL,
                                    finished=format_time(self.clock()))
                    failed.append(job.id)
            named = {getattr(job, f) for job in self._live.values() for f in ARTIFACT_FIELDS}
            orphans = sorted(self._unreferenced - named)
            self._unreferenced = set()
            refusal = self._orphan_removal_refused()
            if orphans and refusal:
                log.warning("kept %d artifact file(s) that no job names: %s", len(orphans),
                            refusal)
                orphans = []
            for name in orphans:
                self.artifact_path(name).unlink(missing_ok=True)
            if orphans:
                if self.durable:
                    fsync_dir(self.artifact_dir)
                log.warning("removed %d artifact file(s) that no job names (left by a crash)",
                            len(orphans))
        return failed

    def _orphan_removal_refused(self) -> str | None:
        """Why files no job names must not be removed now, or None when it is safe: only
        a complete read of every table proves that no job names them."""
        if self.damaged:
            return "unreadable: " + ", ".join(str(d.path) for d in self.damaged)
        if not self._index and self._last_id > 0:
            return (f"the tables hold no job, but ids up to {self._last_id} were given out "
                    f"({self.id_mark_path}); run `hwut store check`")
        return None

    # ---- artifacts ---------------------------------------------------------------

    def artifact_path(self, name: str) -> Path:
        """Where an artifact lives; names come from the name factory, never from a client."""
        if not name or "/" in name or name.startswith("."):
            raise ValueError(f"not an artifact name: {name!r}")
        return self.artifact_dir / name

    def _write_artifact(self, data: bytes) -> str:
        """A new artifact file holding ``data``; out of space, :class:`StorageFull` and
        no partial file."""
        name = self.name_factory()
        path = self.artifact_path(name)
        created = False
        try:
            with open(path, "xb", opener=private_opener) as fh:
                created = True
                fh.write(data)
                fh.flush()
                if self.durable:
                    os.fsync(fh.fileno())
            if self.durable:
                fsync_dir(self.artifact_dir)
        except BaseException as exc:
            if created:
                path.unlink(missing_ok=True)
            if isinstance(exc, OSError) and is_full(exc) and not isinstance(exc, StorageFull):
                raise StorageFull.from_error(exc, path) from exc
            raise
        return name

    def write_artifact(self, data: bytes) -> str:
        """A new artifact file holding ``data`` (e.g. a job's infrastructure log), its name
        returned; out of space, :class:`StorageFull` and no partial file."""
        return self._write_artifact(data)

    def new_artifact_name(self) -> str:
        return self.name_factory()

    # ---- jobs --------------------------------------------------------------------

    def submit(self, owner: str, board: str, duration_limit_seconds: int, executable: bytes,
               fmt: str, comment: str | None = None, console_input: str | None = None,
               presses: list[Any] | None = None, max_waiting: int | None = None,
               criteria: dict[str, Any] | None = None, trace: str | None = None) -> Job:
        """Store the executable and the WAITING job durably before the caller answers 201.

        The id mark is written before the job: a crash between them loses an id, never
        reuses one. A failed write (:class:`StorageFull`) removes the executable and
        leaves the store as it was, apart from the id it used up. With ``max_waiting``,
        an owner who already has that many WAITING jobs gets :class:`QuotaExceeded`
        (checked under the lock, so concurrent submits cannot slip past it)."""
        filename = self._write_artifact(executable)
        with self._lock:
            waiting = self._waiting.get(owner, 0)
            if max_waiting is not None and waiting >= max_waiting:
                self.artifact_path(filename).unlink(missing_ok=True)
                raise QuotaExceeded(owner, max_waiting, waiting)
            job_id = self._last_id + 1
            job = Job(id=job_id, created=format_time(self.clock()), status=JobStatus.WAITING,
                      owner=owner, board=board, duration_limit_seconds=duration_limit_seconds,
                      filename_executable=filename, format=fmt, comment=comment,
                      input=console_input, presses=[list(p) for p in presses] if presses else None,
                      criteria=criteria, trace=trace)
            try:
                self._raise_mark(job_id)
                self._live_table.insert(Document(job.to_record(), doc_id=job_id))
            except BaseException:
                self.artifact_path(filename).unlink(missing_ok=True)
                raise
            self._live[job_id] = job
            self._remember(job_id, owner, job.status, board)
            self._account(job, None)
            self._changed.notify_all()
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

    def transition(self, job_id: int, status: JobStatus, **changes: Any) -> Job:
        """The only way a status changes: checked against the table, one locked durable write."""
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
            self._account(updated, job.status)
            self._index[job_id] = _Summary(sys.intern(updated.owner), status,
                                           sys.intern(updated.board))
            self._changed.notify_all()
            return updated

    def update_live(self, job_id: int, **changes: Any) -> Job:
        """Change fields of a live job other than its status (e.g. the log's name)."""
        if "status" in changes:
            raise ValueError("status changes go through transition()")
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

    def _turn(self, board: str, owner: str, queue: list[int]) -> tuple[int, int]:
        """Sorts the owners with WAITING jobs on ``board`` in the order they take turns:
        served longest ago (0: never) first, then the oldest waiting job first."""
        return self._served.get(board, {}).get(owner, 0), queue[0]

    def claim_next(self, board: str, instance: str,
                   max_running: int | None = None) -> Job | None:
        """The next WAITING job for ``board`` becomes QUEUED on ``instance``: the oldest
        job of the owner whose turn it is (round-robin between owners, see the module
        docstring). Owners whose jobs already hold ``max_running`` instances of the board
        are passed over: their jobs stay WAITING, and they keep their turn. None when
        no job can be claimed. O(owners waiting on the board)."""
        with self._lock:
            queues = self._queues.get(board)
            if not queues:
                return None
            ready = [(self._turn(board, owner, queue), owner) for owner, queue in queues.items()
                     if max_running is None or self._busy.get((board, owner), 0) < max_running]
            if not ready:
                return None
            _, owner = min(ready)
            job = self.transition(queues[owner][0], JobStatus.QUEUED, instance=instance)
            self._claims += 1
            self._served.setdefault(board, {})[owner] = self._claims
            return job

    def wait_for_change(self, timeout: float) -> None:
        """Sleep until a job is submitted or changes status, or ``timeout`` passes."""
        with self._changed:
            self._changed.wait(timeout)

    def wake(self) -> None:
        """Wake every worker sleeping in wait_for_change (used on shutdown)."""
        with self._changed:
            self._changed.notify_all()

    def queue_position(self, job: Job) -> int | None:
        """1 for the next job its board will take; None once the job is no longer WAITING.

        The position at which :meth:`claim_next` will hand the job out if nothing else
        is submitted or canceled: owners take turns in a fixed order (their
        :meth:`_turn`), one job each, so a job that is the k-th of its owner's queue comes
        after everybody's first k-1 jobs and after the k-th jobs of the owners before its
        owner. Exact whenever no owner is held back by the running limit; an owner who
        is comes at their turn, which holds if one of their jobs has ended by then.
        O(owners waiting on the board)."""
        if job.status is not JobStatus.WAITING:
            return None
        with self._lock:
            current = self._live.get(job.id)
            if current is None or current.status is not JobStatus.WAITING:
                return None
            queues = self._queues[job.board]
            mine = queues[job.owner]
            k = bisect.bisect_left(mine, job.id)  # jobs of the owner ahead of this one
            turn = self._turn(job.board, job.owner, mine)
            position = 1
            for owner, queue in queues.items():
                position += min(len(queue), k)
                if len(queue) > k and self._turn(job.board, owner, queue) < turn:
                    position += 1
            return position

    def waiting_count(self, owner: str) -> int:
        """How many WAITING jobs ``owner`` has, all boards together."""
        with self._lock:
            return self._waiting.get(owner, 0)

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


class Store:
    """Everything the service keeps in its data dir: jobs, users, targets."""

    def __init__(self, data_dir: Path, clock: Clock = utcnow,
                 name_factory: NameFactory = random_name,
                 token_factory: NameFactory = random_name,
                 password_hasher: Any = None, shard_size: int = 250,
                 durable: bool = True) -> None:
        self.data_dir = Path(data_dir)
        self.jobs = JobStore(self.data_dir, clock=clock, name_factory=name_factory,
                             shard_size=shard_size, durable=durable)
        self.users = UserStore(users_path(self.data_dir), clock=clock,
                               token_factory=token_factory, hasher=password_hasher)
        self.targets = TargetStore(self.jobs.db_dir / "targets.json", durable=durable)

    def close(self) -> None:
        self.jobs.close()
