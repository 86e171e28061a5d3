"""Board instances and their workers: one job at a time per instance.

Each configured board instance has a worker thread. The worker loop reads top to
bottom: stop requested? -> claim the next WAITING job for my board (QUEUED) ->
RUNNING -> run it in a process of its own (``hwut.runner``) -> record the outcome ->
the instance is free again. Which job is next is the store's round-robin between
users, passing over a user whose jobs hold ``quota.max_running_per_user`` instances.
The job's process is bounded by the kernel (CPU time, memory, files) and killed with
its process group on cancel, on a hang and when the server stops, so a job can
neither take the server down nor leave anything behind: a crash is an ERROR with a
short reason and the instance takes the next job.

Infrastructure errors (a probe missing, a board that stopped answering) are retried:
a job runs again on its instance up to ``retries`` times (board config, else the
backend's ``default_retries``; the count is the job's ``retries``), and after
``offline_after`` of them in a row the instance goes offline: it takes no job until
an admin puts it back (``hwut board online NAME``, ``POST
/targets/boards/NAME/online``). Offline is kept in the data dir with its reason and
time (``hwut.store.offline``): a restarted server, a killed one included, keeps the
instance out until an admin puts it back.

``why_not_runnable`` tells the submit route whether a board has an instance that
can ever take a job (and if not, why: it answers 503 with that); WAITING jobs of
a board that has none become ERROR with the same reason (``fail_unrunnable``).
"""
from __future__ import annotations

import errno
import importlib
import logging
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Protocol

from hwut.backends.base import (
    Availability,
    Backend,
    BoardInfo,
    CancelReason,
    CancelToken,
    Deadline,
    LiveItem,
    OptionError,
    Outcome,
    StopReason,
)
from hwut.backends.registry import load_failure

from . import trace as pintrace
from .config import BoardConfig, Config, ConfigError
from .jobs import Job, JobStatus, TransitionError, format_time
from .logtime import LogTimes
from .runner.process import JobProcess, job_context
from .runner.spec import JobSpec, Limits
from .storage import StorageFull, private_opener
from .store import JobStore
from .store.offline import OfflineStore
from .verdict import Tap

log = logging.getLogger(__name__)

#: How long a worker waits before trying again when the disk is full.
STORAGE_RETRY_S = 1.0
#: A running job's detail when the server stopped it (it becomes ERROR, not CANCELED).
SHUTDOWN_DETAIL = "the server stopped while the job ran"


class NotRunning(Exception):
    """Live input for a job whose run is not going on (not started, ended, or between
    two attempts)."""


def resolve_backend(name: str, known: Mapping[str, type[Backend]]) -> type[Backend]:
    """A backend by entry-point name, or by ``module:Class`` for locally defined ones."""
    if name in known:
        return known[name]
    failure = load_failure(name, known)
    if failure is not None:  # installed, but broken: say why, not "not installed"
        raise LookupError(f"backend {name!r} failed to load: {failure}")
    if ":" in name:
        module_name, _, attr = name.partition(":")
        cls = getattr(importlib.import_module(module_name), attr)
        if isinstance(cls, type) and issubclass(cls, Backend):
            return cls
        raise LookupError(f"{name} is not a Backend subclass")
    raise LookupError(f"backend {name!r} is not installed; installed: "
                      f"{', '.join(sorted(known)) or 'none'}")


def check_board_options(board: BoardConfig, backend: type[Backend]) -> None:
    """A board's options as its backend declares them, or :class:`ConfigError` naming the
    board, the option and what it allows: a typo or a bad value stops the server at its
    start instead of failing every job."""
    try:
        backend.check_options(board.options)
    except OptionError as exc:
        raise ConfigError(f"board {board.name} (backend {board.backend}): {exc}") from None


class _LogSink:
    """Appends bytes to a job's file as they arrive; silently drops them once closed.

    Unbuffered: what a write accepted is in the file, so closing never has bytes left
    to fail on (a full disk fails the write that hit it, once)."""

    def __init__(self, path: Any) -> None:
        self._fh = open(path, "ab", buffering=0,  # noqa: SIM115 - closed by close()
                        opener=private_opener)  # mode 0600
        self._lock = threading.Lock()
        self.written = 0

    def __call__(self, data: bytes) -> None:
        with self._lock:
            if self._fh.closed:
                return
            view = memoryview(data)
            while view:
                view = view[self._fh.write(view):]
            self.written += len(data)

    def close(self) -> None:
        with self._lock:
            self._fh.close()

    def restart(self) -> None:
        """Empty the file: a retried job's log is its last attempt's."""
        with self._lock:
            if not self._fh.closed:
                self._fh.truncate(0)
            self.written = 0


