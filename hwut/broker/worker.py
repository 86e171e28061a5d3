"""``hwut worker``: a host that serves board instances to the server through the broker.

It consumes the queue of each board type it serves (``hwut.board.<board>``) with one
Celery thread per instance, prefetch 1 and late acknowledgement: a job is acknowledged
once it ended and its outcome reached the server, so a host that dies mid-job leaves it
unacknowledged and the broker hands it to another host (attempt 2). Each job runs in
its own process through :class:`hwut.runner.process.JobProcess`, exactly as on the
server, forked from this host's fork server.

A task's life reads top to bottom: take a free online instance of its board -> open
an attempt with the server (it may answer "drop it": the job ended, or was published
again; or "that instance is offline": the task goes back to the queue) -> check that
the instance can do what the job scripts and that the run fits the broker's consumer
timeout -> write the executable to a private temp dir -> run the job, its bytes going
out as reports while it runs, a cancel coming back in their answers -> send the
outcome -> free the instance; the task returns and Celery acknowledges it.

Instances the server took offline (its infrastructure-error rule, or an admin) are
named in the heartbeat's answer; they take no task until the server says otherwise.
A task for a board whose instances here are all offline goes back to the queue.
"""
from __future__ import annotations

import logging
import os
import shutil
import tempfile
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import httpx

from hwut.backends.base import Backend, CancelToken, Deadline, Outcome, StopReason

from ..config import BoardConfig, Config, ConfigError
from ..logtime import LogTimes
from ..runner.process import JobProcess, job_context
from ..runner.spec import JobSpec
from ..scheduler import check_board_options, resolve_backend
from .protocol import TAKES_INPUT, TASK_NAME, ProtocolError, Task, queue_name
from .reports import ReportChannel
from .settings import WorkerSettings, longest_hold_s

log = logging.getLogger(__name__)


#: How long a task waits on a host whose instances of its board are all offline before
#: it goes back to the queue (another host's instance takes it; a short wait keeps a host
#: that is the queue's only consumer from spinning).
REQUEUE_WAIT_S = 1.0


class Requeue(Exception):
    """The task goes back to the queue untouched (this host cannot run it now)."""


@dataclass
class HostInstance:
    name: str
    board: BoardConfig
    backend: type[Backend]
    job: int | None = None
    #: Why the server took this instance offline (it takes no job until an admin puts it
    #: back); learnt from the heartbeat's answer, kept by the server across restarts.
    offline: str | None = None

    @property
    def retries(self) -> int:
        """Runs of a job again after an infrastructure error here (as on a single server:
        the board config, else the backend's default); the server applies it."""
        return (self.board.retries if self.board.retries is not None
                else self.backend.default_retries)

    @property
    def offline_after(self) -> int:
        return (self.board.offline_after if self.board.offline_after is not None
                else self.backend.default_offline_after)

    def capabilities(self) -> dict[str, Any]:
        """What the submit route checks (presses, pins, console input) for this instance:
        its backend's BoardInfo, since the server's own config may name another backend."""
        info = self.backend.board_info(self.board.name, self.board.options)
        return {"console_input": bool(info and info.console_input),
                "presses": bool(info and info.presses),
                "pins": bool(info and info.drive_pins)}

    def describe(self) -> dict[str, Any]:
        state = "busy" if self.job is not None else "offline" if self.offline else "idle"
        return {"name": self.name, "board": self.board.name, "backend": self.board.backend,
                "state": state, "job": self.job, "retries": self.retries,
                "offline_after": self.offline_after, "capabilities": self.capabilities()}


