"""Input into a running job on the physical backend (issue 16): through real pyOCD and
pyserial against the simulated probe in front of an emulated NUCLEO-F303RE running the
``echo`` fixture; live text goes to the serial port as it comes, a press is refused."""
from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

pytest.importorskip("pyocd")
pytest.importorskip("serial")

from pyocd.core.helpers import ConnectHelper  # noqa: E402

from hwut.backends.base import CancelToken, LiveInput, LiveItem, RunRequest  # noqa: E402
from hwut.backends.physical import PhysicalBackend  # noqa: E402

from .leftovers import assert_nothing_left, snapshot  # noqa: E402
from .simulated_lab import registered_board  # noqa: E402

BUILD = Path(__file__).resolve().parents[2] / "fixtures" / "build"
UID = "hwutsim-physical-live"


@pytest.fixture
def lab():
    ConnectHelper.get_all_connected_probes(blocking=False, print_wait_message=False)
    before = snapshot()
    with registered_board(UID, realtime=True) as board:
        yield board
    assert_nothing_left(before)


def test_live_text_reaches_the_console_and_is_noted(lab):
    log = bytearray()
    cancel, live = CancelToken(), LiveInput()
    request = RunRequest(executable=BUILD / "echo.elf", format="elf", board="nucleo-f303re",
                         time_limit_s=30, uart=log.extend, cancel=cancel, live=live)

    def talk() -> None:
        deadline = time.monotonic() + 20
        while b"echo ready\r\n" not in log and time.monotonic() < deadline:
            time.sleep(0.02)
        live.put(LiveItem(text=b"lab\r"))
        live.put(LiveItem(press="B1", hold_s=0.1))
        while b"lab\r\n" not in log and time.monotonic() < deadline:
            time.sleep(0.02)
        cancel.set()

    talker = threading.Thread(target=talk)
    talker.start()
    backend = PhysicalBackend("nucleo-f303re", {"probe": UID, "serial": lab.console_path})
    outcome = backend.run(request)
    talker.join()
    assert log.endswith(b"echo ready\r\nlab\r\n"), bytes(log)
    assert "live input at" in outcome.infra_log and "4 bytes b'lab\\r'" in outcome.infra_log
    assert "refused: press B1 for 0.1 s: this backend cannot press buttons" in \
        outcome.infra_log
    assert request.clock() > 0  # the board's time: wall seconds since the start
    info = PhysicalBackend.board_info("nucleo-f303re")
    assert info is not None and info.live_input and not info.live_presses
    assert info.backend == "physical"


def test_live_text_waits_behind_the_submitted_input_and_never_interleaves(lab):
    """Input sent the moment the job starts, while the submitted input still waits for the
    firmware to come up: the console has one writer, so the echo gives both lines whole,
    the submitted one first."""
    log = bytearray()
    cancel, live = CancelToken(), LiveInput()
    request = RunRequest(executable=BUILD / "echo.elf", format="elf", board="nucleo-f303re",
                         time_limit_s=30, uart=log.extend, cancel=cancel, live=live,
                         uart_input=b"submitted\r")
    live.put(LiveItem(text=b"live one\r"))
    live.put(LiveItem(text=b"live two\r"))

    def stop_when_echoed() -> None:
        deadline = time.monotonic() + 20
        while b"live two\r\n" not in log and time.monotonic() < deadline:
            time.sleep(0.02)
        cancel.set()

    watcher = threading.Thread(target=stop_when_echoed)
    watcher.start()
    outcome = PhysicalBackend("nucleo-f303re", {"probe": UID, "serial": lab.console_path}) \
        .run(request)
    watcher.join()
    assert log == b"echo ready\r\nsubmitted\r\nlive one\r\nlive two\r\n", bytes(log)
    typed = outcome.infra_log.index("console input: 10 of 10 bytes typed")
    assert typed < outcome.infra_log.index("live input at") < \
        outcome.infra_log.index("9 bytes b'live two\\r'")
