"""``hwut worker``: a host that serves board instances to the server through the broker.

It consumes the queue of each board type it serves (``hwut.board.<board>``) with one
Celery thread per instance, prefetch 1 and late acknowledgement: a job is acknowledged
once it ended and its outcome reached the server, so a host that dies mid-job leaves it
unacknowledged and the broker hands it to another host (attempt 2). Each job runs in
its own process through :class:`hwut.runner.process.JobProcess`, exactly as on the
server, forked from this host's fork server.

A task's life reads top to bottom: take a free instance of its board -> open an
attempt with the server (it may answer "drop it": the job ended, or was published
again) -> write the executable to a private temp dir -> run the job, its bytes going
out as reports while it runs, a cancel coming back in their answers -> send the
outcome -> free the instance; the task returns and Celery acknowledges it.
"""
from __future__ import annotations

import logging
import os
import queue
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
from .settings import WorkerSettings

log = logging.getLogger(__name__)


@dataclass
class HostInstance:
    name: str
    board: BoardConfig
    backend: type[Backend]
    job: int | None = None

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "board": self.board.name, "backend": self.board.backend,
                "state": "busy" if self.job is not None else "idle", "job": self.job}


class WorkerHost:
    """The instances of one host and the run of one task on one of them."""

    def __init__(self, settings: WorkerSettings, config: Config,
                 backends: Mapping[str, type[Backend]],
                 client: httpx.Client | None = None) -> None:
        self.settings = settings
        self.config = config
        self.instances: list[HostInstance] = []
        self._free: dict[str, queue.Queue[HostInstance]] = {}
        for board in config.boards:
            cls = resolve_backend(board.backend, backends)
            check_board_options(board, cls)
            for number in range(board.instances):
                instance = HostInstance(f"{board.name}#{number}", board, cls)
                self.instances.append(instance)
                self._free.setdefault(board.name, queue.Queue()).put(instance)
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
                self.client.post("/apiv1/workers/heartbeat", json={
                    "v": 1, "host": self.settings.host,
                    "instances": [i.describe() for i in self.instances]})
            except httpx.HTTPError as exc:
                log.warning("heartbeat to %s failed: %s", self.settings.server_url, exc)
            self._stop.wait(self.settings.host_heartbeat_seconds)

    # ---- one task --------------------------------------------------------------------

    def run_task(self, payload: Any) -> str:
        """Run one job from the broker; what happened, in a word (Celery logs it)."""
        try:
            task = Task.from_json(payload, int(self.config["limits.max_executable_bytes"]))
        except ProtocolError as exc:
            log.error("a task that is not ours was dropped: %s", exc)
            return "dropped: unreadable"
        free = self._free.get(task.board)
        if free is None:
            log.error("job %d is for board %s, which this host does not serve", task.job_id,
                      task.board)
            return "dropped: board not served"
        instance = free.get()
        try:
            return self._run(instance, task)
        finally:
            instance.job = None
            free.put(instance)

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
        opened = self._open_attempt(task, where)
        if opened is None:
            return "dropped"
        attempt, token = opened
        instance.job = task.job_id
        log.info("job %d attempt %d runs on %s", task.job_id, attempt, where)
        cancel = CancelToken()
        channel = ReportChannel(self.client, task.job_id, attempt, token, cancel,
                                self.settings.report_seconds, self.settings.give_up_seconds)
        channel.start()
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
        # answer to live input says it); the index file stays in the job's temp dir
        times = LogTimes(workdir / "times", opener=lambda p, f: os.open(p, f, 0o600))
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


def serve(host: WorkerHost, loglevel: str = "INFO") -> None:
    """Consume the host's queues until stopped (SIGTERM: a warm shutdown that lets the
    running jobs end; SIGKILL: the broker hands them to another host)."""
    from .celeryapp import make_app

    settings = host.settings
    app = make_app(settings.broker_url, host.boards, settings.heartbeat_seconds,
                   name="hwut-worker")

    @app.task(name=TASK_NAME, acks_late=True, reject_on_worker_lost=True, ignore_result=True)
    def run_job(payload: Any) -> str:
        return host.run_task(payload)

    host.start()
    try:
        app.worker_main(["worker", "--pool=threads", f"--concurrency={len(host.instances)}",
                         f"--queues={','.join(queue_name(b) for b in host.boards)}",
                         f"--hostname=hwut@{settings.host}", "--without-gossip",
                         "--without-mingle", "--without-heartbeat", f"--loglevel={loglevel}",
                         "--prefetch-multiplier=1"])
    finally:
        host.stop()
