"""Failure injection through the simulated probe: each bench failure ends the job as an
infrastructure error whose detail says what to check, and the backend leaves nothing
open (no thread, no file descriptor: port, pty, socket; no pyOCD session).

The retry and the offline rule are the scheduler's (test_physical_lab.py runs them
through a real server)."""
from __future__ import annotations

import gc
import threading
from pathlib import Path

import pytest

pytest.importorskip("pyocd")
pytest.importorskip("serial")

from pyocd.core.helpers import ConnectHelper  # noqa: E402
from pyocd.core.session import Session  # noqa: E402

from hwut.backends.base import RunRequest, StopReason  # noqa: E402
from hwut.backends.physical import PhysicalBackend  # noqa: E402
from hwut.backends.simlab import PROBES  # noqa: E402

from .leftovers import assert_nothing_left, snapshot  # noqa: E402
from .simulated_lab import registered_board  # noqa: E402

BUILD = Path(__file__).resolve().parents[2] / "fixtures" / "build"
UID = "hwutsim-failures-0"


def _open_sessions() -> list[Session]:
    gc.collect()
    return [o for o in gc.get_objects() if isinstance(o, Session) and o.is_open]


@pytest.fixture
def lab():
    ConnectHelper.get_all_connected_probes(blocking=False, print_wait_message=False)
    before = snapshot()
    with registered_board(UID, realtime=True) as board:
        yield board
    assert_nothing_left(before)
    assert not _open_sessions()


def _run(board, *, probe=UID, serial=None, inject=None, at_s=0.6, limit=3.0, **options):
    """Run hello.elf; ``inject`` is called ``at_s`` seconds into the job (mid-run)."""
    log = bytearray()
    request = RunRequest(executable=BUILD / "hello.elf", format="elf", board="nucleo-f303re",
                         time_limit_s=limit, uart=log.extend, cancel=threading.Event())
    timer = threading.Timer(at_s, inject) if inject else None
    if timer:
        timer.start()
    try:
        backend = PhysicalBackend("nucleo-f303re",
                                  {"probe": probe, "serial": serial or board.console_path,
                                   **options})
        before = snapshot()
        outcome = backend.run(request)
        # the backend itself holds nothing once run returns, whatever happened (the board
        # runs on, with its own threads)
        assert_nothing_left(before, ignore=("hwut-sim-",))
        assert not _open_sessions()
    finally:
        if timer:
            timer.cancel()
            timer.join()
    return outcome, bytes(log)


def test_probe_absent_names_the_uid_and_the_probes_there(lab):
    outcome, log = _run(lab, probe="hwutsim-absent")
    assert outcome.reason is StopReason.INFRASTRUCTURE
    assert "probe hwutsim-absent not found; probes present: " in outcome.detail
    assert f"{UID} (HWUT simulated SWD probe)" in outcome.detail
    assert outcome.detail in outcome.infra_log and not log


def test_probe_vanishing_mid_run(lab):
    outcome, log = _run(lab, inject=lambda: PROBES.unregister(UID))
    assert outcome.reason is StopReason.INFRASTRUCTURE, outcome.detail
    assert f"probe {UID} disconnected mid-run" in outcome.detail
    assert log.startswith(b"HWUT hello")  # it ran until then


def test_target_not_answering_at_connect(lab):
    lab.dp.responding = False
    outcome, _ = _run(lab)
    assert outcome.reason is StopReason.INFRASTRUCTURE
    assert f"target on probe {UID} is not responding" in outcome.detail
    assert "SWD cable" in outcome.detail


def test_sticky_errors_mid_run(lab):
    """Every AP access answers FAULT (STICKYERR): pyOCD clears it and retries, then gives
    up; the job says the target stopped responding."""
    def stuck() -> None:
        lab.dp.faulting = True
    outcome, log = _run(lab, inject=stuck)
    assert outcome.reason is StopReason.INFRASTRUCTURE, outcome.detail
    assert f"target on probe {UID} stopped responding" in outcome.detail
    assert "TransferFaultError" in outcome.detail
    assert log.startswith(b"HWUT hello")


def test_flash_program_failure(lab):
    lab.machine.peripherals["FLASH"].worn_pages.add(0x0800_0000)
    outcome, log = _run(lab)
    assert outcome.reason is StopReason.INFRASTRUCTURE
    assert outcome.detail.startswith("flash programming failed"), outcome.detail
    assert not log


def test_serial_port_missing(lab):
    outcome, _ = _run(lab, serial="/dev/hwut-no-such-port")
    assert outcome.reason is StopReason.INFRASTRUCTURE
    assert "serial port /dev/hwut-no-such-port cannot be opened" in outcome.detail
    assert "/dev/serial/by-id" in outcome.detail


def test_serial_port_unplugged_mid_run(lab):
    vcp = lab._vcp
    outcome, log = _run(lab, inject=vcp.close)
    assert outcome.reason is StopReason.INFRASTRUCTURE, outcome.detail
    assert f"serial port {vcp.path} failed mid-run" in outcome.detail
    assert log.startswith(b"HWUT hello")


def test_cancel_and_limit_leave_nothing_open(lab):
    outcome, _ = _run(lab, limit=0.5)
    assert outcome.reason is StopReason.LIMIT
    cancel = threading.Event()
    request = RunRequest(executable=BUILD / "hello.hex", format="hex", board="nucleo-f303re",
                         time_limit_s=30, uart=lambda _b: None, cancel=cancel)
    backend = PhysicalBackend("nucleo-f303re", {"probe": UID, "serial": lab.console_path,
                                                "after": "reset-halt"})
    timer = threading.Timer(0.5, cancel.set)
    timer.start()
    outcome = backend.run(request)
    timer.join()
    assert outcome.reason is StopReason.CANCEL
    assert lab.core.halted
