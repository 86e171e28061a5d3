"""The job's own process: bounds itself, builds the backend, runs, reports, exits.

It is forked from a fork server that has the interpreter and the emulator imported
already, so a job starts in milliseconds; it makes itself a process-group leader so
that the server can end it, and anything it started, with one signal. Whatever the
backend does, the server gets either an OUTCOME frame or a dead process, never a
thread left behind in its own address space.
"""
from __future__ import annotations

import importlib
import math
import os
import resource
import signal
import sys
import threading
import traceback
from dataclasses import replace
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from hwut.backends.base import (
    Backend,
    BoardClock,
    CancelReason,
    CancelToken,
    Deadline,
    ImageFile,
    LiveInput,
    LiveInputClosed,
    LiveItem,
    Outcome,
    RunRequest,
    StopReason,
)

from . import wire
from .spec import JobSpec, Limits

#: How often buffered output goes to the server: streaming, without a frame per byte.
FLUSH_INTERVAL_S = 0.02
#: Output is sent in frames of at most this many bytes.
CHUNK_BYTES = 256 * 1024
#: The infrastructure log travels in the OUTCOME frame, so it is never larger than this.
MAX_INFRA_BYTES = wire.MAX_FRAME_BYTES - wire.MAX_HEADER_BYTES - 1024
#: After the server went away, how long the job may take to stop before it exits anyway.
ORPHAN_GRACE_S = 3.0
#: How often the board's time goes to the server while the board prints nothing.
TIME_INTERVAL_S = 0.1
#: A UART frame carries the board's time of at most this many line ends (it is sent
#: early when a chunk has more lines): the header stays small, the times exact.
MAX_MARKS = 256
#: Items of live input waiting for the backend at most (the server bounds the rate).
LIVE_CAPACITY = 64