@dataclass
class Instance:
    """One board instance as the targets API shows it."""

    name: str
    board: BoardConfig
    backend_cls: type[Backend] | None
    backend: Backend | None = None
    availability: Availability = field(default_factory=lambda: Availability(True))
    job_id: int | None = None
    #: The running job's process (its pid is what an operator would look for).
    process: JobProcess | None = None
    #: Why the instance is offline (it takes no job until an admin puts it back).
    offline: str | None = None
    #: When it went offline (UTC, the store's time form), kept across restarts.
    offline_since: str | None = None
    #: Infrastructure errors in a row (reset by any other outcome and by going online).
    failures: int = 0

    @property
    def retries(self) -> int:
        """How often a job is run again after an infrastructure error on this instance."""
        if self.board.retries is not None:
            return self.board.retries
        return self.backend_cls.default_retries if self.backend_cls is not None else 0

    @property
    def offline_after(self) -> int:
        """Infrastructure errors in a row that take this instance offline (0: never)."""
        if self.board.offline_after is not None:
            return self.board.offline_after
        return self.backend_cls.default_offline_after if self.backend_cls is not None else 0

    @property
    def state(self) -> str:
        if self.backend is None or not self.availability.ok:
            return "unavailable"
        if self.offline is not None and self.job_id is None:
            return "offline"
        return "busy" if self.job_id is not None else "idle"

    @property
    def unavailable_reason(self) -> str | None:
        """Why this instance cannot run jobs; None when it can (now or once free)."""
        if self.offline is not None:
            return (f"offline: {self.offline}; an admin puts it back with `hwut board online "
                    f"{self.name}`")
        if self.state != "unavailable":
            return None
        return self.availability.detail or "its backend could not be started"

    @property
    def summary(self) -> str:
        """One line for people: "idle", "busy (job 7)", "offline: <reason>" or
        "unavailable: <reason>"."""
        if self.offline is not None and self.job_id is None:
            return f"offline: {self.offline}"
        reason = self.unavailable_reason
        if reason is not None:
            return f"unavailable: {reason}"
        return f"busy (job {self.job_id})" if self.state == "busy" else self.state

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "backend": self.board.backend, "state": self.state,
                "job": self.job_id, "summary": self.summary,
                "offline": self.offline, "offline_since": self.offline_since,
                "consecutive_failures": self.failures,
                "retries": self.retries, "offline_after": self.offline_after,
                "availability": {"ok": self.availability.ok,
                                 "detail": self.availability.detail}}


class Dispatcher(Protocol):
    """Where jobs go instead of this server's own instances: the seam for remote worker
    hosts (:class:`hwut.broker.dispatcher.RemoteDispatcher`). Attached, it takes the
    WAITING jobs; cancel still goes through the job's token in ``_cancels`` and the
    outcome through :meth:`Scheduler._record`."""

    def start(self) -> None: ...

    def stop(self, timeout: float = 5.0) -> None: ...

    def instances(self, board: str | None = None) -> list[Any]:
        """The remote instances (each with ``describe()``) of ``board``, or of all."""
        ...

    def send_input(self, job_id: int, item: LiveItem) -> float:
        """As :meth:`Scheduler.send_input`, for a job on a remote host."""
        ...

    def known_names(self, board: str) -> list[str]:
        """The remote instances' names (host/instance) of ``board``, offline ones too."""
        ...

    def set_offline(self, name: str, reason: str) -> None: ...

    def set_online(self, name: str) -> None: ...

    def lacking(self, board: str) -> dict[str, str]:
        """What some remote instance of ``board`` cannot do (console_input, presses,
        pins), each with words naming it."""
        ...