class WorkerHost:
    """The instances of one host and the run of one task on one of them."""

    def __init__(self, settings: WorkerSettings, config: Config,
                 backends: Mapping[str, type[Backend]],
                 client: httpx.Client | None = None) -> None:
        self.settings = settings
        self.config = config
        self.instances: list[HostInstance] = []
        #: Each board's instances that are free (offline ones included: take() skips them).
        self._free: dict[str, list[HostInstance]] = {}
        self._changed = threading.Condition()
        for board in config.boards:
            cls = resolve_backend(board.backend, backends)
            check_board_options(board, cls)
            for number in range(board.instances):
                instance = HostInstance(f"{board.name}#{number}", board, cls)
                self.instances.append(instance)
                self._free.setdefault(board.name, []).append(instance)
        if not self.instances:
            raise ConfigError(f"{config.source}: the worker serves no board instance")
        self.client = client or httpx.Client(
            base_url=settings.server_url, timeout=httpx.Timeout(5.0, connect=3.0),
            headers={"Authorization": f"Bearer {settings.token}"})
        self._context: Any = None
        self._stop = threading.Event()
        self._heartbeat: threading.Thread | None = None

    @property
    def boards(self) -> list[str]:
        return sorted(self._free)

    # ---- lifecycle -------------------------------------------------------------------

    def start(self) -> None:
        self._context = job_context(sorted({module for i in self.instances
                                            for module in (i.backend.__module__,
                                                           *i.backend.preload)}))
        self._heartbeat = threading.Thread(target=self._beat, name="hwut-host-heartbeat",
                                           daemon=True)
        self._heartbeat.start()

    def stop(self) -> None:
        self._stop.set()
        if self._heartbeat is not None:
            self._heartbeat.join(5.0)
        self.client.close()

    def _beat(self) -> None:
        while not self._stop.is_set():
            try:
                answer = self.client.post("/apiv1/workers/heartbeat", json={
                    "v": 1, "host": self.settings.host,
                    "instances": [i.describe() for i in self.instances]})
                if answer.status_code == 200:
                    self.apply_offline(answer.json().get("offline"))
            except (httpx.HTTPError, ValueError) as exc:
                log.warning("heartbeat to %s failed: %s", self.settings.server_url, exc)
            self._stop.wait(self.settings.host_heartbeat_seconds)

    def apply_offline(self, offline: Any) -> None:
        """The server's word on which of this host's instances are offline (``{instance:
        reason}``; absent from an older server: nothing changes)."""
        if not isinstance(offline, dict):
            return
        with self._changed:
            for instance in self.instances:
                reason = offline.get(instance.name)
                reason = str(reason)[:300] if reason is not None else None
                if reason != instance.offline:
                    log.warning("instance %s is %s", instance.name,
                                f"offline: {reason}" if reason else "online again")
                instance.offline = reason
            self._changed.notify_all()

    # ---- the free instances ------------------------------------------------------------

    def _take(self, board: str) -> HostInstance | None:
        """A free online instance of ``board`` (waiting while one is busy), or None when
        every instance of it on this host is offline."""
        free = self._free[board]
        with self._changed:
            while True:
                for instance in free:
                    if instance.offline is None:
                        free.remove(instance)
                        return instance
                if all(i.offline is not None for i in self.instances if i.board.name == board):
                    return None
                self._changed.wait()

    def _give_back(self, instance: HostInstance) -> None:
        with self._changed:
            instance.job = None
            self._free[instance.board.name].append(instance)
            self._changed.notify_all()

    # ---- one task --------------------------------------------------------------------

    def run_task(self, payload: Any) -> str:
        """Run one job from the broker; what happened, in a word (Celery logs it)."""
        try:
            task = Task.from_json(payload, int(self.config["limits.max_executable_bytes"]))
        except ProtocolError as exc:
            log.error("a task that is not ours was dropped: %s", exc)
            return "dropped: unreadable"
        if task.board not in self._free:
            log.error("job %d is for board %s, which this host does not serve", task.job_id,
                      task.board)
            return "dropped: board not served"
        instance = self._take(task.board)
        if instance is None:  # every instance of it here is offline: another host's turn
            self._stop.wait(REQUEUE_WAIT_S)
            raise Requeue(f"job {task.job_id}: every {task.board} instance of this host is "
                          "offline")
        try:
            return self._run(instance, task)
        finally:
            self._give_back(instance)

    def _open_attempt(self, task: Task, where: str) -> tuple[int, str] | None:
        """(attempt, secret), or None when the server says drop the task."""
        started = time.monotonic()
        while True:
            try:
                answer = self.client.post(f"/apiv1/workers/jobs/{task.job_id}/attempts",
                                          json={"v": 1, "claim": task.claim, "host": where,
                                                "takes": [TAKES_INPUT]})
                if answer.status_code == 200:
                    data = answer.json()
                    return int(data["attempt"]), str(data["token"])
                if answer.status_code == 423:  # the instance is offline: not this one's job
                    raise Requeue(f"job {task.job_id}: {answer.text[:300]}")
                if answer.status_code in (400, 401, 403, 404, 410):
                    log.warning("job %d dropped: %s %s", task.job_id, answer.status_code,
                                answer.text[:300])
                    return None
            except httpx.HTTPError as exc:
                log.warning("job %d: the server cannot be reached: %s", task.job_id, exc)
            if time.monotonic() - started > self.settings.give_up_seconds:
                raise RuntimeError(f"job {task.job_id}: the server could not be reached for "
                                   f"{self.settings.give_up_seconds:.0f} s")
            time.sleep(0.5)

    def _run(self, instance: HostInstance, task: Task) -> str:
        where = f"{self.settings.host}/{instance.name}"
        try:
            opened = self._open_attempt(task, where)
        except Requeue:
            self.apply_offline({**{i.name: i.offline for i in self.instances if i.offline},
                                instance.name: "taken offline by the server"})
            raise
        if opened is None:
            return "dropped"
        attempt, token = opened
        instance.job = task.job_id
        log.info("job %d attempt %d runs on %s", task.job_id, attempt, where)
        cancel = CancelToken()
        channel = ReportChannel(self.client, task.job_id, attempt, token, cancel,
                                self.settings.report_seconds, self.settings.give_up_seconds)
        channel.start()
        lacking = unsupported(task.run, instance) or self.too_long(task, instance)
        if lacking:  # a host that joined after the submit was checked against the others
            recorded = channel.finish(Outcome(StopReason.INFRASTRUCTURE, detail=lacking),
                                      cancel, unsupported=True)
            return "recorded" if recorded else "not recorded"
        workdir = Path(tempfile.mkdtemp(prefix=f"hwut-job-{task.job_id}-"))
        try:
            outcome = self._execute(instance, task, workdir, channel, cancel)
        finally:
            shutil.rmtree(workdir, ignore_errors=True)
        recorded = channel.finish(outcome, cancel)
        log.info("job %d attempt %d on %s: %s (%s)", task.job_id, attempt, where,
                 outcome.reason.value, "recorded" if recorded else
                 f"not recorded: {channel.refused or 'the server was not reached'}")
        return "recorded" if recorded else "not recorded"

    def too_long(self, task: Task, instance: HostInstance) -> str:
        """Why running ``task`` here would hold its message past the broker's consumer
        timeout (the server's word in the task; its backend's allowance is this host's
        to add); "" when it would not, or when the task does not say."""
        if task.consumer_timeout_s is None:
            return ""
        try:
            limit = float(task.run["time_limit_s"])
            budget = float(task.run["wall_budget_s"] or 0.0)
            cls = instance.backend
            extra = cls.extra_wall_s(limit, cls.check_options(instance.board.options))
        except (KeyError, TypeError, ValueError):
            return ""  # the run itself is checked when it is read
        hold = longest_hold_s(budget, self.settings.give_up_seconds, extra)
        if hold <= task.consumer_timeout_s:
            return ""
        return (f"not run: on {instance.name} (backend {instance.board.backend}) this job "
                f"could hold its broker message for {hold:.0f} s, longer than the broker's "
                f"consumer timeout ({task.consumer_timeout_s:g} s, [broker] "
                "consumer_timeout_seconds): the broker would hand it to another host while it "
                "runs; give it a shorter duration_limit_seconds, or raise the broker's "
                "consumer_timeout")

    def _execute(self, instance: HostInstance, task: Task, workdir: Path,
                 channel: ReportChannel, cancel: CancelToken) -> Outcome:
        cls = instance.backend
        executable = workdir / "executable"
        with open(executable, "wb", opener=lambda p, f: os.open(p, f, 0o600)) as fh:
            fh.write(task.executable)
        images = []
        for n, image in enumerate(task.images):
            path = workdir / f"image{n}"
            with open(path, "wb", opener=lambda p, f: os.open(p, f, 0o600)) as fh:
                fh.write(image.data)
            images.append([str(path), image.format, image.address, image.name])
        try:
            spec = JobSpec.from_json({**task.run, "job_id": task.job_id, "board": task.board,
                                      "backend": f"{cls.__module__}:{cls.__qualname__}",
                                      "options": dict(instance.board.options),
                                      "executable": str(executable), "images": images})
        except (TypeError, ValueError, KeyError) as exc:
            return Outcome(StopReason.INFRASTRUCTURE, detail=f"the task's run is unreadable: "
                                                             f"{str(exc)[:200]}")
        extra = cls.extra_wall_s(spec.time_limit_s, cls.check_options(instance.board.options))
        spec = replace(spec, limits=replace(spec.limits,
                                            cpu_seconds=spec.limits.cpu_seconds + extra),
                       wall_budget_s=None if spec.wall_budget_s is None
                       else spec.wall_budget_s + extra)
        deadline = None if spec.wall_budget_s is None else Deadline.after(spec.wall_budget_s)
        process = JobProcess(spec, self._context, deadline=deadline, cancel_grace_s=float(
            self.config["scheduler.cancel_grace_seconds"]))
        # the board's time, as the server's own runs keep it: the reports carry it (the
        # answer to live input says it) and the index's records, which the server keeps
        # beside the log as for its own runs
        times = LogTimes(workdir / "times", opener=lambda p, f: os.open(p, f, 0o600),
                         on_records=channel.add_times)
        channel.board_time = lambda: times.now
        channel.deliver = process.send_input
        try:
            return process.run(channel.sink("uart"), channel.sink("other"), cancel,
                               channel.sink("trace"), times)
        except OSError as exc:
            return Outcome(StopReason.INFRASTRUCTURE,
                           detail=f"the worker host could not run the job: {exc}")
        finally:
            channel.deliver = None
            times.close()


