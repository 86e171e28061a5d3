"""The backend contract, one suite run against every backend this machine has:

- ``sim``: the embedded emulator;
- ``renode``: the Renode backend driving the stand-in ``renode`` (tests/backends/
  renode_standin, a test double that checks the command line and script against
  Renode's documented interface and runs the firmware on our simulator);
- ``physical``: pyOCD and pyserial against the simulated debug probe in front of an
  emulated board (skipped without the ``physical`` extra).

What every backend must do (see the design brief): stream UART bytes while it runs,
stop at its time limit, on a cancel (within 1.5 s, whatever the token's reason) and
when the firmware exits, and leave no thread, file descriptor or process behind when
``run`` returns, also when it raises. Behaviour only one backend has (formats, options,
the Renode script, probe errors) is tested beside that backend.
"""
from __future__ import annotations

import os
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from hwut.backends.base import (
    Backend,
    CancelReason,
    CancelToken,
    Outcome,
    RunRequest,
    StopReason,
)
from hwut.backends.renode import RenodeBackend
from hwut.backends.sim import SimBackend

ROOT = Path(__file__).resolve().parents[2]
BUILD = ROOT / "fixtures" / "build"
EXPECTED = ROOT / "fixtures" / "expected"
STANDIN = Path(__file__).resolve().parent / "renode_standin" / "renode"
BOARD = "nucleo-f303re"
BANNER = b"HWUT hello from NUCLEO-F303RE\r\nSYSCLK=72000000\r\ncount=0\r\n"
#: The contract's bound on stopping after a cancel.
CANCEL_S = 1.5


@dataclass
class Subject:
    """One backend under the contract, with what it can promise."""

    name: str
    make: Callable[[], Backend]
    #: The log of a run to its limit is known to the byte (virtual time).
    exact_log: bool = True
    #: Why it cannot report a semihosting exit; "" when it can.
    no_exit: str = ""
    #: Threads that are not the backend's (the simulated board behind a probe runs its
    #: emulator in threads of its own), by name prefix.
    foreign_threads: tuple[str, ...] = ()


def _children() -> set[int]:
    """Our own child processes (zombies too: a child not reaped is left behind)."""
    me, found = os.getpid(), set()
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_bytes()
            except OSError:
                continue
            if int(stat.rsplit(b")", 1)[1].split()[1]) == me:
                found.add(int(entry))
    return found


def _open() -> tuple[set[threading.Thread], set[str], set[int]]:
    return set(threading.enumerate()), set(os.listdir("/proc/self/fd")), _children()


def _assert_nothing_left(subject: Subject,
                         before: tuple[set[threading.Thread], set[str], set[int]]) -> None:
    """Nothing the run opened is still open, the moment ``run`` returned."""
    threads, fds, children = before
    extra = {t for t in set(threading.enumerate()) - threads
             if not t.name.startswith(subject.foreign_threads or ("\0",))}
    assert not extra, extra
    assert set(os.listdir("/proc/self/fd")) <= fds
    assert _children() <= children


@pytest.fixture(params=["sim", "renode", "physical"])
def subject(request: pytest.FixtureRequest, tmp_path: Path,
            monkeypatch: pytest.MonkeyPatch) -> Iterator[Subject]:
    """The backend, and afterwards the check that its runs left nothing open."""
    if request.param == "sim":
        yield from _checked(Subject("sim", lambda: SimBackend(BOARD)))
    elif request.param == "renode":
        monkeypatch.setenv("RENODE_STANDIN_PYTHON", sys.executable)
        monkeypatch.setenv("RENODE_STANDIN_SEMIHOSTING", "1")
        monkeypatch.setenv("RENODE_STANDIN_DELAY_S", "0.002")
        for name in ("FAIL", "HANG", "SLICE_S"):
            monkeypatch.delenv(f"RENODE_STANDIN_{name}", raising=False)
        options = {"renode_path": str(STANDIN), "work_dir": str(tmp_path)}
        yield from _checked(Subject("renode", lambda: RenodeBackend(BOARD, options)))
        assert list(tmp_path.iterdir()) == []  # every job directory removed
    else:
        yield from _physical()


def _checked(subject: Subject) -> Iterator[Subject]:
    before = _open()
    yield subject
    _assert_nothing_left(subject, before)


