"""Everything the service keeps in its data dir, one module per thing kept:

- :mod:`.repository`: every job ever run (a small live table, archive shards for ended
  jobs, an in-memory index), every status change through one locked ``transition()``;
- :mod:`.artifacts`: the jobs' files (executable, logs, traces);
- :mod:`.queue`: the WAITING jobs in the order boards take them (round-robin between
  users) and the quota counts.

:class:`JobStore` puts the three together for the service: a submit stores the file
and the job, a claim takes the next job off the queue, a restart fails what was
interrupted and removes files no job names. Its lock is its own: callers that must
read and change a job in one step get a method that does it
(:meth:`JobStore.cancel_unstarted`), never the lock.

On start, artifact files that no job names are removed (:meth:`JobStore.recover`):
a server killed between writing an upload and recording its job leaves one behind.
That is only safe when every table was read in full, so a damaged file stops the
store from opening (:class:`hwut.storage.DamagedStoreFile`) instead of reading as an
empty table, and recover() keeps every file when any table was unreadable or the
tables hold no job although ids were given out.
"""
from __future__ import annotations

import datetime as _dt
import logging
import threading
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

from ..jobs import ARTIFACT_FIELDS, Job, JobStatus, TransitionError, format_time, utcnow
from ..storage import make_private_dir
from ..targets import TargetStore
from ..users import UserStore
from .artifacts import ArtifactDir, NameFactory, random_name
from .offline import FILE_NAME as OFFLINE_FILE
from .offline import OfflineStore
from .queue import JobQueue
from .repository import (
    CHANGEABLE_FIELDS,
    ID_MARK_NAME,
    LAYOUT_NAME,
    JobRepository,
    Listener,
    UnknownField,
    UnknownJob,
    archived_summaries,
    check_changes,
    check_job_record,
    find_record,
    read_id_mark,
    read_layout,
    write_id_mark,
)

__all__ = [
    "ARTIFACT_FIELDS", "CHANGEABLE_FIELDS", "ID_MARK_NAME", "LAYOUT_NAME", "RESTART_DETAIL",
    "ArtifactDir", "JobQueue", "JobRepository", "JobStore", "Listener", "QuotaExceeded",
    "Store", "UnknownField", "UnknownJob", "archived_summaries", "check_changes",
    "check_job_record", "find_record", "random_name", "read_id_mark", "read_layout",
    "users_path", "write_id_mark",
]

log = logging.getLogger(__name__)

Clock = Callable[[], _dt.datetime]

RESTART_DETAIL = "server restarted"


def users_path(data_dir: Path) -> Path:
    """Where the users live, so that ``hwut user`` can open them without the job tables."""
    return Path(data_dir) / "db" / "users.json"


class QuotaExceeded(Exception):
    """The owner already has ``limit`` WAITING jobs (``waiting`` of them); nothing stored."""

    def __init__(self, owner: str, limit: int, waiting: int) -> None:
        super().__init__(f"{owner} has {waiting} waiting jobs; the limit is {limit}")
        self.owner = owner
        self.limit = limit
        self.waiting = waiting


