"""The server's side of remote workers: publish jobs to the broker, take their attempts
and reports, notice lost hosts.

A dispatcher replaces the scheduler's own worker threads when the config has a
``[broker]`` table (see :meth:`hwut.scheduler.Scheduler.attach`); everything else of
the scheduler stays as it is: cancel goes through the job's :class:`CancelToken`, the
outcome is mapped to the job's status by the scheduler's own ``_record``.

Its loop reads top to bottom: stop requested? -> publish again the runs retried after
an infrastructure error -> publish the next WAITING jobs of each board while live
remote instances have room (QUEUED) -> fail runs whose host went silent -> wait for a
change.

Infrastructure errors follow the scheduler's rule for its own instances, per remote
instance (``host/board#n``): counted in a row, the instance offline at its host's
``offline_after`` (in the scheduler's offline store, so kept across restarts), the job
published again (a new claim, any instance) while it has retries left.

Reports and attempts come in on HTTP threads (:mod:`hwut.resources.workers`), each run
under its own lock.

Why publish only while live instances have room (``queued_per_instance`` per instance
heard from): the queue of each board stays short, so the store's round-robin between
users (and ``quota.max_running_per_user``) still decides who runs next, a cancel of a
WAITING job needs no broker, and with no worker host alive jobs wait visibly as
WAITING instead of piling up in a queue nobody reads.
"""
from __future__ import annotations

import hmac
import logging
import secrets
import threading
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

from hwut.backends.base import CancelReason, CancelToken, LiveItem, Outcome, StopReason

from .. import liveinput
from .. import trace as pintrace
from ..config import ConfigError
from ..jobs import JobStatus, TransitionError, format_time
from ..logtime import LogTimes
from ..scheduler import SHUTDOWN_DETAIL, NotRunning, Scheduler, _LogSink
from ..storage import private_opener
from ..verdict import Tap
from .celeryapp import make_app
from .hosts import HostRegistry
from .protocol import (
    MAX_INPUT_PER_ANSWER,
    TASK_NAME,
    ProtocolError,
    Report,
    Task,
    TaskImage,
    b64,
    input_to_json,
    queue_name,
)
from .settings import BrokerSettings, longest_hold_s

log = logging.getLogger(__name__)

#: How long the loop waits after the broker refused a publish before it tries again.
PUBLISH_RETRY_S = 1.0


class Gone(Exception):
    """The attempt or report is for a job this host may not (or no longer) run: the host
    drops the task (HTTP 410)."""


class Fenced(Exception):
    """A report of an attempt that is not the job's current one, or out of order (409)."""


class InstanceOffline(Exception):
    """The instance that took the task up is offline: the host puts the task back in the
    queue for another instance (HTTP 423)."""


@dataclass
class RemoteRun:
    """A job published to the broker, from QUEUED until its outcome is recorded."""

    job_id: int
    board: str
    claim: str
    cancel: CancelToken = field(default_factory=CancelToken)
    lock: threading.Lock = field(default_factory=threading.Lock)
    attempt: int = 0
    token: str = ""
    #: The next report's sequence number in the current attempt.
    seq: int = 0
    host: str = ""
    last_heard: float = 0.0
    uart: _LogSink | None = None
    other: _LogSink | None = None
    trace: _LogSink | None = None
    other_name: str = ""
    trace_name: str = ""
    tap: Tap | None = None
    #: The log's time index, from the records the host's reports carry.
    times: LogTimes | None = None
    uart_limit: int = 0
    #: One line per attempt that was lost (kept in the job's infrastructure log).
    earlier: list[str] = field(default_factory=list)
    done: bool = False
    #: The current attempt's host takes live input (it said so when it opened it).
    takes_input: bool = False
    #: Live input of the current attempt its host has not acknowledged: (number, item).
    inputs: list[tuple[int, LiveItem]] = field(default_factory=list)
    #: The number the next live input item of the attempt gets.
    input_next: int = 1
    #: The board's time its host last reported (seconds; 0 before it said any).
    board_time: float = 0.0
    #: Attempts that ended in an infrastructure error and were published again (the
    #: job's ``retries``); the other ended attempts lost their host.
    retries: int = 0
    #: Published again after an infrastructure error, no host has taken it up yet.
    requeued: bool = False


