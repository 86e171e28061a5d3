"""The server's side of a job's process: start it, pump its frames into the job's
files, pass on a cancel, and make sure it is gone when ``run`` returns.

Why a process and not a thread: a job is untrusted firmware on an emulator. In its
own process it cannot take the server's memory or GIL, the kernel bounds its CPU
time, memory and files, and a crash or a hang ends with a kill instead of a thread
the server has to abandon.
"""
from __future__ import annotations

import logging
import multiprocessing
import os
import signal
import threading
import time
from collections.abc import Callable, Iterable
from multiprocessing import spawn
from multiprocessing.connection import Connection
from multiprocessing.context import BaseContext
from typing import TYPE_CHECKING, Any

from hwut.backends.base import (
    ByteSink,
    CancelReason,
    CancelToken,
    Deadline,
    LiveItem,
    Outcome,
    StopReason,
)

from . import child, wire
from .spec import JobSpec

if TYPE_CHECKING:
    from hwut.logtime import LogTimes

log = logging.getLogger(__name__)

#: The parent's main script for the fork server, ``path:...`` or ``module:...`` (see
#: :mod:`hwut.runner.forkmain`).
FORKSERVER_MAIN_ENV = "HWUT_FORKSERVER_MAIN"
_CLOCK_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def job_context(preload: Iterable[str] = ()) -> BaseContext:
    """Jobs fork from a fork server that imported the backends once (a job starts in
    milliseconds, and never forks the threaded server itself).

    The parent's main script is preloaded too (:mod:`hwut.runner.forkmain` says why
    that needs our help): multiprocessing re-imports it in each child otherwise. As
    with any multiprocessing program, a script that embeds the server must guard its
    entry with ``if __name__ == "__main__"``.
    """
    # read by the fork server when it starts (its environment is ours); what a parent
    # process left there is replaced or removed
    data = spawn.get_preparation_data("hwut-job")
    path, name = data.get("init_main_from_path"), data.get("init_main_from_name")
    if path:
        os.environ[FORKSERVER_MAIN_ENV] = f"path:{path}"
    elif name and name != "__main__" and not str(name).endswith(".__main__"):
        os.environ[FORKSERVER_MAIN_ENV] = f"module:{name}"
    else:  # a package's __main__ (python -m hwut) is never imported again
        os.environ.pop(FORKSERVER_MAIN_ENV, None)
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(
        ["__main__", "hwut.runner.forkmain", "hwut.runner.child", *preload])
    return context