class JobStore:
    """Jobs, their queue and their artifact files inside ``data_dir``."""

    def __init__(self, data_dir: Path, clock: Clock = utcnow,
                 name_factory: NameFactory = random_name, shard_size: int = 250,
                 durable: bool = True, open_shards: int = 16, glanced_shards: int = 8,
                 tolerate_damage: bool = False) -> None:
        """``tolerate_damage`` opens a store with damaged files for inspection: they are
        skipped and listed in :attr:`damaged`, writes to them still refuse, and
        :meth:`recover` then removes nothing. The server never passes it."""
        self.data_dir = Path(data_dir)
        self.db_dir = self.data_dir / "db"
        for folder in (self.data_dir, self.db_dir, self.db_dir / "archive"):
            make_private_dir(folder)
        self.clock = clock
        self.durable = durable
        self._lock = threading.RLock()
        self.artifacts = ArtifactDir(self.data_dir / "artifacts", name_factory, durable)
        present = self.artifacts.names()
        self.repository = JobRepository(self.db_dir, self._lock, shard_size=shard_size,
                                        durable=durable, open_shards=open_shards,
                                        glanced_shards=glanced_shards,
                                        tolerate_damage=tolerate_damage)
        #: Artifact files no job named when the store was opened; recover() removes them.
        self._unreferenced = present - self.repository.named_at_load
        self.queue = JobQueue(self._lock)
        self.repository.listen(self.queue.account)

    # ---- what the parts say --------------------------------------------------------

    @property
    def archive_dir(self) -> Path:
        return self.repository.archive_dir

    @property
    def artifact_dir(self) -> Path:
        return self.artifacts.directory

    @property
    def shard_size(self) -> int:
        return self.repository.shard_size

    @property
    def id_mark_path(self) -> Path:
        return self.repository.id_mark_path

    @property
    def damaged(self) -> list[Any]:
        """The damaged files skipped (only with ``tolerate_damage``)."""
        return self.repository.damaged

    @property
    def name_factory(self) -> NameFactory:
        return self.artifacts.name_factory

    @property
    def last_id(self) -> int:
        """The highest job id ever given out: the next job gets a higher one."""
        return self.repository.last_id

    # ---- recovery -------------------------------------------------------------------

    def recover(self) -> list[int]:
        """After a restart: QUEUED and RUNNING jobs become ERROR; WAITING ones stay to run.
        Artifact files that no job named when the store was opened are removed: an upload
        written by a server killed before it recorded the job (or a log or trace file
        created for a run whose job never came to name it); nothing could ever serve them."""
        failed = []
        with self._lock:
            for job in self.repository.live_jobs():
                if job.status in (JobStatus.QUEUED, JobStatus.RUNNING):
                    self.transition(job.id, JobStatus.ERROR, detail=RESTART_DETAIL,
                                    finished=format_time(self.clock()))
                    failed.append(job.id)
            named = {n for job in self.repository.live_jobs() for n in job.artifact_names()}
            orphans = sorted(self._unreferenced - named)
            self._unreferenced = set()
            refusal = self.repository.orphan_removal_refused()
            if orphans and refusal:
                log.warning("kept %d artifact file(s) that no job names: %s", len(orphans),
                            refusal)
                orphans = []
            if self.artifacts.remove(orphans):
                log.warning("removed %d artifact file(s) that no job names (left by a crash)",
                            len(orphans))
        return failed

    # ---- artifacts --------------------------------------------------------------------

    def artifact_path(self, name: str) -> Path:
        """Where an artifact lives; names come from the name factory, never from a client."""
        return self.artifacts.path(name)

    def write_artifact(self, data: bytes) -> str:
        """A new artifact file holding ``data`` (e.g. a job's infrastructure log), its name
        returned; out of space, :class:`StorageFull` and no partial file."""
        return self.artifacts.write(data)

    def new_artifact_name(self) -> str:
        return self.artifacts.new_name()

    # ---- jobs -------------------------------------------------------------------------

    def submit(self, owner: str, board: str, duration_limit_seconds: int, executable: bytes,
               fmt: str, comment: str | None = None, console_input: str | None = None,
               presses: list[Any] | None = None, max_waiting: int | None = None,
               criteria: dict[str, Any] | None = None, trace: str | None = None,
               images: Sequence[tuple[dict[str, Any], bytes]] | None = None,
               pins: list[Any] | None = None, realtime: bool = False) -> Job:
        """Store the executable and the WAITING job durably before the caller answers 201.

        ``images``: a job that carries several, each (record, bytes) in order, the first
        being ``executable`` (which is stored once); each record gets its artifact's name
        (``filename``). A failed write (:class:`StorageFull`) removes every file written
        and leaves the store as it was, apart from the id it used up. With
        ``max_waiting``, an owner who already has that many WAITING jobs gets
        :class:`QuotaExceeded` (checked under the lock, so concurrent submits cannot slip
        past it)."""
        written = [self.artifacts.write(executable)]
        try:
            for _, data in (images or [])[1:]:
                written.append(self.artifacts.write(data))
            records = ([{**record, "filename": name}
                        for (record, _), name in zip(images, written, strict=True)]
                       if images else None)
            with self._lock:
                waiting = self.queue.waiting_count(owner)
                if max_waiting is not None and waiting >= max_waiting:
                    raise QuotaExceeded(owner, max_waiting, waiting)
                created = format_time(self.clock())
                return self.repository.add(lambda job_id: Job(
                    id=job_id, created=created, status=JobStatus.WAITING, owner=owner,
                    board=board, duration_limit_seconds=duration_limit_seconds,
                    filename_executable=written[0], format=fmt, comment=comment,
                    input=console_input,
                    presses=[list(p) for p in presses] if presses else None,
                    criteria=criteria, trace=trace, images=records,
                    pins=[list(p) for p in pins] if pins else None, realtime=realtime))
        except BaseException:
            for name in written:
                self.artifacts.path(name).unlink(missing_ok=True)
            raise

    def insert_ended(self, jobs: Iterable[Job]) -> None:
        """Write already-ended jobs straight into the archive, shard by shard (bulk fill)."""
        self.repository.insert_ended(jobs)

    def get(self, job_id: int) -> Job:
        return self.repository.get(job_id)

    def exists(self, job_id: int) -> bool:
        return self.repository.exists(job_id)

    def transition(self, job_id: int, status: JobStatus, **changes: Any) -> Job:
        """The only way a status changes: checked against the table, one locked durable
        write; a change naming a field no job has raises :class:`UnknownField`."""
        return self.repository.transition(job_id, status, **changes)

    def update_live(self, job_id: int, **changes: Any) -> Job:
        """Change fields of a live job other than its status (e.g. the log's name)."""
        return self.repository.update_live(job_id, **changes)

    def listen(self, listener: Listener) -> None:
        """Call ``listener(old status, job)`` after every write of a live job."""
        self.repository.listen(listener)

    def cancel_unstarted(self, job_id: int, **changes: Any) -> tuple[Job, bool]:
        """A WAITING or QUEUED job becomes CANCELED (with ``changes``) in one locked step:
        (the job, True). Any other job comes back as it is: (the job, False); a RUNNING
        one is the scheduler's to stop."""
        check_changes(changes)
        with self._lock:
            job = self.repository.get(job_id)
            if job.status in (JobStatus.WAITING, JobStatus.QUEUED):
                return self.repository.transition(job_id, JobStatus.CANCELED, **changes), True
            return job, False

    def claim_next(self, board: str, instance: str,
                   max_running: int | None = None) -> Job | None:
        """The next WAITING job for ``board`` becomes QUEUED on ``instance``: the oldest
        job of the owner whose turn it is (round-robin between owners, see
        :mod:`hwut.store.queue`). Owners whose jobs already hold ``max_running`` instances
        of the board are passed over. None when no job can be claimed."""
        with self._lock:
            job_id = self.queue.next_job(board, max_running)
            if job_id is None:
                return None
            try:
                job = self.transition(job_id, JobStatus.QUEUED, instance=instance)
            except TransitionError:  # the queue follows every write: cannot happen
                log.exception("job %d was in the queue but not WAITING", job_id)
                return None
            self.queue.served(board, job.owner)
            return job

    def wait_for_change(self, timeout: float) -> None:
        """Sleep until a job is submitted or changes status, or ``timeout`` passes."""
        self.queue.wait_for_change(timeout)

    def wake(self) -> None:
        """Wake every worker sleeping in wait_for_change (used on shutdown)."""
        self.queue.wake()

    def queue_position(self, job: Job) -> int | None:
        """1 for the next job its board will take; None once the job is no longer WAITING
        (see :meth:`hwut.store.queue.JobQueue.position`)."""
        if job.status is not JobStatus.WAITING:
            return None
        return self.queue.position(job)

    def waiting_count(self, owner: str) -> int:
        """How many WAITING jobs ``owner`` has, all boards together."""
        return self.queue.waiting_count(owner)

    def live_jobs(self) -> list[Job]:
        return self.repository.live_jobs()

    def list(self, owner: str | None = None, status: JobStatus | None = None,
             board: str | None = None, limit: int = 50, offset: int = 0) -> list[Job]:
        """Newest first; ``owner`` None means every owner's jobs."""
        return self.repository.list(owner=owner, status=status, board=board, limit=limit,
                                    offset=offset)

    def count(self) -> int:
        return self.repository.count()

    def close(self) -> None:
        self.repository.close()


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
        #: Board instances taken offline, kept across restarts (``.offline``).
        self.offline = OfflineStore(self.jobs.db_dir / OFFLINE_FILE, durable=durable)

    def close(self) -> None:
        self.jobs.close()