def _physical() -> Iterator[Subject]:
    pytest.importorskip("pyocd")
    pytest.importorskip("serial")
    from pyocd.core.helpers import ConnectHelper

    from hwut.backends.physical import PhysicalBackend
    from hwut.backends.simlab import PROBES, start_board

    # pyOCD's USB probe drivers open libusb once per process, at the first enumeration
    ConnectHelper.get_all_connected_probes(blocking=False, print_wait_message=False)
    uid = "hwutsim-contract-0"
    board = start_board(BOARD, realtime=False)
    PROBES.register(uid, board)
    options = {"probe": uid, "serial": str(board.console_path), "after": "run"}
    try:
        yield from _checked(Subject(
            "physical", lambda: PhysicalBackend(BOARD, options), exact_log=False,
            no_exit="the physical backend has no semihosting yet (issue 14)",
            foreign_threads=("hwut-sim-",)))
    finally:
        PROBES.unregister(uid)
        board.close()


def _request(name: str, limit: float, sink: Callable[[bytes], None],
             cancel: CancelToken | None = None) -> RunRequest:
    return RunRequest(BUILD / f"{name}.elf", "elf", BOARD, limit, sink, cancel or CancelToken())


def _run(subject: Subject, request: RunRequest) -> Outcome:
    backend = subject.make()
    try:
        return backend.run(request)
    finally:
        backend.close()


@pytest.mark.parametrize("reason", [CancelReason.USER, CancelReason.DEADLINE])
def test_streams_while_running_and_stops_on_a_cancel(subject: Subject, reason: CancelReason):
    """Bytes reach the sink while ``run`` is still running; a cancel, whatever its reason
    (the owner's, or the scheduler's deadline), ends the run within 1.5 s."""
    chunks: list[bytes] = []
    cancel = CancelToken()
    result: dict[str, Any] = {}

    def work() -> None:
        try:
            result["outcome"] = _run(subject, _request("hello", 300, chunks.append, cancel))
        except BaseException as exc:  # noqa: BLE001 - reported by the assertion below
            result["raised"] = exc

    worker = threading.Thread(target=work, name="contract-run")
    worker.start()
    try:
        waited = time.monotonic() + 60
        while len(b"".join(chunks)) < len(BANNER) and time.monotonic() < waited:
            assert worker.is_alive(), result
            time.sleep(0.01)
        assert b"".join(chunks).startswith(BANNER)  # streamed: the run is not over
        assert worker.is_alive()
    finally:
        asked = time.monotonic()
        cancel.cancel(reason, "told by the contract test")
        worker.join(30)
    stopped = time.monotonic() - asked
    assert not worker.is_alive() and "raised" not in result, result
    assert result["outcome"].reason is StopReason.CANCEL, result["outcome"].detail
    assert stopped <= CANCEL_S, f"{subject.name} took {stopped:.2f} s to stop"


def test_stops_at_its_time_limit(subject: Subject):
    log = bytearray()
    outcome = _run(subject, _request("hello", 1.0, log.extend))
    assert outcome.reason is StopReason.LIMIT, outcome.detail
    assert outcome.exit_code is None
    if subject.exact_log:  # virtual time: exactly what 1 s of the firmware prints
        assert bytes(log) == (EXPECTED / "hello.txt").read_bytes()
        assert outcome.time_used_s == pytest.approx(1.0)
    else:  # wall time on a board: at least the start of it, and the whole second used
        assert log.startswith(BANNER)
        assert outcome.time_used_s >= 1.0


def test_stops_when_the_firmware_exits(subject: Subject):
    if subject.no_exit:
        pytest.skip(subject.no_exit)
    log = bytearray()
    outcome = _run(subject, _request("semihost_exit", 5.0, log.extend))
    assert outcome.reason is StopReason.EXIT, outcome.detail
    assert outcome.exit_code == 3
    assert outcome.time_used_s < 5.0


def test_a_run_canceled_before_it_starts_ends_at_once(subject: Subject):
    cancel = CancelToken()
    cancel.cancel(CancelReason.SHUTDOWN, "the server stopped")
    outcome = _run(subject, _request("hello", 300, lambda data: None, cancel))
    assert outcome.reason is StopReason.CANCEL, outcome.detail


def test_a_failing_sink_leaves_nothing_open(subject: Subject):
    """The sink is the job's log: when writing it fails the run ends, by raising or with
    an outcome, and everything it opened is closed (the fixture checks)."""
    def sink(data: bytes) -> None:
        raise OSError(28, "No space left on device")

    try:
        outcome = _run(subject, _request("hello", 300, sink))
    except OSError:
        return
    assert outcome.reason is StopReason.INFRASTRUCTURE, outcome.detail
