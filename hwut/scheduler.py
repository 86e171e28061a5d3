"""Board instances and their workers: FIFO per board, one job at a time per instance.

Each configured board instance has a backend object and a worker thread. The
worker loop reads top to bottom: stop requested? -> claim the oldest WAITING job
for my board (QUEUED) -> RUNNING -> run the backend under a watchdog -> record
the outcome -> the instance is free again. A backend that raises turns the job
into ERROR with the reason; one that does not return within its time limit plus
grace is declared hung, its job becomes ERROR and the instance gets a fresh
backend object (the stuck thread is abandoned; its log writes are dropped).
"""
from __future__ import annotations

import importlib
import logging
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from hwut.backends.base import Availability, Backend, Outcome, RunRequest, StopReason

from .config import BoardConfig, Config
from .jobs import Job, JobStatus, TransitionError, format_time
from .store import JobStore

log = logging.getLogger(__name__)


def resolve_backend(name: str, known: Mapping[str, type[Backend]]) -> type[Backend]:
    """A backend by entry-point name, or by ``module:Class`` for locally defined ones."""
    if name in known:
        return known[name]
    if ":" in name:
        module_name, _, attr = name.partition(":")
        cls = getattr(importlib.import_module(module_name), attr)
        if isinstance(cls, type) and issubclass(cls, Backend):
            return cls
        raise LookupError(f"{name} is not a Backend subclass")
    raise LookupError(f"backend {name!r} is not installed; installed: "
                      f"{', '.join(sorted(known)) or 'none'}")


class _LogSink:
    """Appends bytes to a file as they arrive; silently drops them once closed."""

    def __init__(self, path: Any) -> None:
        self._fh = open(path, "ab")  # noqa: SIM115 - open for the whole run, closed by close()
        self._lock = threading.Lock()
        self.written = 0

    def __call__(self, data: bytes) -> None:
        with self._lock:
            if self._fh.closed:
                return
            self._fh.write(data)
            self._fh.flush()
            self.written += len(data)

    def close(self) -> None:
        with self._lock:
            self._fh.close()


@dataclass
class Instance:
    """One board instance as the targets API shows it."""

    name: str
    board: BoardConfig
    backend_cls: type[Backend] | None
    backend: Backend | None = None
    availability: Availability = field(default_factory=lambda: Availability(True))
    job_id: int | None = None
    replaced: int = 0

    @property
    def state(self) -> str:
        if self.backend is None or not self.availability.ok:
            return "unavailable"
        return "busy" if self.job_id is not None else "idle"

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "backend": self.board.backend, "state": self.state,
                "job": self.job_id,
                "availability": {"ok": self.availability.ok,
                                 "detail": self.availability.detail}}


