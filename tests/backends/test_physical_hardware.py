"""One fixture through a real NUCLEO-F303RE: for a lab, skipped without one.

    HWUT_NUCLEO="066DFF485550755187121723,/dev/serial/by-id/usb-STMicroelectronics_...-if02" \
        python -m pytest -m hardware tests/backends/test_physical_hardware.py

names the board's probe (its unique id, as `pyocd list` shows it) and its console (the
ST-LINK's virtual COM port). The fixture's text is what the emulator prints too
(fixtures/expected/hello.txt): the board and the sim must agree."""
from __future__ import annotations

import os
import threading
from pathlib import Path

import pytest

pytestmark = pytest.mark.hardware

BOARD = os.environ.get("HWUT_NUCLEO", "")
if "," not in BOARD:
    pytest.skip("no NUCLEO-F303RE named (HWUT_NUCLEO=PROBE_UID,SERIAL_PORT)",
                allow_module_level=True)
pytest.importorskip("pyocd")
pytest.importorskip("serial")

from hwut.backends.base import RunRequest, StopReason  # noqa: E402
from hwut.backends.physical import PhysicalBackend  # noqa: E402

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("name,fmt", [("hello.elf", "elf"), ("hello.bin", "bin")])
def test_hello_on_a_real_board(name, fmt):
    probe, port = BOARD.split(",", 1)
    log = bytearray()
    request = RunRequest(executable=REPO / "fixtures" / "build" / name, format=fmt,
                         board="nucleo-f303re", time_limit_s=1.5, uart=log.extend,
                         cancel=threading.Event())
    outcome = PhysicalBackend("nucleo-f303re", {"probe": probe, "serial": port}).run(request)
    assert outcome.reason is StopReason.LIMIT, outcome.detail
    expected = (REPO / "fixtures" / "expected" / "hello.txt").read_bytes()
    common = min(len(log), len(expected))
    assert common > 40 and bytes(log[:common]) == expected[:common], bytes(log)