def process_cpu_seconds(pid: int) -> float | None:
    """CPU time of a running process from /proc (Linux), None once it is gone."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            fields = fh.read().rsplit(b")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return (int(fields[11]) + int(fields[12])) / _CLOCK_TICKS


def describe_exit(code: int | None) -> str:
    if code is None:
        return "still running"
    if code < 0:
        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exit status {code}"


class JobProcess:
    """One job in its own process; ``run`` returns only when the process is gone.

    Both wall-clock guards are measured on one clock, ``deadline``'s (the scheduler's,
    injectable): when the deadline passes, the run's token is canceled with
    :attr:`CancelReason.DEADLINE`; a process that has not ended ``cancel_grace_s`` after
    its token was canceled, for whatever reason, is killed."""

    def __init__(self, spec: JobSpec, context: BaseContext | None = None, *,
                 cancel_grace_s: float = 1.0, deadline: Deadline | None = None,
                 poll_s: float = 0.05) -> None:
        self.spec = spec
        self.context = context or job_context()
        self.cancel_grace_s = cancel_grace_s
        self.deadline = deadline
        self.monotonic: Callable[[], float] = (deadline.clock if deadline is not None
                                               else time.monotonic)
        self.poll_s = poll_s
        self.cpu_seen = 0.0
        self.pid: int | None = None
        self._trace: ByteSink | None = None
        self._times: LogTimes | None = None
        #: The connection while the process runs (None before and after): live input
        #: is sent on it from the API's threads, the pump's cancel from its own.
        self._conn: Connection | None = None
        self._send_lock = threading.Lock()

    def run(self, uart: ByteSink, other: ByteSink | None, cancel: CancelToken,
            trace: ByteSink | None = None, times: LogTimes | None = None) -> Outcome:
        """Run to the job's end; ``cancel`` is canceled (with its reason) by whoever stops
        it, and by this object when the deadline passes; ``trace`` gets the pin trace (VCD),
        when the job keeps one; ``times`` the board's time of the UART bytes (before the
        bytes go to ``uart``)."""
        self._trace = trace
        self._times = times
        ours, theirs = self.context.Pipe(duplex=True)
        process = self.context.Process(target=child.main, args=(theirs,), daemon=True,  # type: ignore[attr-defined]
                                       name=f"hwut-job-{self.spec.job_id}")
        try:
            process.start()
            self.pid = process.pid
            theirs.close()
            ours.send_bytes(wire.encode(wire.Frame(wire.Kind.START,
                                                   {"spec": self.spec.to_json()})))
            with self._send_lock:
                self._conn = ours
            return self._pump(ours, process, uart, other, cancel)
        except (BrokenPipeError, ConnectionResetError):
            return self._died(ours, process, uart, other)
        finally:
            with self._send_lock:
                self._conn = None
            self._end(process)
            ours.close()

    def send_input(self, item: LiveItem) -> bool:
        """Pass live input to the running job's process (its backend applies it at the
        board's time it takes it); False when the process is not running (any more)."""
        frame = wire.encode(child.input_frame(item))
        with self._send_lock:
            if self._conn is None:
                return False
            try:
                self._conn.send_bytes(frame)
            except OSError:
                return False
        return True

    def _send(self, conn: Connection, frame: wire.Frame) -> None:
        with self._send_lock:
            conn.send_bytes(wire.encode(frame))

    # ---- the loop ----------------------------------------------------------------------

    def _pump(self, conn: Connection, process: Any, uart: ByteSink, other: ByteSink | None,
              cancel: CancelToken) -> Outcome:
        canceled_at: float | None = None
        while True:
            if conn.poll(self.poll_s):
                try:
                    frame = wire.decode(conn.recv_bytes(wire.MAX_FRAME_BYTES))
                except (EOFError, OSError):
                    return self._died(conn, process, uart, other)
                except wire.ProtocolError as exc:
                    return Outcome(StopReason.INFRASTRUCTURE,
                                   detail=f"the job process sent a frame we cannot read: {exc}")
                outcome = self._dispatch(frame, uart, other)
                if outcome is not None:
                    return outcome
            now = self.monotonic()
            self._sample_cpu()
            if self.deadline is not None and self.deadline.expired():
                cancel.cancel(CancelReason.DEADLINE, f"the job did not end within "
                              f"{self.spec.wall_budget_s or 0:.0f} s of wall time")
            if cancel.is_set() and canceled_at is None:
                # read anew: the clock may have moved since ``now`` (a deadline that has
                # just passed must not count as a grace already used up)
                canceled_at = self.monotonic()
                try:
                    self._send(conn, wire.Frame(wire.Kind.CANCEL, {
                        "reason": (cancel.reason or CancelReason.USER).value,
                        "detail": cancel.detail}))
                except OSError:
                    pass  # it is ending anyway; the next rounds see how
            if canceled_at is not None and now - canceled_at > self.cancel_grace_s:
                return self._ignored(cancel)
            if not process.is_alive() and not conn.poll(0):
                return self._died(conn, process, uart, other)

    def _ignored(self, cancel: CancelToken) -> Outcome:
        """The run did not stop within the grace after its token was canceled."""
        if cancel.reason is CancelReason.DEADLINE:
            return Outcome(StopReason.INFRASTRUCTURE, infra_log="the backend ignored the cancel",
                           detail=f"{cancel.detail} and did not stop when told; its process "
                                  "was killed")
        return Outcome(StopReason.CANCEL, infra_log="the backend ignored the cancel",
                       detail=f"the backend did not stop within {self.cancel_grace_s:g} s of "
                              "the cancel; its process was killed")

    def _dispatch(self, frame: wire.Frame, uart: ByteSink, other: ByteSink | None
                  ) -> Outcome | None:
        if frame.kind is wire.Kind.UART:
            if self._times is not None:  # untimed bytes too: the offsets stay the log's
                t = frame.fields.get("t")
                self._times.chunk(len(frame.payload),
                                  float(t) if isinstance(t, int | float) else None,
                                  _marks(frame.fields.get("marks")))
            uart(frame.payload)
        elif frame.kind is wire.Kind.TIME:
            t = frame.fields.get("t")
            if self._times is not None and isinstance(t, int | float):
                self._times.tick(float(t))
        elif frame.kind is wire.Kind.OTHER:
            if other is not None:
                other(frame.payload)
        elif frame.kind is wire.Kind.TRACE:
            if self._trace is not None:
                self._trace(frame.payload)
        elif frame.kind is wire.Kind.OUTCOME:
            internal = frame.fields.get("internal")
            if internal:
                log.error("job %d: the backend failed in its process:\n%s", self.spec.job_id,
                          internal)
            return outcome_from(frame)
        return None

    def _died(self, conn: Connection, process: Any, uart: ByteSink,
              other: ByteSink | None) -> Outcome:
        """The process ended without an outcome: keep what it sent, say how it ended."""
        try:
            while conn.poll(0):
                outcome = self._dispatch(wire.decode(conn.recv_bytes(wire.MAX_FRAME_BYTES)),
                                         uart, other)
                if outcome is not None:
                    return outcome
        except (EOFError, OSError, wire.ProtocolError):
            pass
        process.join(1.0)
        how = describe_exit(process.exitcode)
        limit = self.spec.limits.cpu_seconds
        if process.exitcode == -signal.SIGKILL and self.cpu_seen >= limit - 1:
            return Outcome(StopReason.CPU_LIMIT,
                           detail=f"firmware too slow to emulate: the job used its CPU limit "
                                  f"of {limit:g} s and did not stop; its process was killed")
        return Outcome(StopReason.INFRASTRUCTURE,
                       detail=f"the job's process ended without an outcome ({how})")

    def _sample_cpu(self) -> None:
        if self.pid is not None:
            seen = process_cpu_seconds(self.pid)
            if seen is not None:
                self.cpu_seen = seen

    def _end(self, process: Any) -> None:
        """Kill the process group (the job and anything it started in it), then reap."""
        if process.pid is not None:
            try:
                os.killpg(process.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
            process.join(5.0)
            if process.is_alive():
                log.error("job process %s survived SIGKILL", process.pid)
            else:
                process.close()


def _marks(value: Any) -> list[tuple[int, float]]:
    """A UART frame's line-end times, what of them is well formed."""
    if not isinstance(value, list):
        return []
    return [(int(m[0]), float(m[1])) for m in value[:4096]
            if isinstance(m, list) and len(m) == 2
            and all(isinstance(x, int | float) and not isinstance(x, bool) for x in m)]


def outcome_from(frame: wire.Frame) -> Outcome:
    fields = frame.fields
    try:
        reason = StopReason(fields.get("reason"))
    except ValueError:
        return Outcome(StopReason.INFRASTRUCTURE,
                       detail=f"the job reported an unknown stop reason {fields.get('reason')!r}")
    exit_code = fields.get("exit_code")
    return Outcome(reason, exit_code=exit_code if isinstance(exit_code, int) else None,
                   time_used_s=float(fields.get("time_used_s") or 0.0),
                   instructions=fields.get("instructions"),
                   infra_log=frame.payload.decode("utf-8", "replace"),
                   detail=str(fields.get("detail") or ""))