def unsupported(run: Mapping[str, Any], instance: HostInstance) -> str:
    """Why ``instance`` cannot run what the job scripts (a task's ``run``: presses, pins,
    console input), worded as the submit route words it; "" when it can. The server
    ends such a job ERROR without counting it against the instance (the outcome says
    ``unsupported``): the board is not at fault."""
    caps = instance.capabilities()
    where = f"instance {instance.name} (backend {instance.board.backend})"
    if run.get("pins") and not caps["pins"]:
        return f"not run: cannot drive pins ('pin'): {where} does not support them"
    if run.get("presses") and not caps["presses"]:
        return (f"not run: cannot run scripted button presses ('press'): {where} does not "
                "support them")
    if run.get("uart_input") and not caps["console_input"]:
        return f"not run: cannot be fed console input ('input'): {where} does not support it"
    return ""


def serve(host: WorkerHost, loglevel: str = "INFO") -> None:
    """Consume the host's queues until stopped (SIGTERM: a warm shutdown that lets the
    running jobs end; SIGKILL: the broker hands them to another host)."""
    from .celeryapp import MISSING, make_app

    try:
        from celery.exceptions import Reject
    except ImportError:
        raise ConfigError(MISSING) from None

    settings = host.settings
    app = make_app(settings.broker_url, host.boards, settings.heartbeat_seconds,
                   name="hwut-worker")

    @app.task(name=TASK_NAME, acks_late=True, reject_on_worker_lost=True, ignore_result=True)
    def run_job(payload: Any) -> str:
        try:
            return host.run_task(payload)
        except Requeue as why:  # back to the queue, for another host's instance
            log.warning("%s: back to the queue", why)
            raise Reject(str(why), requeue=True) from None

    host.start()
    try:
        app.worker_main(["worker", "--pool=threads", f"--concurrency={len(host.instances)}",
                         f"--queues={','.join(queue_name(b) for b in host.boards)}",
                         f"--hostname=hwut@{settings.host}", "--without-gossip",
                         "--without-mingle", "--without-heartbeat", f"--loglevel={loglevel}",
                         "--prefetch-multiplier=1"])
    finally:
        host.stop()