class Channel:
    """The connection to the server; frames from several threads never interleave."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn
        self._lock = threading.Lock()

    def send(self, frame: wire.Frame) -> None:
        data = wire.encode(frame)
        with self._lock:
            self.conn.send_bytes(data)


class OutputStream:
    """One output of the firmware (UART, trace): buffered, sent in chunks, capped.

    At the cap the bytes up to it are kept and the run is asked to stop: a firmware
    that floods its console has said what it will say, and emulating on only burns
    CPU. The log is then exactly the first ``cap`` bytes the board printed.

    With a ``clock`` (the UART log), each frame says when the board printed it: ``t``,
    the board's time at its last byte, and ``marks``, ``[offset, t]`` for every line end
    in it (offset just past the line end, within the frame). Stamped here, as bytes
    arrive from the backend, because only here is the board's time at hand; the server
    keeps the times beside the log (verdict match times, the live stream's ``time``
    events).
    """

    def __init__(self, channel: Channel, kind: wire.Kind, cap: int, stop: CancelToken,
                 what: str, clock: BoardClock | None = None) -> None:
        self.channel, self.kind, self.cap, self.stop, self.what = channel, kind, cap, stop, what
        self.clock = clock
        self.total = 0
        self._buffer = bytearray()
        self._marks: list[tuple[int, float]] = []
        self._t = 0.0
        self._lock = threading.Lock()

    def write(self, data: bytes) -> None:
        with self._lock:
            room = self.cap - self.total
            if room <= 0:
                return
            if len(data) >= room:
                data = data[:room]
                self.stop.cancel(CancelReason.OUTPUT_LIMIT,
                                 f"the {self.what} reached its limit of {self.cap} bytes")
            if self.clock is not None and self.clock.known:
                self._t = t = self.clock()
                end = data.find(b"\n")
                while end >= 0:
                    self._marks.append((len(self._buffer) + end + 1, t))
                    end = data.find(b"\n", end + 1)
            self._buffer += data
            self.total += len(data)
            if len(self._buffer) >= CHUNK_BYTES or len(self._marks) >= MAX_MARKS:
                self._flush_locked()

    def flush(self) -> None:
        with self._lock:
            self._flush_locked()

    def _flush_locked(self) -> None:
        while self._buffer:
            chunk = bytes(self._buffer[:CHUNK_BYTES])
            del self._buffer[:CHUNK_BYTES]
            fields: dict[str, Any] = {}
            if self.clock is not None and self.clock.known:
                n = len(chunk)
                marks = [[end, t] for end, t in self._marks if end <= n]
                self._marks = [(end - n, t) for end, t in self._marks if end > n]
                fields = {"t": self._t, "marks": marks}
            self.channel.send(wire.Frame(self.kind, fields, payload=chunk))


def apply_limits(limits: Limits) -> None:
    """Kernel-enforced bounds: the soft CPU limit signals (SIGXCPU, handled as a stop),
    the hard one a few seconds later kills a job that did not stop."""
    cpu = max(1, math.ceil(limits.cpu_seconds))
    resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu + 5))
    resource.setrlimit(resource.RLIMIT_AS, (limits.memory_bytes, limits.memory_bytes))
    resource.setrlimit(resource.RLIMIT_NOFILE, (limits.open_files, limits.open_files))
    resource.setrlimit(resource.RLIMIT_FSIZE, (limits.file_bytes, limits.file_bytes))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def load_backend(path: str) -> type[Backend]:
    module_name, _, qualname = path.partition(":")
    target: Any = importlib.import_module(module_name)
    for part in qualname.split("."):
        target = getattr(target, part)
    if not (isinstance(target, type) and issubclass(target, Backend)):
        raise TypeError(f"{path} is not a Backend subclass")
    return target


def cap_text(text: str, limit: int) -> str:
    """The head and the tail of a long text, with the cut said where it is."""
    data = text.encode("utf-8", "replace")
    if len(data) <= limit:
        return text
    half = max(0, limit // 2 - 64)
    cut = len(data) - 2 * half
    return (data[:half].decode("utf-8", "ignore")
            + f"\n[... {cut} bytes of the infrastructure log cut ...]\n"
            + data[-half:].decode("utf-8", "ignore"))


def _listen(channel: Channel, stop: CancelToken, live: LiveInput | None = None) -> None:
    """The server's side of the conversation: a cancel, live input, or the server going
    away."""
    while True:
        try:
            frame = wire.decode(channel.conn.recv_bytes(wire.MAX_FRAME_BYTES))
        except (EOFError, OSError, wire.ProtocolError):
            stop.cancel(CancelReason.ORPHANED, "the server went away")
            threading.Timer(ORPHAN_GRACE_S, os._exit, args=(3,)).start()
            return
        if frame.kind is wire.Kind.CANCEL:
            stop.cancel(*cancel_of(frame))
        elif frame.kind is wire.Kind.INPUT and live is not None:
            item = input_of(frame)
            if item is not None:
                try:
                    live.put(item)  # full: dropped and counted (the server bounds the rate)
                except LiveInputClosed:
                    pass  # the run ended: the server is told so by the OUTCOME


def input_of(frame: wire.Frame) -> LiveItem | None:
    """The live input an INPUT frame carries; None for one that carries nothing usable."""
    press = frame.fields.get("press")
    if isinstance(press, str) and press:
        hold = frame.fields.get("hold_s")
        hold_s = float(hold) if isinstance(hold, int | float) and hold > 0 else 0.1
        return LiveItem(press=press[:16], hold_s=min(hold_s, 60.0))
    return LiveItem(text=frame.payload) if frame.payload else None


def input_frame(item: LiveItem) -> wire.Frame:
    """The INPUT frame for ``item`` (the server's side sends it)."""
    if item.press is not None:
        return wire.Frame(wire.Kind.INPUT, {"press": item.press, "hold_s": item.hold_s})
    return wire.Frame(wire.Kind.INPUT, payload=item.text)


def cancel_of(frame: wire.Frame) -> tuple[CancelReason, str]:
    """The reason and detail a CANCEL frame carries (a frame without one: the user's)."""
    try:
        reason = CancelReason(frame.fields.get("reason", CancelReason.USER.value))
    except ValueError:
        reason = CancelReason.USER
    return reason, str(frame.fields.get("detail") or "")


def _flush_periodically(streams: tuple[OutputStream, ...], done: threading.Event,
                        channel: Channel | None = None, clock: BoardClock | None = None
                        ) -> None:
    """Output goes out every FLUSH_INTERVAL_S; the board's time every TIME_INTERVAL_S
    when it moved (a follower then knows how far the board is while it prints nothing)."""
    sent_t, sent_at = -1.0, 0.0
    ticks = 0
    while not done.wait(FLUSH_INTERVAL_S):
        # the time is read before the flush: every byte printed by then goes out before
        # the TIME frame, so a follower never learns a time before the bytes that precede it
        known = clock is not None and clock.known
        t = clock() if clock is not None and known else 0.0
        for stream in streams:
            stream.flush()
        ticks += 1
        if channel is None or not known or ticks * FLUSH_INTERVAL_S - sent_at \
                < TIME_INTERVAL_S:
            continue
        if t != sent_t:
            sent_t, sent_at = t, ticks * FLUSH_INTERVAL_S
            try:
                channel.send(wire.Frame(wire.Kind.TIME, {"t": t}))
            except OSError:
                return  # the server went away; the listener stops the run


#: Where a failure's traceback goes: the server's log (for the operator), never the job's
#: files, which its owner reads (host paths, internals).
SEE_SERVER_LOG = "the traceback is in the server's log"


def _failed(detail: str, internal: list[str]) -> Outcome:
    internal.append(traceback.format_exc())
    return Outcome(StopReason.INFRASTRUCTURE, infra_log=f"{detail}; {SEE_SERVER_LOG}",
                   detail=detail)


def run_job(spec: JobSpec, channel: Channel, stop: CancelToken,
            streams: tuple[OutputStream, ...], internal: list[str],
            live: LiveInput | None = None, clock: BoardClock | None = None) -> Outcome:
    """Build the backend, run it, and turn our own stop requests into their reasons;
    tracebacks go to ``internal``, for the server's log. ``streams``: UART, other and,
    when the job keeps one, the pin trace."""
    uart, other = streams[0], streams[1]
    trace = streams[2] if len(streams) > 2 and spec.trace_signals is not None else None
    try:
        backend = load_backend(spec.backend)(spec.board, spec.options)
    except Exception as exc:  # a backend constructor may fail in any way
        return _failed(f"the backend could not start: {type(exc).__name__}", internal)
    deadline = None if spec.wall_budget_s is None else Deadline.after(spec.wall_budget_s)
    request = RunRequest(executable=Path(spec.executable), format=spec.format,
                         board=spec.board, time_limit_s=spec.time_limit_s, uart=uart.write,
                         cancel=stop, other=other.write, uart_input=spec.uart_input,
                         presses=spec.presses, deadline=deadline,
                         trace=trace.write if trace else None,
                         trace_signals=spec.trace_signals or (),
                         trace_bytes=spec.limits.trace_bytes,
                         images=tuple(ImageFile(Path(path), fmt, at, name)
                                      for path, fmt, at, name in spec.images),
                         pins=spec.pins, live=live,
                         clock=clock or BoardClock(), realtime=spec.realtime)
    try:
        outcome = backend.run(request)
        if not isinstance(outcome, Outcome):
            return Outcome(StopReason.INFRASTRUCTURE,
                           detail=f"the backend returned {type(outcome).__name__}, "
                                  "not an Outcome")
    except MemoryError:
        return _failed(f"the job ran out of memory (limit {spec.limits.memory_bytes} bytes)",
                       internal)
    except Exception as exc:  # any backend failure is the job's ERROR, told briefly
        return _failed(f"the backend failed: {type(exc).__name__}", internal)
    finally:
        try:
            backend.close()
        except Exception:  # noqa: BLE001 - the outcome matters more than a failed close
            pass
    return _explain(outcome, stop, spec)


def _explain(outcome: Outcome, stop: CancelToken, spec: JobSpec) -> Outcome:
    """A run the token cut short says why, when the reason is not a cancel (a limit, the
    deadline); one that ended by itself anyway (its limit, an exit, a lockup, as the CPU
    signal came) keeps its own reason."""
    if outcome.reason is not StopReason.CANCEL:
        return outcome
    if stop.reason is CancelReason.CPU_LIMIT:
        before = f"; before that: {outcome.detail}" if outcome.detail else ""
        return replace(outcome, reason=StopReason.CPU_LIMIT, detail=(
            f"firmware too slow to emulate: {outcome.time_used_s:.3f} of "
            f"{spec.time_limit_s:g} virtual s in {cpu_seconds():.0f} CPU s "
            f"(the job's CPU limit is {spec.limits.cpu_seconds:g} s){before}"))
    if stop.reason is CancelReason.OUTPUT_LIMIT:
        return replace(outcome, reason=StopReason.OUTPUT_LIMIT,
                       detail=f"{stop.detail} at {outcome.time_used_s:.6f} s of virtual time")
    if stop.reason is CancelReason.DEADLINE:
        return replace(outcome, reason=StopReason.INFRASTRUCTURE,
                       detail=f"{stop.detail or 'the run passed its deadline'} (stopped at "
                              f"{outcome.time_used_s:.6f} s of virtual time)")
    return outcome


def serve(conn: Connection) -> None:
    """The job process's body: START in, output and one OUTCOME out."""
    channel = Channel(conn)
    stop = CancelToken()
    start = wire.decode(conn.recv_bytes(wire.MAX_FRAME_BYTES))
    if start.kind is not wire.Kind.START:
        raise wire.ProtocolError(f"expected START, got {start.kind.value}")
    spec = JobSpec.from_json(start.fields["spec"])
    apply_limits(spec.limits)
    signal.signal(signal.SIGXCPU, lambda signum, frame: stop.cancel(CancelReason.CPU_LIMIT))
    # opened here, closed once the backend returned (see the end of this function)
    live = LiveInput(LIVE_CAPACITY)
    clock = BoardClock()
    threading.Thread(target=_listen, args=(channel, stop, live), daemon=True,
                     name="hwut-job-listen").start()
    streams = (OutputStream(channel, wire.Kind.UART, spec.limits.uart_bytes, stop, "UART log",
                            clock),
               OutputStream(channel, wire.Kind.OTHER, spec.limits.other_bytes, stop,
                            "trace (other)"),
               OutputStream(channel, wire.Kind.TRACE, spec.limits.trace_bytes, stop,
                            "pin trace"))
    done = threading.Event()
    flusher = threading.Thread(target=_flush_periodically,
                               args=(streams, done, channel, clock), daemon=True,
                               name="hwut-job-flush")
    flusher.start()
    internal: list[str] = []
    try:
        outcome = run_job(spec, channel, stop, streams, internal, live, clock)
    finally:
        done.set()
        flusher.join()
        unapplied = live.close()
    if unapplied or live.refused:
        notes = [f"live input not applied (the run ended first): {item.describe()}"
                 for item in unapplied]
        if live.refused:
            notes.append(f"live input: {live.refused} items dropped (more than "
                         f"{live.capacity} waiting)")
        outcome = replace(outcome, infra_log="\n".join(filter(None, [outcome.infra_log,
                                                                     *notes])))
    for stream in streams:
        stream.flush()
    channel.send(outcome_frame(outcome, spec.limits.infra_bytes, "".join(internal)))


def outcome_frame(outcome: Outcome, infra_limit: int, internal: str = "") -> wire.Frame:
    return wire.Frame(wire.Kind.OUTCOME, {
        "reason": outcome.reason.value, "exit_code": outcome.exit_code,
        "time_used_s": outcome.time_used_s, "instructions": outcome.instructions,
        "detail": outcome.detail[:1000], "cpu_s": round(cpu_seconds(), 3),
        "internal": cap_text(internal, 16 * 1024),
    }, cap_text(outcome.infra_log, min(infra_limit, MAX_INFRA_BYTES)).encode("utf-8", "replace"))


def main(conn: Connection) -> None:
    """Entry point in the forked process: its own process group, and out it goes."""
    os.setsid()
    code = 0
    try:
        serve(conn)
    except Exception:  # reported by the exit code and stderr; the server says ERROR
        traceback.print_exc()
        code = 1
    finally:
        conn.close()
    sys.exit(code)