class RemoteDispatcher:
    def __init__(self, scheduler: Scheduler, settings: BrokerSettings,
                 app_factory: Callable[..., Any] = make_app,
                 token_factory: Callable[[], str] = lambda: secrets.token_urlsafe(24)) -> None:
        self.scheduler = scheduler
        self.store = scheduler.store
        self.settings = settings
        self.monotonic = scheduler.monotonic
        #: Infrastructure errors in a row per remote instance (host/instance), as the
        #: scheduler counts them for its own (in memory: a restart starts them at 0).
        self._failures: dict[str, int] = {}
        offline = scheduler.offline_store
        self.hosts = HostRegistry(settings.host_stale_seconds, self.monotonic,
                                  offline.get if offline is not None else lambda name: None,
                                  lambda name: self._failures.get(name, 0))
        self._app_factory = app_factory
        self._token = token_factory
        self._app: Any = None
        self._runs: dict[int, RemoteRun] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.boards = [b.name for b in scheduler.config.boards]
        self.check_consumer_timeout()

    def check_consumer_timeout(self) -> float:
        """ConfigError when the longest job this server accepts could hold its message
        past the broker's consumer timeout (the broker would hand it to another host
        while it runs, and each attempt would meet the same end); else that hold, s."""
        longest = float(self.scheduler.config["limits.max_duration_seconds"])
        sched = self.scheduler
        hold = longest_hold_s(sched.wall_budget(longest, sched.limits(longest)))
        timeout = self.settings.consumer_timeout_seconds
        if hold > timeout:
            raise ConfigError(
                f"[broker] consumer_timeout_seconds is {timeout:g} s (RabbitMQ's "
                f"consumer_timeout), but a job of limits.max_duration_seconds = {longest:g} "
                f"may hold its message for up to {hold:.0f} s (its CPU budget at "
                "scheduler.hang_factor, scheduler.hang_grace_seconds, the exchanges with the "
                "server): raise consumer_timeout in the broker's rabbitmq.conf (milliseconds: "
                f"consumer_timeout = {int(hold * 1000) + 60000}) and consumer_timeout_seconds "
                "here, or lower limits.max_duration_seconds")
        return hold

    # ---- lifecycle -------------------------------------------------------------------

    def start(self) -> None:
        self._app = self._app_factory(self.settings.url, self.boards)
        self._thread = threading.Thread(target=self._loop, name="hwut-dispatcher", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        """Stop publishing. Running remote jobs become ERROR (the server that would record
        their end stops); published but not started ones go back to WAITING (their
        messages are refused when a host takes them up: their claim is forgotten)."""
        self._stop.set()
        self.store.wake()
        if self._thread is not None:
            self._thread.join(timeout)
        with self._lock:
            runs = list(self._runs.values())
            self._runs.clear()
        for run in runs:
            with run.lock:
                run.done = True
                self._close(run)
            try:
                job = self.store.get(run.job_id)
                if job.status is JobStatus.QUEUED:
                    self.store.transition(run.job_id, JobStatus.WAITING, instance=None)
                elif job.status is JobStatus.RUNNING:
                    self.scheduler._fail(run.job_id, SHUTDOWN_DETAIL)
            except TransitionError:
                pass
            self.scheduler._cancels.pop(run.job_id, None)
        if self._app is not None:
            self._app.close()

    # ---- the loop ----------------------------------------------------------------------

    def _loop(self) -> None:
        poll = float(self.scheduler.config["scheduler.poll_seconds"])
        while not self._stop.is_set():
            try:
                published = self._publish_again()
                published = self._publish_some() or published
                self._watch()
            except Exception:  # the loop must survive to serve the next job
                log.exception("dispatcher round failed")
                published = True
                self._stop.wait(PUBLISH_RETRY_S)
            if not published:
                self.store.wait_for_change(poll)

    def _in_flight(self, board: str) -> int:
        with self._lock:
            return sum(1 for r in self._runs.values() if r.board == board)

    def _publish_some(self) -> bool:
        """Publish WAITING jobs while live instances have room; True when any went out."""
        any_sent = False
        for board in self.boards:
            capacity = self.hosts.live_capacity(board)
            room = capacity * self.settings.queued_per_instance - self._in_flight(board)
            limit = int(self.scheduler.config["quota.max_running_per_user"])
            max_running = limit if 0 < limit < capacity else None
            for _ in range(max(0, room)):
                if self._stop.is_set():
                    return any_sent
                job = self.store.claim_next(board, "broker", max_running=max_running)
                if job is None:
                    break
                if not self._publish(job.id, board):
                    self._stop.wait(PUBLISH_RETRY_S)
                    return any_sent
                any_sent = True
        return any_sent

    def _publish(self, job_id: int, board: str) -> bool:
        """Send one claimed (QUEUED) job to its board's queue; on failure it goes back to
        WAITING and False is returned."""
        run = RemoteRun(job_id, board, self._token())
        try:
            task = self._task(run)
            with self._lock:
                self._runs[job_id] = run  # before sending: a host may answer at once
            self._send(task)
            return True
        except Exception as exc:  # the broker is down or refused: the job waits again
            log.warning("job %d could not be published (it waits again): %s", job_id, exc)
            with self._lock:
                self._runs.pop(job_id, None)
            try:
                self.store.transition(job_id, JobStatus.WAITING, instance=None)
            except TransitionError:  # canceled meanwhile
                pass
            return False

    def _send(self, task: Task) -> None:
        self._app.send_task(TASK_NAME, args=[task.to_json()], queue=queue_name(task.board),
                            routing_key=queue_name(task.board), ignore_result=True)
        log.info("job %d published to %s", task.job_id, queue_name(task.board))

    def _publish_again(self) -> bool:
        """Publish the runs retried after an infrastructure error (each with a new claim:
        the failed attempt's message is acknowledged by its host); True when any went."""
        with self._lock:
            runs = [r for r in self._runs.values() if r.requeued and not r.claim]
        sent = False
        for run in runs:
            with run.lock:
                if run.done or run.claim:
                    continue
                try:
                    claim = self._token()
                    self._send(self._task(run, claim))
                except Exception as exc:  # the broker is down: the next round tries again
                    log.warning("job %d could not be published again: %s", run.job_id, exc)
                    return sent
                run.claim = claim
                run.last_heard = self.monotonic()
                sent = True
        return sent

    def _task(self, run: RemoteRun, claim: str | None = None) -> Task:
        """The job's task as published (its files read from the store)."""
        job = self.store.get(run.job_id)
        board = run.board
        sched = self.scheduler
        limits = sched.limits(float(job.duration_limit_seconds))
        spec = {"job_id": job.id, "board": job.board, "format": job.format,
                "time_limit_s": float(job.duration_limit_seconds),
                "uart_input": b64((job.input or "").encode()),
                "presses": [[str(b), float(at), None if rel is None else float(rel)]
                            for b, at, rel in job.presses or ()],
                "trace_signals": (None if pintrace.signals_option(job.trace) is None
                                  else list(pintrace.signals_option(job.trace) or ())),
                "limits": asdict(limits),
                "wall_budget_s": sched.wall_budget(job.duration_limit_seconds, limits),
                "pins": [[str(p), float(at), None if level is None else int(level)]
                         for p, at, level in job.pins or ()],
                "realtime": bool(job.realtime)}
        run.uart_limit = limits.uart_bytes
        executable = self.store.artifact_path(job.filename_executable).read_bytes()
        images = tuple(
            TaskImage(str(i.get("name", "")), str(i["format"]), i.get("address"),
                      self.store.artifact_path(i["filename"]).read_bytes())
            for i in job.images or ())
        return Task(job.id, board, claim or run.claim, spec, executable, images,
                    self.settings.consumer_timeout_seconds)

    def _watch(self) -> None:
        """Runs whose host went silent: ERROR "worker lost" once no attempt is left or the
        lost job was not taken up again in time; a canceled one ends CANCELED."""
        now = self.monotonic()
        lost_after = self.settings.lost_after_seconds
        with self._lock:
            runs = [r for r in self._runs.values() if r.attempt > 0]
        for run in runs:
            with run.lock:
                if run.requeued and self.hosts.live_capacity(run.board):
                    run.last_heard = now  # it waits in the queue while a host can take it
                silent = now - run.last_heard
                if run.done or silent <= lost_after:
                    continue
                if run.cancel.reason is CancelReason.USER:
                    self._end(run, Outcome(StopReason.CANCEL, detail=run.cancel.detail))
                    continue
                if run.requeued:
                    self._fail_run(run, f"no worker host took the job up again for "
                                        f"{silent:.0f} s after attempt {run.attempt} failed "
                                        f"on {run.host}")
                    continue
                if (run.attempt - run.retries < self.settings.max_attempts
                        and silent <= 2 * lost_after):
                    continue  # the broker may still hand it to another host
                self._fail_run(run, f"worker lost: no report from {run.host} for "
                                    f"{silent:.0f} s (attempt {run.attempt} of at most "
                                    f"{self.settings.max_attempts})")

    # ---- attempts and reports (HTTP threads) --------------------------------------------

    def open_attempt(self, job_id: int, claim: str, host: str,
                     takes_input: bool = False) -> tuple[int, str]:
        """A host took the job's task up: the attempt's number and secret, or
        :class:`Gone` (the task is not one this server published, or the job ended, or it
        had its attempts). ``takes_input``: the host passes live input on to the job.

        Live input waiting for an earlier attempt is dropped: the new attempt runs the
        job from its start, so what was meant for the old run would land elsewhere."""
        with self._lock:
            run = self._runs.get(job_id)
        if run is None or not run.claim or not hmac.compare_digest(run.claim.encode(),
                                                                   claim.encode()):
            raise Gone(f"job {job_id} is not waiting for a host (not published by this "
                       "server, or published again since)")
        with run.lock:
            if run.done:
                raise Gone(f"job {job_id} has ended")
            job = self.store.get(job_id)
            if job.status.ended:
                self._forget(run)
                raise Gone(f"job {job_id} is {job.status.value}")
            record = self.hosts.offline_record(host)
            if record is not None:
                raise InstanceOffline(f"instance {host} is offline: {record.reason}")
            lost = run.attempt - run.retries  # attempts that ended without an outcome
            if not run.requeued and lost >= self.settings.max_attempts:
                self._fail_run(run, f"worker lost: {lost} attempt(s) lost their host, "
                                    f"the last on {run.host}")
                raise Gone(f"job {job_id} had its {run.attempt} attempt(s)")
            if run.attempt and not run.requeued:
                run.earlier.append(f"attempt {run.attempt} on {run.host}: the host was lost "
                                   f"(the broker handed the job to {host})")
                log.warning("job %d: attempt %d on %s lost; attempt %d on %s", job_id,
                            run.attempt, run.host, run.attempt + 1, host)
            run.requeued = False
            run.attempt += 1
            run.token = self._token()
            run.seq = 0
            run.host = host
            run.takes_input = takes_input
            run.inputs.clear()
            run.input_next = 1
            run.board_time = 0.0
            run.last_heard = self.monotonic()
            hosts = [*(job.hosts or []), host]
            if job.status is JobStatus.QUEUED:
                self._begin(run, job.id, hosts)
            else:
                for sink in (run.uart, run.other, run.trace):
                    if sink is not None:
                        sink.restart()  # the log is the last attempt's, as for local retries
                if run.tap is not None:
                    run.tap.restart()
                if run.times is not None:
                    run.times.restart()
                self.store.update_live(job_id, attempts=run.attempt, hosts=hosts,
                                       instance=host)
            return run.attempt, run.token

    def _begin(self, run: RemoteRun, job_id: int, hosts: list[str]) -> None:
        """QUEUED -> RUNNING with the job's files opened (the first attempt)."""
        store = self.store
        log_name, run.other_name = store.new_artifact_name(), store.new_artifact_name()
        run.trace_name = store.new_artifact_name()
        run.uart = _LogSink(store.artifact_path(log_name))
        run.other = _LogSink(store.artifact_path(run.other_name))
        run.trace = _LogSink(store.artifact_path(run.trace_name))
        times_name = store.new_artifact_name()
        run.times = LogTimes(store.artifact_path(times_name), opener=private_opener)
        try:
            job = store.transition(job_id, JobStatus.RUNNING, filename_log=log_name,
                                   filename_log_times=times_name,
                                   started=format_time(store.clock()), attempts=1,
                                   hosts=hosts, instance=run.host)
        except TransitionError:  # canceled between publish and now
            self._close(run)
            store.artifact_path(log_name).unlink(missing_ok=True)
            store.artifact_path(times_name).unlink(missing_ok=True)
            self._forget(run)
            raise Gone(f"job {job_id} was canceled") from None
        run.tap = Tap.for_job(job.criteria, run.uart, lambda: run.cancel.cancel(
            CancelReason.VERDICT, "the job's verdict is settled"), job.trace,
            run.times.time_at)
        self.scheduler._cancels[job_id] = run.cancel
        log.info("job %d started on %s (owner %s)", job_id, run.host, job.owner)

    def report(self, job_id: int, report: Report) -> dict[str, Any]:
        """Apply one report (once, in order) and answer with its acknowledgement and, when
        the job was canceled (by its owner, or by its verdict), the cancel."""
        with self._lock:
            run = self._runs.get(job_id)
        if run is None:
            raise Gone(f"job {job_id} is not running on a remote host")
        with run.lock:
            if run.done:
                raise Gone(f"job {job_id} has ended")
            if report.attempt != run.attempt or not hmac.compare_digest(
                    run.token.encode(), report.token.encode()):
                raise Fenced(f"attempt {report.attempt} of job {job_id} is not its current "
                             f"one (attempt {run.attempt})")
            if report.seq > run.seq:
                raise Fenced(f"report {report.seq} came before {run.seq}")
            run.last_heard = self.monotonic()
            if report.input_ack is not None:  # idempotent: a repeated report says the same
                run.inputs[:] = [i for i in run.inputs if i[0] > report.input_ack]
            if report.board_time_s is not None:
                run.board_time = max(run.board_time, report.board_time_s)
            if report.seq == run.seq:
                self._apply(run, report)
                run.seq += 1
            return self._answer(run, report.seq)

    def send_input(self, job_id: int, item: LiveItem) -> float:
        """Queue ``item`` for the host that runs job ``job_id`` (it fetches it with its
        next report); the board's time its host last reported. :class:`NotRunning`
        while no attempt runs; :class:`hwut.liveinput.Unsupported` for a host that takes
        no input; :class:`hwut.liveinput.Backlog` past
        :data:`hwut.liveinput.MAX_PENDING_REMOTE` items not yet fetched."""
        with self._lock:
            run = self._runs.get(job_id)
        if run is None:
            raise NotRunning(job_id)
        with run.lock:
            if run.done or run.attempt == 0 or run.requeued:
                raise NotRunning(job_id)  # no host runs it (yet, or again after a retry)
            if not run.takes_input:
                raise liveinput.Unsupported(
                    f"job {job_id} runs on worker host {run.host}, whose version of hwut "
                    "worker takes no input while a job runs; give it at submit ('input', "
                    "'press')")
            if len(run.inputs) >= liveinput.MAX_PENDING_REMOTE:
                raise liveinput.Backlog(f"{len(run.inputs)} inputs of job {job_id} wait "
                                        f"for worker host {run.host} to fetch them")
            run.inputs.append((run.input_next, item))
            run.input_next += 1
            return run.board_time

    def _apply(self, run: RemoteRun, report: Report) -> None:
        uart = report.chunks.get("uart", b"")
        if run.times is not None:  # before the bytes: whatever a reader sees has a time
            run.times.replay(report.times, len(uart))
        if uart and run.uart is not None:
            room = max(0, run.uart_limit - run.uart.written)
            if room:
                (run.tap or run.uart)(uart[:room])
        for name, sink in (("other", run.other), ("trace", run.trace)):
            data = report.chunks.get(name, b"")
            if data and sink is not None:
                sink(data)
        if report.outcome is not None:
            outcome = outcome_of(report.outcome, run.cancel)
            if report.outcome.get("unsupported") is True:  # not the board's fault
                self._end(run, outcome)
            elif not self._retried(run, outcome):
                self._end(run, outcome)

    def _retried(self, run: RemoteRun, outcome: Outcome) -> bool:
        """The scheduler's rule for infrastructure errors, for a remote instance: count
        them in a row, take the instance offline at its ``offline_after`` (kept across
        restarts), and while the job has retries left (the instance's ``retries``) and
        some instance of the board takes jobs, publish it again for any instance (True).
        Else the outcome's detail says what happened and False (the job ends)."""
        name = run.host
        if outcome.reason is not StopReason.INFRASTRUCTURE or run.cancel.is_set():
            if outcome.reason is not StopReason.INFRASTRUCTURE:
                self._failures.pop(name, None)
            return False
        failures = self._failures[name] = self._failures.get(name, 0) + 1
        instance = self.hosts.find(name)
        retries, offline_after = ((instance.retries, instance.offline_after)
                                  if instance is not None else (0, 0))
        attempt = f"attempt {run.attempt} on {name} failed: {outcome.detail}"
        log.warning("job %d: %s", run.job_id, attempt)
        detail = outcome.detail
        if offline_after and failures >= offline_after:
            self.set_offline(name, f"{failures} infrastructure errors in a row, the last: "
                                   f"{outcome.detail}")
            detail = (f"{detail} (instance {name} is now offline after {failures} "
                      "infrastructure errors in a row)")
        if run.retries < retries and self.hosts.live_capacity(run.board):
            run.earlier.append(attempt)
            run.retries += 1
            run.requeued = True
            run.claim = ""  # the loop publishes it with a new one
            run.token = ""  # nothing more from the failed attempt
            run.last_heard = self.monotonic()
            self.store.update_live(run.job_id, retries=run.retries)
            self.store.wake()
            return True
        outcome.detail = detail
        if run.retries:
            outcome.detail += f" (after {run.retries} retr{'y' if run.retries == 1 else 'ies'})"
        return False

    @staticmethod
    def _answer(run: RemoteRun, ack: int) -> dict[str, Any]:
        cancel = None
        if run.cancel.is_set():
            cancel = {"reason": (run.cancel.reason or CancelReason.USER).value,
                      "detail": run.cancel.detail}
        answer: dict[str, Any] = {"v": 1, "ack": ack, "cancel": cancel}
        if run.inputs:
            answer["input"] = [input_to_json(n, item)
                               for n, item in run.inputs[:MAX_INPUT_PER_ANSWER]]
        return answer

    # ---- the end of a run --------------------------------------------------------------

    def _end(self, run: RemoteRun, outcome: Outcome) -> None:
        """Record the outcome as the scheduler records a local one (run.lock held)."""
        self._close(run)
        changes: dict[str, Any] = {"retries": run.retries}
        changes["filename_other"] = (run.other_name if run.other and run.other.written
                                     else None)
        for sink, name in ((run.other, run.other_name), (run.trace, run.trace_name)):
            if sink is None or not sink.written:
                self.store.artifact_path(name).unlink(missing_ok=True)
        written = run.trace.written if run.trace is not None else 0
        changes.update(pintrace.job_fields(self.store.artifact_path(run.trace_name),
                                           run.trace_name, written))
        if run.earlier:
            outcome.infra_log = "\n".join([*run.earlier, f"attempt {run.attempt} on "
                                           f"{run.host}:", outcome.infra_log]).rstrip("\n")
        self.scheduler._record(run.job_id, outcome, run.cancel, changes, run.tap)
        self._forget(run)

    def _fail_run(self, run: RemoteRun, detail: str) -> None:
        """The job ends ERROR with ``detail`` (run.lock held)."""
        self._close(run)
        changes: dict[str, Any] = {}
        if run.tap is not None:
            changes.update(run.tap.verdict("ERROR", None, None, None, detail))
        if run.attempt:
            for name in (run.other_name, run.trace_name):
                self.store.artifact_path(name).unlink(missing_ok=True)
        self.scheduler._fail(run.job_id, detail, **changes)
        self._forget(run)

    def _close(self, run: RemoteRun) -> None:
        for sink in (run.uart, run.other, run.trace):
            if sink is not None:
                sink.close()
        if run.times is not None:
            run.times.close()

    def _forget(self, run: RemoteRun) -> None:
        run.done = True
        with self._lock:
            if self._runs.get(run.job_id) is run:
                del self._runs[run.job_id]
        self.scheduler._cancels.pop(run.job_id, None)

    def instances(self, board: str | None = None) -> list[Any]:
        return list(self.hosts.instances(board))

    def heartbeat(self, host: Any, instances: Any) -> dict[str, str]:
        """A host's heartbeat as it came (checked by the registry); the host's instances
        that are offline, with the reason (the answer tells the host: they take no job)."""
        self.hosts.heartbeat(host, instances)
        self.store.wake()  # capacity may have grown: publish what waits
        return self.hosts.offline_of(host)

    # ---- offline remote instances (the scheduler's rule, kept in the same file) ----------

    def known_names(self, board: str) -> list[str]:
        """``host/instance`` names of ``board``: heard from, or kept offline."""
        names = {i.full_name for i in self.hosts.instances(board)}
        store = self.scheduler.offline_store
        for name in store.records() if store is not None else ():
            if "/" in name and name.partition("/")[2].partition("#")[0] == board:
                names.add(name)
        return sorted(names)

    def set_offline(self, name: str, reason: str) -> None:
        """Take the remote instance ``host/instance`` out of service: the host learns it
        from its next heartbeat's answer, an attempt from it is refused meanwhile."""
        log.warning("board instance %s is offline: %s", name, reason)
        self._keep(name, reason)

    def set_online(self, name: str) -> None:
        log.warning("board instance %s is online again", name)
        self._failures.pop(name, None)
        self._keep(name, None)
        self.store.wake()

    def _keep(self, name: str, reason: str | None) -> None:
        store = self.scheduler.offline_store
        if store is None:
            return
        try:
            if reason is None:
                store.set_online(name)
            else:
                store.set_offline(name, reason, format_time(self.store.clock()))
        except OSError as exc:
            log.error("board instance %s: its offline state could not be kept on disk: %s",
                      name, exc)

    def lacking(self, board: str) -> dict[str, str]:
        """What some known remote instance of ``board`` cannot do (``console_input``,
        ``presses``, ``pins``), each with the first such instance's words: a job sent to
        the board's queue may land on any of them, so the submit refuses it."""
        found: dict[str, str] = {}
        for instance in self.hosts.instances(board):
            if instance.capabilities is None or instance.offline is not None:
                continue
            for what, can in instance.capabilities.items():
                if not can:
                    found.setdefault(what, f"its instance {instance.full_name} (backend "
                                           f"{instance.backend})")
        return found


def outcome_of(data: dict[str, Any], cancel: CancelToken) -> Outcome:
    """A worker's outcome as the scheduler's :class:`Outcome`; a cancel the worker's own
    guard made (its deadline) is carried over to the server's token."""
    try:
        reason = StopReason(data.get("reason"))
    except ValueError:
        return Outcome(StopReason.INFRASTRUCTURE,
                       detail=f"the worker reported an unknown stop reason "
                              f"{str(data.get('reason'))[:40]!r}")
    exit_code = data.get("exit_code")
    instructions = data.get("instructions")
    cancel_reason = data.get("cancel_reason")
    if cancel_reason and not cancel.is_set():
        try:
            cancel.cancel(CancelReason(cancel_reason), str(data.get("cancel_detail") or "")[:500])
        except ValueError:
            pass
    try:
        used = float(data.get("time_used_s") or 0.0)
    except (TypeError, ValueError):
        raise ProtocolError("report: outcome time_used_s is not a number") from None
    return Outcome(reason,
                   exit_code=exit_code if isinstance(exit_code, int) else None,
                   time_used_s=used,
                   instructions=instructions if isinstance(instructions, int) else None,
                   infra_log=str(data.get("infra_log") or "")[:1024 * 1024],
                   detail=str(data.get("detail") or "")[:2000])