class Scheduler:
    def __init__(self, store: JobStore, config: Config,
                 backends: Mapping[str, type[Backend]],
                 monotonic: Callable[[], float] = time.monotonic,
                 offline: OfflineStore | None = None) -> None:
        self.store = store
        #: Where offline instances are kept across restarts (None: in memory only).
        self.offline_store = offline
        self.config = config
        self.monotonic = monotonic
        #: Set when the workers must stop (no job is claimed or started after it).
        self._stop = threading.Event()
        #: The running jobs' cancel tokens: the one way to stop a run, with its reason.
        self._cancels: dict[int, CancelToken] = {}
        #: The running jobs' instances and log time indexes (live input, board time).
        self._running: dict[int, tuple[Instance, LogTimes]] = {}
        self._threads: list[threading.Thread] = []
        self.instances: list[Instance] = []
        #: Set by attach(): jobs go to remote hosts, this server runs none itself.
        self.remote: Dispatcher | None = None
        self._context: Any = None  # the job processes' fork server, made by start()
        #: What each configured board's backend says about it (see BoardInfo); a board
        #: missing here has a backend that knows nothing of it or could not be loaded.
        self.infos: dict[str, BoardInfo] = {}
        for board in config.boards:
            cls: type[Backend] | str  # the backend, or why the board has none
            try:
                backend = resolve_backend(board.backend, backends)
            except (LookupError, ImportError, AttributeError) as exc:
                cls = str(exc)
            else:
                cls = backend
                check_board_options(board, backend)
                info = self._board_info(board, backend)
                if info is not None:
                    self.infos[board.name] = info
                elif backend.boards():  # it lists what it runs, and this board is not among them
                    cls = (f"backend {board.backend!r} cannot run board {board.name!r}; it "
                           f"runs {', '.join(backend.boards())}")
            for number in range(board.instances):
                self.instances.append(self._make_instance(board, number, cls))
        self._restore_offline()

    def _restore_offline(self) -> None:
        """Instances offline before the restart stay offline; records of instances the
        config no longer serves are dropped."""
        if self.offline_store is None:
            return
        records = self.offline_store.records()
        for instance in self.instances:
            record = records.get(instance.name)
            if record is not None:
                instance.offline, instance.offline_since = record.reason, record.since
                log.warning("board instance %s is offline since %s (kept across the "
                            "restart): %s; an admin puts it back with `hwut board online "
                            "%s`", instance.name, record.since, record.reason, instance.name)
        keep = {i.name for i in self.instances}
        if self.config.broker is not None:  # remote instances (host/instance) stay out too
            keep.update(name for name in records if "/" in name)
        dropped = self.offline_store.keep_only(keep)
        if dropped:
            log.warning("offline records of instances no longer configured dropped: %s",
                        ", ".join(dropped))

    @staticmethod
    def _board_info(board: BoardConfig, cls: type[Backend]) -> BoardInfo | None:
        try:
            info = cls.board_info(board.name, board.options)
        except Exception:  # a third-party backend may fail in any way: it then knows nothing
            log.exception("backend %s failed to describe board %s", board.backend, board.name)
            return None
        return info if isinstance(info, BoardInfo) else None

    def _make_instance(self, board: BoardConfig, number: int,
                       cls: type[Backend] | str) -> Instance:
        """``cls`` is the backend class, or why there is none."""
        name = f"{board.name}#{number}"
        if isinstance(cls, str):
            log.error("board instance %s: %s", name, cls)
            return Instance(name, board, None, availability=Availability(False, cls))
        instance = Instance(name, board, cls)
        try:
            instance.availability = cls.availability(board.options)
            instance.backend = cls(board.name, board.options)
        except Exception as exc:  # a backend constructor may fail in any way
            log.exception("board instance %s: backend %s failed to start", name, board.backend)
            instance.availability = Availability(False, f"backend failed to start: {exc}")
        return instance

    # ---- lifecycle -------------------------------------------------------------------

    def attach(self, dispatcher: Dispatcher) -> None:
        """Send jobs to ``dispatcher`` instead of this server's own instances (before
        start()); the configured boards stay what the server offers."""
        for instance in self.instances:
            if instance.backend is not None:
                instance.backend.close()
        self.instances = []
        self.remote = dispatcher

    def start(self) -> None:
        if self.remote is not None:
            self.remote.start()
            return
        self.fail_unrunnable()
        # the fork server imports every backend in use once; each job forks from it
        self._context = job_context(sorted({module for i in self.instances
                                            if i.backend_cls is not None
                                            for module in (i.backend_cls.__module__,
                                                           *i.backend_cls.preload)}))
        for instance in self.instances:
            if instance.state == "unavailable":
                continue
            thread = threading.Thread(target=self._work, args=(instance,),
                                      name=f"hwut-worker-{instance.name}", daemon=True)
            self._threads.append(thread)
            thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        """Ask workers to stop. Running jobs are stopped so that no backend is left open;
        they become ERROR ("the server stopped while the job ran"), not CANCELED, because
        neither their owner nor an admin canceled them. Claimed jobs go back to WAITING."""
        self._stop.set()
        if self.remote is not None:
            self.remote.stop(timeout)
        for token in list(self._cancels.values()):
            token.cancel(CancelReason.SHUTDOWN, SHUTDOWN_DETAIL)
        self.store.wake()
        deadline = self.monotonic() + timeout
        for thread in self._threads:
            thread.join(max(0.0, deadline - self.monotonic()))
        for instance in self.instances:
            if instance.backend is not None and instance.job_id is None:
                try:
                    instance.backend.close()
                except Exception:  # closing must not stop the others from closing
                    log.exception("closing backend of %s failed", instance.name)

    def boards_with_instances(self) -> dict[str, list[Any]]:
        """Each board's instances (with ``describe()``): this server's, then remote ones."""
        result: dict[str, list[Any]] = {}
        for instance in self.instances:
            result.setdefault(instance.board.name, []).append(instance)
        for remote in self.remote.instances() if self.remote is not None else ():
            result.setdefault(remote.board, []).append(remote)
        return result

    # ---- can a board run jobs? -------------------------------------------------------

    def board_info(self, board: str) -> BoardInfo | None:
        return self.infos.get(board)

    def why_not_runnable(self, board: str) -> str | None:
        """None when some instance of ``board`` can run a job, now or once it is free;
        else why no job for it could ever start (quoted to clients and in job details).
        With remote hosts, a board the config offers is runnable: a host may come."""
        if self.remote is not None:
            return None if self.config.board(board) is not None else (
                f"board {board} has no instance that can run jobs: the server config does "
                "not serve it (it exists only in the targets API)")
        instances = [i for i in self.instances if i.board.name == board]
        if any(i.unavailable_reason is None for i in instances):
            return None
        head = f"board {board} has no instance that can run jobs"
        if not instances:
            configured = self.config.board(board)
            why = ("the server config gives it 0 instances" if configured is not None
                   else "the server config does not serve it (it exists only in the targets "
                        "API)")
            return f"{head}: {why}"
        return f"{head}: " + "; ".join(f"{i.name} unavailable: {i.unavailable_reason}"
                                       for i in instances)

    def fail_unrunnable(self, board: str | None = None) -> list[int]:
        """WAITING jobs of boards no instance can run become ERROR with the reason, so
        no job waits for ever (after a restart with another config, or when a board's
        only instance could not be restarted). ``board`` None: every board."""
        failed: list[int] = []
        reasons: dict[str, str | None] = {}
        for job in self.store.live_jobs():
            if job.status is not JobStatus.WAITING or board not in (None, job.board):
                continue
            if job.board not in reasons:
                reasons[job.board] = self.why_not_runnable(job.board)
            reason = reasons[job.board]
            if reason is None:
                continue
            try:
                self.store.transition(job.id, JobStatus.ERROR, detail=reason,
                                      finished=format_time(self.store.clock()))
            except TransitionError:  # claimed or canceled meanwhile
                continue
            failed.append(job.id)
        if failed:
            log.warning("jobs %s can never run and are now ERROR", ", ".join(map(str, failed)))
        return failed

    # ---- offline and back ------------------------------------------------------------

    def instances_named(self, name: str) -> list[Instance]:
        """The instances ``name`` means: one instance ("board#0") or all of a board."""
        return [i for i in self.instances if name in (i.name, i.board.name)]

    def instance_names(self, board: str) -> list[str]:
        """Every instance name of ``board``: this server's, then remote ones (host/...)."""
        names = [i.name for i in self.instances if i.board.name == board]
        return names + (self.remote.known_names(board) if self.remote is not None else [])

    def _remote_named(self, name: str) -> list[str]:
        if self.remote is None:
            return []
        if "/" in name:
            board = name.partition("/")[2].partition("#")[0]
            return [name] if name in self.remote.known_names(board) else []
        return self.remote.known_names(name)

    def lacking(self, board: str) -> dict[str, str]:
        """What a remote instance of ``board`` cannot do (see Dispatcher.lacking); {}
        without remote hosts (the board's BoardInfo says it for local instances)."""
        return self.remote.lacking(board) if self.remote is not None else {}

    def set_online(self, name: str) -> list[Instance]:
        """Put offline instances of ``name`` back in service (their failure count reset)."""
        for remote in self._remote_named(name):
            assert self.remote is not None
            self.remote.set_online(remote)
        found = self.instances_named(name)
        for instance in found:
            if instance.offline is not None:
                log.warning("board instance %s is online again (was offline: %s)",
                            instance.name, instance.offline)
            instance.offline, instance.offline_since, instance.failures = None, None, 0
            self._keep_offline(instance)
        self.store.wake()
        return found

    def set_offline(self, name: str, reason: str) -> list[Instance]:
        """Take instances of ``name`` out of service; a running job finishes first. WAITING
        jobs that no instance can run any more become ERROR (see fail_unrunnable)."""
        for remote in self._remote_named(name):
            assert self.remote is not None
            self.remote.set_offline(remote, reason)
        found = self.instances_named(name)
        since = format_time(self.store.clock())
        for instance in found:
            instance.offline, instance.offline_since = reason, since
            log.warning("board instance %s is offline: %s", instance.name, reason)
            self._keep_offline(instance)
        for board in {i.board.name for i in found}:
            self.fail_unrunnable(board)
        return found

    def _keep_offline(self, instance: Instance) -> None:
        """The instance's offline state onto disk. When it cannot be written (the disk is
        full) memory still holds it: the instance is out until this server stops."""
        if self.offline_store is None:
            return
        try:
            if instance.offline is None:
                self.offline_store.set_online(instance.name)
            else:
                self.offline_store.set_offline(instance.name, instance.offline,
                                               instance.offline_since or "")
        except OSError as exc:
            log.error("board instance %s: its offline state could not be kept on disk, a "
                      "restart will forget it: %s", instance.name, exc)

    # ---- cancel ----------------------------------------------------------------------

    def cancel(self, job_id: int, by: str, why: str | None = None) -> Job:
        """WAITING/QUEUED: CANCELED at once. RUNNING: the backend is told to stop and the
        worker records CANCELED when it has. Ended: TransitionError. ``why`` is added to
        the detail ("canceled by admin: board x deleted")."""
        detail = f"canceled by {by}" + (f": {why}" if why else "")
        job, canceled = self.store.cancel_unstarted(
            job_id, finished=format_time(self.store.clock()), detail=detail)
        if canceled:
            return job
        if job.status is JobStatus.RUNNING:
            token = self._cancels.get(job_id)
            if token is not None:
                token.cancel(CancelReason.USER, detail)
            return job
        raise TransitionError(job_id, job.status, JobStatus.CANCELED)

    # ---- live input --------------------------------------------------------------------

    def send_input(self, job_id: int, item: LiveItem) -> float:
        """Pass ``item`` to job ``job_id``'s running board; returns the board's latest
        time known here (the item is applied at or after it). :class:`NotRunning` when
        the job's run is not going on. Who may send, and how much, the API decides.
        With remote hosts attached, the dispatcher carries it to the job's host."""
        if self.remote is not None:
            return self.remote.send_input(job_id, item)
        running = self._running.get(job_id)
        process = running[0].process if running is not None else None
        if running is None or process is None or not process.send_input(item):
            raise NotRunning(job_id)
        return running[1].now

    # ---- the worker ------------------------------------------------------------------

    def _work(self, instance: Instance) -> None:
        poll = float(self.config["scheduler.poll_seconds"])
        while not self._stop.is_set():
            if instance.offline is not None:
                self.store.wait_for_change(poll)
                continue
            try:
                job = self.store.claim_next(instance.board.name, instance.name,
                                            max_running=self.max_running(instance.board))
            except StorageFull as exc:  # the disk is full: wait for room, never die
                log.warning("worker %s cannot claim a job: %s", instance.name, exc)
                self._stop.wait(STORAGE_RETRY_S)
                continue
            if job is None:
                self.store.wait_for_change(poll)
                continue
            self.run_job(instance, job)

    def max_running(self, board: BoardConfig) -> int | None:
        """How many instances of ``board`` one user's jobs may hold at once; None: all
        (option ``quota.max_running_per_user``, 0 meaning all instances)."""
        limit = int(self.config["quota.max_running_per_user"])
        return limit if 0 < limit < board.instances else None

    def _fail(self, job_id: int, detail: str, **changes: Any) -> None:
        log.info("job %d ERROR: %s", job_id, detail)
        self._finish(job_id, JobStatus.ERROR, detail=detail,
                     finished=format_time(self.store.clock()), **changes)

    def _finish(self, job_id: int, status: JobStatus, **changes: Any) -> None:
        """Record a job's end; with the disk full, retry until there is room (the worker
        waits, the job's end is not lost) or the server stops."""
        while True:
            try:
                self.store.transition(job_id, status, **changes)
                return
            except TransitionError:
                return
            except StorageFull as exc:
                log.warning("job %d: cannot record its end yet: %s", job_id, exc)
                if self._stop.wait(STORAGE_RETRY_S):
                    return

    def run_next(self, instance: Instance) -> Job | None:
        """One round of ``instance``'s worker: claim the next job for its board and run it
        to its end; the job as recorded, or None when there was none to claim."""
        job = self.store.claim_next(instance.board.name, instance.name,
                                    max_running=self.max_running(instance.board))
        return None if job is None else self.run_job(instance, job)

    def run_job(self, instance: Instance, job: Job) -> Job:
        """Run a job claimed for ``instance`` (QUEUED) to its end and return it as recorded:
        what a worker does with each job it claims. Once :meth:`stop` was called the job
        goes back to WAITING instead. Never raises for a failure of the run: that is the
        job's ERROR."""
        try:
            self._run(instance, job)
        except Exception:  # the worker must survive to serve the next job
            log.exception("worker %s failed on job %s", instance.name, job.id)
            self._fail(job.id, "internal error in the scheduler")
        finally:
            instance.job_id = None
            self._cancels.pop(job.id, None)
            self._running.pop(job.id, None)
        return self.store.get(job.id)

    def _run(self, instance: Instance, job: Job) -> None:
        """QUEUED -> RUNNING -> backend under the watchdog -> the outcome recorded."""
        if self._stop.is_set():
            self.store.transition(job.id, JobStatus.WAITING, instance=None)
            return
        cancel = CancelToken()
        self._cancels[job.id] = cancel
        log_name, other_name = self.store.new_artifact_name(), self.store.new_artifact_name()
        trace_name = self.store.new_artifact_name()
        times_name = self.store.new_artifact_name()
        uart = _LogSink(self.store.artifact_path(log_name))
        other = _LogSink(self.store.artifact_path(other_name))
        tap: Tap | None = None
        trace = _LogSink(self.store.artifact_path(trace_name))
        # written before the log's bytes: whatever a reader sees of the log has a time
        times = LogTimes(self.store.artifact_path(times_name), opener=private_opener)
        try:
            try:
                job = self.store.transition(job.id, JobStatus.RUNNING, filename_log=log_name,
                                            filename_log_times=times_name,
                                            started=format_time(self.store.clock()))
            except TransitionError:  # canceled between claim and start
                self.store.artifact_path(log_name).unlink(missing_ok=True)
                self.store.artifact_path(times_name).unlink(missing_ok=True)
                return
            instance.job_id = job.id
            self._running[job.id] = (instance, times)
            log.info("job %d started on %s (owner %s, limit %s s)", job.id, instance.name,
                     job.owner, job.duration_limit_seconds)
            # the verdict's hook: a log that settles it stops the run (fail-fast)
            tap = Tap.for_job(job.criteria, uart, lambda: cancel.cancel(
                CancelReason.VERDICT, "the job's verdict is settled"), job.trace,
                times.time_at)
            outcome, failure, retries = self._attempts(instance, job, tap or uart, uart, other,
                                                       cancel, trace, times)
        finally:
            uart.close()
            other.close()
            trace.close()
            times.close()
            for sink, name in ((other, other_name), (trace, trace_name)):
                if not sink.written:
                    self.store.artifact_path(name).unlink(missing_ok=True)
        changes: dict[str, Any] = {"filename_other": other_name if other.written else None,
                                   "retries": retries}
        changes.update(pintrace.job_fields(self.store.artifact_path(trace_name), trace_name,
                                           trace.written))
        if outcome is None:
            if tap is not None:
                changes.update(tap.verdict("ERROR", None, None, None, failure))
            self._fail(job.id, failure, **changes)
        else:
            self._record(job.id, outcome, cancel, changes, tap)

    def _attempts(self, instance: Instance, job: Job, log_in: Callable[[bytes], None],
                  uart: _LogSink, other: _LogSink, cancel: CancelToken,
                  trace: _LogSink, times: LogTimes | None = None
                  ) -> tuple[Outcome | None, str, int]:
        """Run the job, again after an infrastructure error while retries are left and the
        instance stays online; count the errors in a row and take the instance offline at
        ``offline_after``. Returns (outcome, why there is none, retries made)."""
        earlier: list[str] = []
        retries = 0
        while True:
            outcome, failure = self._call_backend(instance, self._spec(instance, job),
                                                  log_in, other, cancel, trace, times)
            if outcome is None:  # the server's own trouble (its disk): not the board's
                return outcome, failure, retries
            if (outcome.reason is not StopReason.INFRASTRUCTURE or cancel.is_set()
                    or self._stop.is_set()):
                if outcome.reason is not StopReason.INFRASTRUCTURE:
                    instance.failures = 0
                break
            instance.failures += 1
            attempt = f"attempt {retries + 1} on {instance.name} failed: {outcome.detail}"
            log.warning("job %d: %s", job.id, attempt)
            limit = instance.offline_after
            if limit and instance.failures >= limit:
                why = (f"{instance.failures} infrastructure errors in a row, the last: "
                       f"{outcome.detail}")
                self.set_offline(instance.name, why)
                outcome.detail = (f"{outcome.detail} (instance {instance.name} is now offline "
                                  f"after {instance.failures} infrastructure errors in a row)")
                break
            if retries >= instance.retries:
                break
            earlier.append(attempt)
            retries += 1
            uart.restart()
            other.restart()
            trace.restart()
            if times is not None:
                times.restart()
            if isinstance(log_in, Tap):
                log_in.restart()  # the verdict reads the last attempt's log only
        if earlier:
            outcome.infra_log = "\n".join(
                [*earlier, f"attempt {retries + 1}:", outcome.infra_log]).rstrip("\n")
            if outcome.reason is StopReason.INFRASTRUCTURE:
                outcome.detail = f"{outcome.detail} (after {retries} retr" \
                                 f"{'y' if retries == 1 else 'ies'})"
        return outcome, "", retries

    def _record(self, job_id: int, outcome: Outcome, cancel: CancelToken,
                changes: dict[str, Any], tap: Tap | None = None) -> None:
        """Map the backend's outcome to the job's final status (see StopReason)."""
        changes.update(finished=format_time(self.store.clock()),
                       stop_reason=outcome.reason.value, exit_code=outcome.exit_code,
                       time_used_seconds=outcome.time_used_s,
                       instructions=outcome.instructions)
        if outcome.detail:
            changes["detail"] = outcome.detail
        if outcome.infra_log:
            try:
                changes["filename_infra"] = self.store.write_artifact(
                    outcome.infra_log.encode("utf-8", "replace"))
            except StorageFull:
                log.warning("job %d: no room for its infrastructure log; dropped", job_id)
        stopped = outcome.reason is StopReason.CANCEL or cancel.reason in (
            CancelReason.USER, CancelReason.SHUTDOWN)
        if cancel.reason is CancelReason.VERDICT:
            stopped = False  # the verdict stopped it: the run ended as it should
            if outcome.reason is StopReason.CANCEL:
                changes["stop_reason"] = "verdict"
        if outcome.reason is StopReason.INFRASTRUCTURE:
            status = JobStatus.ERROR
            changes["detail"] = outcome.detail or "the backend reported an infrastructure error"
        elif stopped and cancel.reason is CancelReason.USER:
            status = JobStatus.CANCELED
            changes["detail"] = cancel.detail  # "canceled by ..."
        elif stopped:
            status = JobStatus.ERROR  # nobody canceled it: the server is shutting down
            changes["detail"] = (cancel.detail if cancel.reason in (CancelReason.SHUTDOWN,
                                                                    CancelReason.DEADLINE)
                                 else outcome.detail or "the backend stopped without a cancel")
        else:
            status = JobStatus.FINISHED
        log.info("job %d %s: stop reason %s, exit code %s, %.3f s used%s", job_id,
                 status.value, outcome.reason.value, outcome.exit_code, outcome.time_used_s,
                 f" ({changes['detail']})" if changes.get("detail") else "")
        if tap is not None:
            detail = changes.get("detail") or self.store.get(job_id).detail
            changes.update(tap.verdict(status.value, changes["stop_reason"],
                                       outcome.exit_code, outcome.time_used_s, detail,
                                       changes.get("trace_summary")))
        self._finish(job_id, status, **changes)

    def _spec(self, instance: Instance, job: Job) -> JobSpec:
        """Everything the job's process needs, as data (it may run on another host)."""
        assert instance.backend_cls is not None
        cls = instance.backend_cls
        # a backend slower than ours (Renode) gets its allowance on both budgets
        extra = cls.extra_wall_s(float(job.duration_limit_seconds),
                                 cls.check_options(instance.board.options))
        limits = self.limits(float(job.duration_limit_seconds))
        wall = self.wall_budget(job.duration_limit_seconds, limits) + extra
        limits = replace(limits, cpu_seconds=limits.cpu_seconds + extra)
        return JobSpec(
            job_id=job.id, backend=f"{cls.__module__}:{cls.__qualname__}", board=job.board,
            options=dict(instance.board.options),
            executable=str(self.store.artifact_path(job.filename_executable)),
            format=job.format, time_limit_s=float(job.duration_limit_seconds),
            uart_input=(job.input or "").encode(),
            presses=tuple((str(b), float(at), None if rel is None else float(rel))
                          for b, at, rel in job.presses or ()),
            trace_signals=pintrace.signals_option(job.trace),
            limits=limits, wall_budget_s=wall,
            images=tuple((str(self.store.artifact_path(i["filename"])), str(i["format"]),
                          i.get("address"), str(i.get("name", "")))
                         for i in job.images or ()),
            pins=tuple((str(p), float(at), None if level is None else int(level))
                       for p, at, level in job.pins or ()),
            realtime=bool(job.realtime))

    def wall_budget(self, time_limit_s: float, limits: Limits) -> float:
        """Wall seconds a job may take before it counts as hung: its time limit, its CPU
        budget at ``scheduler.hang_factor`` wall seconds per CPU second (a loaded machine
        runs it slower), and ``scheduler.hang_grace_seconds``. A backstop for a job that
        neither ends nor uses its CPU (a hung probe); the CPU budget, not this, stops
        firmware too slow to emulate."""
        return (float(time_limit_s)
                + limits.cpu_seconds * float(self.config["scheduler.hang_factor"])
                + float(self.config["scheduler.hang_grace_seconds"]))

    def limits(self, time_limit_s: float) -> Limits:
        """A job's bounds: its CPU budget grows with its time limit, within the caps."""
        cpu = time_limit_s * float(self.config["jobs.cpu_seconds_per_virtual_second"])
        cpu = min(max(cpu, float(self.config["jobs.min_cpu_seconds"])),
                  float(self.config["jobs.max_cpu_seconds"]))
        return Limits(cpu_seconds=cpu, uart_bytes=int(self.config["jobs.max_uart_bytes"]),
                      other_bytes=int(self.config["jobs.max_other_bytes"]),
                      infra_bytes=int(self.config["jobs.max_infra_bytes"]),
                      trace_bytes=int(self.config["jobs.max_trace_bytes"]),
                      memory_bytes=int(self.config["jobs.max_memory_bytes"]))

    def _call_backend(self, instance: Instance, spec: JobSpec, uart: Callable[[bytes], None],
                      other: _LogSink, cancel: CancelToken,
                      trace: _LogSink | None = None, times: LogTimes | None = None
                      ) -> tuple[Outcome | None, str]:
        """Run the job in its own process; (outcome, "") or (None, why there is none)."""
        deadline = (None if spec.wall_budget_s is None
                    else Deadline.after(spec.wall_budget_s, self.monotonic))
        process = JobProcess(
            spec, self._context,
            cancel_grace_s=float(self.config["scheduler.cancel_grace_seconds"]),
            deadline=deadline)
        instance.process = process
        try:
            return process.run(uart, other, cancel, trace, times), ""
        except OSError as exc:  # writing the job's files failed; the process is gone
            if exc.errno == errno.ENOSPC:
                return None, "storage full: the server's disk has no room for the job's log"
            log.exception("job %d on %s: writing its files failed", spec.job_id, instance.name)
            return None, f"the server could not write the job's files ({exc.strerror})"
        finally:
            instance.process = None