class Scheduler:
    def __init__(self, store: JobStore, config: Config,
                 backends: Mapping[str, type[Backend]],
                 monotonic: Callable[[], float] = time.monotonic) -> None:
        self.store = store
        self.config = config
        self.monotonic = monotonic
        self._stop = threading.Event()
        self._cancels: dict[int, threading.Event] = {}
        self._threads: list[threading.Thread] = []
        self.instances: list[Instance] = []
        for board in config.boards:
            for number in range(board.instances):
                self.instances.append(self._make_instance(board, number, backends))

    def _make_instance(self, board: BoardConfig, number: int,
                       backends: Mapping[str, type[Backend]]) -> Instance:
        name = f"{board.name}#{number}"
        try:
            cls = resolve_backend(board.backend, backends)
        except (LookupError, ImportError, AttributeError) as exc:
            log.error("board instance %s: %s", name, exc)
            return Instance(name, board, None, availability=Availability(False, str(exc)))
        instance = Instance(name, board, cls)
        try:
            instance.availability = cls.availability(board.options)
            instance.backend = cls(board.name, board.options)
        except Exception as exc:  # a backend constructor may fail in any way
            log.exception("board instance %s: backend %s failed to start", name, board.backend)
            instance.availability = Availability(False, f"backend failed to start: {exc}")
        return instance

    # ---- lifecycle -------------------------------------------------------------------

    def start(self) -> None:
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
        for event in list(self._cancels.values()):
            event.set()
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

    def boards_with_instances(self) -> dict[str, list[Instance]]:
        result: dict[str, list[Instance]] = {}
        for instance in self.instances:
            result.setdefault(instance.board.name, []).append(instance)
        return result

    # ---- cancel ----------------------------------------------------------------------

    def cancel(self, job_id: int, by: str) -> Job:
        """WAITING/QUEUED: CANCELED at once. RUNNING: the backend is told to stop and the
        worker records CANCELED when it has. Ended: TransitionError."""
        with self.store.lock:
            job = self.store.get(job_id)
            if job.status in (JobStatus.WAITING, JobStatus.QUEUED):
                return self.store.transition(job_id, JobStatus.CANCELED,
                                             finished=format_time(self.store.clock()),
                                             detail=f"canceled by {by}")
            if job.status is JobStatus.RUNNING:
                job = self.store.update_live(job_id, cancel_requested=True,
                                             detail=f"canceled by {by}")
                event = self._cancels.get(job_id)
                if event is not None:
                    event.set()
                return job
            raise TransitionError(job_id, job.status, JobStatus.CANCELED)

    # ---- the worker ------------------------------------------------------------------

    def _work(self, instance: Instance) -> None:
        poll = float(self.config["scheduler.poll_seconds"])
        while not self._stop.is_set():
            if instance.backend is None:
                return  # the backend could not be replaced after a hang
            job = self.store.claim_next(instance.board.name, instance.name)
            if job is None:
                self.store.wait_for_change(poll)
                continue
            try:
                self._run(instance, job)
            except Exception:  # the worker must survive to serve the next job
                log.exception("worker %s failed on job %s", instance.name, job.id)
                self._fail(job.id, "internal error in the scheduler")
            finally:
                instance.job_id = None
                self._cancels.pop(job.id, None)

    def _fail(self, job_id: int, detail: str, **changes: Any) -> None:
        log.info("job %d ERROR: %s", job_id, detail)
        try:
            self.store.transition(job_id, JobStatus.ERROR, detail=detail,
                                  finished=format_time(self.store.clock()), **changes)
        except TransitionError:
            pass

    def _run(self, instance: Instance, job: Job) -> None:
        """QUEUED -> RUNNING -> backend under the watchdog -> the outcome recorded."""
        if self._stop.is_set():
            self.store.transition(job.id, JobStatus.WAITING, instance=None)
            return
        cancel = threading.Event()
        self._cancels[job.id] = cancel
        log_name, other_name = self.store.new_artifact_name(), self.store.new_artifact_name()
        uart = _LogSink(self.store.artifact_path(log_name))
        other = _LogSink(self.store.artifact_path(other_name))
        try:
            try:
                job = self.store.transition(job.id, JobStatus.RUNNING, filename_log=log_name,
                                            started=format_time(self.store.clock()))
            except TransitionError:  # canceled between claim and start
                self.store.artifact_path(log_name).unlink(missing_ok=True)
                return
            instance.job_id = job.id
            log.info("job %d started on %s (owner %s, limit %s s)", job.id, instance.name,
                     job.owner, job.duration_limit_seconds)
            request = RunRequest(
                executable=self.store.artifact_path(job.filename_executable),
                format=job.format, board=job.board,
                time_limit_s=float(job.duration_limit_seconds), uart=uart, cancel=cancel,
                other=other, uart_input=(job.input or "").encode(),
                presses=tuple((str(b), float(at), None if rel is None else float(rel))
                              for b, at, rel in job.presses or ()))
            outcome, failure = self._call_backend(instance, request, cancel)
        finally:
            uart.close()
            other.close()
            if not other.written:
                self.store.artifact_path(other_name).unlink(missing_ok=True)
        changes: dict[str, Any] = {"filename_other": other_name if other.written else None}
        if outcome is None:
            self._fail(job.id, failure, **changes)
        else:
            self._record(job.id, outcome, cancel, changes)

    def _record(self, job_id: int, outcome: Outcome, cancel: threading.Event,
                changes: dict[str, Any]) -> None:
        """Map the backend's outcome to the job's final status (see StopReason)."""
        changes.update(finished=format_time(self.store.clock()),
                       stop_reason=outcome.reason.value, exit_code=outcome.exit_code,
                       time_used_seconds=outcome.time_used_s)
        if outcome.detail:
            changes["detail"] = outcome.detail
        if outcome.infra_log:
            infra_name = self.store.new_artifact_name()
            self.store.artifact_path(infra_name).write_text(outcome.infra_log)
            changes["filename_infra"] = infra_name
        stopped = outcome.reason is StopReason.CANCEL or cancel.is_set()
        if outcome.reason is StopReason.INFRASTRUCTURE:
            status = JobStatus.ERROR
            changes["detail"] = outcome.detail or "the backend reported an infrastructure error"
        elif stopped and not self.store.get(job_id).cancel_requested:
            status = JobStatus.ERROR  # nobody canceled it: the server is shutting down
            changes["detail"] = "the server stopped while the job ran"
        elif stopped:
            status = JobStatus.CANCELED
            changes.pop("detail", None)  # keep "canceled by ..."
        else:
            status = JobStatus.FINISHED
        log.info("job %d %s: stop reason %s, exit code %s, %.3f s used%s", job_id,
                 status.value, outcome.reason.value, outcome.exit_code, outcome.time_used_s,
                 f" ({changes['detail']})" if changes.get("detail") else "")
        self.store.transition(job_id, status, **changes)

    def _call_backend(self, instance: Instance, request: RunRequest,
                      cancel: threading.Event) -> tuple[Outcome | None, str]:
        """Run the backend in a thread under a watchdog; (outcome, "") or (None, why not)."""
        backend = instance.backend
        assert backend is not None
        result: dict[str, Any] = {}

        def target() -> None:
            try:
                result["outcome"] = backend.run(request)
            except Exception as exc:  # any backend failure becomes the job's ERROR reason
                log.exception("backend of %s raised", instance.name)
                result["error"] = f"backend raised {type(exc).__name__}: {exc}"

        runner = threading.Thread(target=target, name=f"hwut-run-{instance.name}", daemon=True)
        runner.start()
        factor = float(self.config["scheduler.hang_factor"])
        grace = float(self.config["scheduler.hang_grace_seconds"])
        cancel_grace = float(self.config["scheduler.cancel_grace_seconds"])
        started = self.monotonic()
        canceled_at: float | None = None
        while runner.is_alive():
            runner.join(0.05)
            now = self.monotonic()
            if cancel.is_set() and canceled_at is None:
                canceled_at = now
            over_limit = now - started > request.time_limit_s * factor + grace
            over_cancel = canceled_at is not None and now - canceled_at > cancel_grace
            if runner.is_alive() and (over_limit or over_cancel):
                cancel.set()
                self._replace_backend(instance)
                return None, (f"the backend did not stop within "
                              f"{now - started:.1f} s; board instance {instance.name} replaced")
        if "error" in result:
            return None, result["error"]
        outcome = result.get("outcome")
        if not isinstance(outcome, Outcome):
            return None, f"the backend returned {type(outcome).__name__}, not an Outcome"
        return outcome, ""

    def _replace_backend(self, instance: Instance) -> None:
        assert instance.backend_cls is not None
        instance.replaced += 1
        try:
            instance.backend = instance.backend_cls(instance.board.name, instance.board.options)
        except Exception as exc:  # the new instance may fail like the first one could
            log.exception("replacing the backend of %s failed", instance.name)
            instance.backend = None
            instance.availability = Availability(False, f"backend failed to restart: {exc}")
