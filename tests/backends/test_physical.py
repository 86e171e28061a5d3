"""The physical backend (first cut) through real pyOCD and pyserial, against the
simulated probe in front of an emulated NUCLEO-F303RE: the board starts with
erased flash, the backend programs it through the flash algorithm and reads the
console from the board's pseudo-terminal."""
from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

pytest.importorskip("pyocd")
pytest.importorskip("serial")

from pyocd.core.helpers import ConnectHelper  # noqa: E402

from hwut.backends.base import RunRequest, StopReason  # noqa: E402
from hwut.backends.physical import (  # noqa: E402
    OptionError,
    PhysicalBackend,
    PhysicalOptions,
    parse_options,
)

from .leftovers import assert_nothing_left, snapshot  # noqa: E402
from .simulated_lab import registered_board  # noqa: E402

BUILD = Path(__file__).resolve().parents[2] / "fixtures" / "build"
UID = "hwutsim-physical-0"


@pytest.fixture
def lab():
    """A simulated lab board: probe UID, console on a pty; nothing left afterwards."""
    # pyOCD's USB probe drivers open libusb once per process, at the first enumeration
    ConnectHelper.get_all_connected_probes(blocking=False, print_wait_message=False)
    before = snapshot()
    with registered_board(UID, realtime=False) as board:
        yield board
    assert_nothing_left(before)


def _request(name="hello.elf", fmt="elf", limit=1.0, cancel=None):
    log = bytearray()
    request = RunRequest(executable=BUILD / name, format=fmt, board="nucleo-f303re",
                         time_limit_s=limit, uart=log.extend,
                         cancel=cancel or threading.Event())
    return request, log


def test_options_are_checked():
    assert parse_options({"probe": "x", "serial": "/dev/null"}).baud == 115200
    with pytest.raises(OptionError, match="probe is required"):
        parse_options({"serial": "/dev/null"})
    with pytest.raises(OptionError, match="after must be one of"):
        parse_options({"probe": "x", "serial": "y", "after": "sleep"})
    with pytest.raises(OptionError, match="unknown options"):
        parse_options({"probe": "x", "serial": "y", "colour": "red"})
    with pytest.raises(OptionError, match="baud must be"):
        parse_options({"probe": "x", "serial": "y", "baud": "fast"})
    with pytest.raises(OptionError, match="frequency must be"):
        parse_options({"probe": "x", "serial": "y", "frequency": True})
    assert parse_options({"probe": "x", "serial": "y", "pack": "a.pack"}).pack == ("a.pack",)
    with pytest.raises(OptionError, match="pack must be"):
        parse_options({"probe": "x", "serial": "y", "pack": [1]})
    assert not PhysicalBackend.availability({}).ok
    assert "probe (required)" in PhysicalOptions.describe()


def test_the_server_refuses_to_start_with_wrong_options(tmp_path):
    from hwut.config import BoardConfig, ConfigError, load_config
    from hwut.scheduler import Scheduler
    from hwut.store import JobStore

    config = load_config()
    config = type(config)(config.values, (BoardConfig("nucleo-f303re", "physical", 1,
                                                      {"probe": "x"}),), (), "test")
    with pytest.raises(ConfigError, match="option serial is required"):
        Scheduler(JobStore(tmp_path), config, {"physical": PhysicalBackend})


def test_semihosting_is_served_and_its_exit_ends_the_job(lab):
    """The core halts at BKPT 0xAB as a real core with a debugger does; pyOCD's agent
    serves the output into the log, SYS_EXIT_EXTENDED ends the job with its code."""
    backend = PhysicalBackend("nucleo-f303re", {"probe": UID, "serial": lab.console_path})
    request, log = _request("semihost_exit.elf", "elf", limit=5)
    outcome = backend.run(request)
    assert (outcome.reason, outcome.exit_code) == (StopReason.EXIT, 3), outcome.detail
    assert bytes(log) == (BUILD.parent / "expected" / "semihost_exit.txt").read_bytes()
    request, log = _request("semihost_exit0.elf", "elf", limit=5)
    assert backend.run(request).exit_code == 0


@pytest.mark.parametrize("name,fmt", [("hello.elf", "elf"), ("hello.hex", "hex"),
                                      ("hello.bin", "bin")])
def test_a_job_programs_runs_and_streams_the_console(lab, name, fmt):
    backend = PhysicalBackend("nucleo-f303re", {"probe": UID, "serial": lab.console_path})
    request, log = _request(name, fmt, limit=0.5)
    outcome = backend.run(request)
    assert outcome.reason is StopReason.LIMIT, outcome.detail
    assert log.startswith(b"HWUT hello from NUCLEO-F303RE\r\nSYSCLK=72000000\r\ncount=0\r\n")
    assert lab.core.halted  # option after = halt (the default)


def test_cancel_stops_the_job_within_a_second(lab):
    cancel = threading.Event()
    backend = PhysicalBackend("nucleo-f303re", {"probe": UID, "serial": lab.console_path,
                                                "after": "run"})
    request, _ = _request(limit=60, cancel=cancel)
    threading.Timer(0.5, cancel.set).start()
    started = time.monotonic()
    outcome = backend.run(request)
    assert outcome.reason is StopReason.CANCEL
    assert time.monotonic() - started < 5
    assert not lab.core.halted  # after = run


def test_a_missing_probe_is_an_infrastructure_error_naming_the_probes(lab):
    backend = PhysicalBackend("nucleo-f303re", {"probe": "hwutsim-gone", "serial": lab.console_path})
    outcome = backend.run(_request()[0])
    assert outcome.reason is StopReason.INFRASTRUCTURE
    assert "probe hwutsim-gone not found" in outcome.detail and UID in outcome.detail


def test_a_missing_serial_port_is_an_infrastructure_error(lab):
    backend = PhysicalBackend("nucleo-f303re", {"probe": UID, "serial": "/dev/hwut-no-such-port"})
    outcome = backend.run(_request()[0])
    assert outcome.reason is StopReason.INFRASTRUCTURE
    assert "serial port /dev/hwut-no-such-port cannot be opened" in outcome.detail


@pytest.mark.parametrize("name", ["fw_rtos", "blink"])
def test_firmware_flashed_through_pyocd_behaves_as_when_loaded(lab, name):
    """Code that arrives through the flash controller is watched like loaded code: an
    interrupt waiting behind BASEPRI/PRIMASK is taken right after the mask drops
    (fw_rtos' `after=1`), and a WFI with interrupts masked does not freeze the core."""
    expected = (BUILD.parent / "expected" / f"{name}.txt").read_bytes()
    backend = PhysicalBackend("nucleo-f303re", {"probe": UID, "serial": lab.console_path})
    # fw_rtos exits at 0.31 s of its time; wall-clock limits leave room for a loaded host
    request, log = _request(f"{name}.elf", "elf", limit=20 if name == "fw_rtos" else 1.5)
    outcome = backend.run(request)
    # fw_rtos ends through semihosting (exit 0) as on the sim; blink runs to the limit
    assert outcome.reason is (StopReason.EXIT if name == "fw_rtos" else StopReason.LIMIT), \
        outcome.detail
    assert bytes(log[:len(expected)]) == expected
