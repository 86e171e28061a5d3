"""A job in its own process, through the real fork server, with the real sim backend
for the normal path and failure doubles (``failure_backends``) for the rest."""
from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hwut.backends.base import CancelReason, CancelToken, Deadline, StopReason
from hwut.runner import wire
from hwut.runner.process import JobProcess, job_context
from hwut.runner.spec import JobSpec, Limits

ROOT = Path(__file__).resolve().parents[2]
BUILD = ROOT / "fixtures" / "build"
EXPECTED = ROOT / "fixtures" / "expected"
SIM = "hwut.backends.sim:SimBackend"
DOUBLES = "tests.runner.failure_backends"
CONTEXT = job_context(["hwut.backends.sim"])


def spec(firmware: str = "hello", limit: float = 1.0, backend: str = SIM,
         **limits: float) -> JobSpec:
    return JobSpec(7, backend, "nucleo-f303re", {}, str(BUILD / f"{firmware}.elf"), "elf",
                   limit, limits=Limits(**limits))  # type: ignore[arg-type]


class Ticking:
    """A clock that moves 0.1 s each time it is read: bounds measured on it pass after a
    number of the pump's rounds, never because the host is slow or fast."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        self.now += 0.1
        return self.now


def run(job: JobSpec, cancel: CancelToken | None = None, deadline_after: float | None = None,
        **kwargs):
    uart: list[tuple[float, bytes]] = []
    other: list[bytes] = []
    if deadline_after is not None:
        kwargs["deadline"] = Deadline.after(deadline_after, Ticking())
    process = JobProcess(job, CONTEXT, **kwargs)
    outcome = process.run(lambda b: uart.append((time.monotonic(), b)), other.append,
                          cancel or CancelToken())
    return outcome, b"".join(b for _, b in uart), b"".join(other), process, uart


def gone(pid: int) -> bool:
    try:
        os.killpg(pid, 0)
    except ProcessLookupError:
        return True
    return False


def test_hello_runs_to_its_limit_with_the_expected_log():
    outcome, log, _, process, _ = run(spec("hello", 1.0))
    assert outcome.reason is StopReason.LIMIT
    assert log == (EXPECTED / "hello.txt").read_bytes()
    assert "virtual time 1.000000 s" in outcome.infra_log
    assert process.pid is not None and gone(process.pid)


def test_the_firmware_s_exit_code_and_its_trace_come_back():
    outcome, _, _, _, _ = run(spec("semihost_exit"))
    assert (outcome.reason, outcome.exit_code) == (StopReason.EXIT, 3)
    outcome, _, trace, _, _ = run(spec("itm_printf"))
    assert b"itm: hello over SWO" in trace


def test_the_log_streams_while_the_job_runs():
    _, _, _, _, chunks = run(spec("uart_loop", 2.0))
    assert len(chunks) > 3
    assert chunks[-1][0] - chunks[0][0] > 0.05


def test_a_flood_stops_at_the_cap_with_exactly_the_cap_kept():
    outcome, log, _, _, _ = run(spec("uart_loop", 30, uart_bytes=5000))
    assert outcome.reason is StopReason.OUTPUT_LIMIT
    assert "UART log reached its limit of 5000 bytes" in outcome.detail
    assert len(log) == 5000 and log.startswith(b"line 0\r\nline 1\r\n")
    outcome, log, trace, _, _ = run(spec(backend=f"{DOUBLES}:Floods", other_bytes=300))
    assert outcome.reason is StopReason.OUTPUT_LIMIT and len(trace) == 300
    assert "trace (other) reached its limit of 300 bytes" in outcome.detail


def test_firmware_too_slow_to_emulate_stops_at_its_cpu_budget():
    outcome, _, _, _, _ = run(spec("uart_loop", 300, cpu_seconds=1))
    assert outcome.reason is StopReason.CPU_LIMIT
    assert outcome.detail.startswith("firmware too slow to emulate: ")
    assert "in 1 CPU s" in outcome.detail and 0 < outcome.time_used_s < 300


def test_cancel_stops_the_emulator_within_a_second():
    cancel = CancelToken()
    threading.Timer(0.3, cancel.cancel, args=(CancelReason.USER,)).start()
    started = time.monotonic()
    outcome, _, _, process, _ = run(spec("hello", 300), cancel)
    assert outcome.reason is StopReason.CANCEL
    assert time.monotonic() - started < 0.3 + 1.5
    assert gone(process.pid)


def test_a_backend_that_ignores_cancel_is_killed_after_the_grace():
    cancel = CancelToken()
    threading.Timer(0.3, cancel.cancel, args=(CancelReason.USER,)).start()
    started = time.monotonic()
    outcome, log, _, process, _ = run(spec(backend=f"{DOUBLES}:IgnoresCancel"), cancel,
                                      cancel_grace_s=0.5)
    assert outcome.reason is StopReason.CANCEL and "was killed" in outcome.detail
    assert log == b"started\n"
    assert time.monotonic() - started < 5 and gone(process.pid)


def test_the_deadline_kills_a_job_that_ignores_it():
    cancel = CancelToken()
    outcome, _, _, process, _ = run(spec(backend=f"{DOUBLES}:IgnoresCancel"), cancel,
                                    deadline_after=0.5)
    assert cancel.reason is CancelReason.DEADLINE
    assert outcome.reason is StopReason.INFRASTRUCTURE
    assert "did not end within" in outcome.detail and "was killed" in outcome.detail
    assert gone(process.pid)


def test_the_deadline_stops_a_job_that_honours_its_token():
    # the real sim backend, told through the token: it stops and says where it was
    cancel = CancelToken()
    job = JobSpec(7, SIM, "nucleo-f303re", {}, str(BUILD / "spin.elf"), "elf", 300.0,
                  wall_budget_s=2.0)
    outcome, _, _, process, _ = run(job, cancel, deadline_after=2.0, cancel_grace_s=30.0)
    assert cancel.reason is CancelReason.DEADLINE
    assert outcome.reason is StopReason.INFRASTRUCTURE
    assert outcome.detail.startswith("the job did not end within 2 s of wall time (stopped at")
    assert "virtual time" in outcome.infra_log and gone(process.pid)


def test_a_raising_backend_is_an_infrastructure_error_told_briefly(caplog):
    outcome, _, _, _, _ = run(spec(backend=f"{DOUBLES}:Raises"))
    assert outcome.reason is StopReason.INFRASTRUCTURE
    assert outcome.detail == "the backend failed: RuntimeError"  # no message, no host path
    # the job's files (its owner reads them) say where the details are, not what they are
    assert "probe on fire" not in outcome.infra_log and "server's log" in outcome.infra_log
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert "RuntimeError: probe on fire in /home/lab/secret/path" in logged


def test_a_crash_keeps_what_was_printed_and_says_how_it_ended():
    outcome, log, _, process, _ = run(spec(backend=f"{DOUBLES}:Segfaults"))
    assert outcome.reason is StopReason.INFRASTRUCTURE
    assert "killed by SIGSEGV" in outcome.detail
    assert log == b"before the crash\n" and gone(process.pid)


def test_memory_is_bounded_by_the_address_space_limit():
    outcome, _, _, _, _ = run(spec(backend=f"{DOUBLES}:Hogs", memory_bytes=1024 * 1024 * 1024))
    assert outcome.reason is StopReason.INFRASTRUCTURE
    assert "ran out of memory" in outcome.detail


def test_what_the_job_started_is_killed_with_it():
    outcome, log, _, _, _ = run(spec(backend=f"{DOUBLES}:Spawns"), deadline_after=3.0)
    assert outcome.reason is StopReason.INFRASTRUCTURE
    sleeper = int(log.split()[0])
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and Path(f"/proc/{sleeper}").exists():
        if b"Z" in Path(f"/proc/{sleeper}/stat").read_bytes().rsplit(b")", 1)[1][:3]:
            break  # a zombie waiting for its (gone) parent's reaper: dead
        time.sleep(0.05)
    assert not Path(f"/proc/{sleeper}").exists() or \
        b"Z" in Path(f"/proc/{sleeper}/stat").read_bytes().rsplit(b")", 1)[1][:3]


@pytest.mark.parametrize("frame", [
    wire.Frame(wire.Kind.UART, payload=b"\x00\n\xff" * 100),
    wire.Frame(wire.Kind.OUTCOME, {"reason": "exit", "exit_code": -1, "detail": "d\n\"x"}),
    wire.Frame(wire.Kind.START, {"spec": spec().to_json()}),
])
def test_frames_round_trip(frame: wire.Frame):
    assert wire.decode(wire.encode(frame)) == frame


def test_the_spec_round_trips_through_json():
    job = JobSpec(3, SIM, "b", {"x": 1}, "/e", "bin", 2.5, b"\x00ab\r",
                  (("B1", 0.5, None), ("B1", 0.7, 0.9)), Limits(cpu_seconds=3), ("LD2",), 41.5)
    assert JobSpec.from_json(job.to_json()) == job


@given(st.binary(max_size=300))
def test_no_input_makes_the_decoder_raise_anything_but_protocol_error(data: bytes):
    try:
        wire.decode(data)
    except wire.ProtocolError:
        pass


def test_a_frame_of_another_version_is_refused():
    with pytest.raises(wire.ProtocolError, match="version"):
        wire.decode(b'{"v": 2, "kind": "uart"}\nabc')
