"""What only the sim backend does: faults, formats, console input, presses, its options.
The backend contract (streaming, limit, exit, cancel, cleanup) is tests/backends/
test_contract.py, run against every backend."""
from __future__ import annotations

import re
import threading
from pathlib import Path

import pytest

from hwut.backends.base import OptionError, RunRequest, StopReason
from hwut.backends.registry import load_backends
from hwut.backends.sim import SimBackend

BUILD = Path(__file__).resolve().parents[2] / "fixtures" / "build"


def request(name: str, limit: float, *, fmt: str = "elf", sink=None, cancel=None,
            uart_input: bytes = b"") -> RunRequest:
    return RunRequest(BUILD / f"{name}.{fmt}", fmt, "nucleo-f303re", limit,
                      sink or (lambda data: None), cancel or threading.Event(),
                      uart_input=uart_input)


def test_found_through_the_entry_point_group():
    assert load_backends()["sim"] is SimBackend


def test_exit_code_from_semihosting():
    out = bytearray()
    outcome = SimBackend("nucleo-f303re").run(request("semihost_exit", 5, sink=out.extend))
    assert outcome.reason is StopReason.EXIT and outcome.exit_code == 3
    assert out == b"semihosting: hello\nok\n"


def test_a_hardfault_is_an_outcome_not_an_infrastructure_error():
    out = bytearray()
    outcome = SimBackend("nucleo-f303re").run(request("fault", 0.05, sink=out.extend))
    assert outcome.reason is StopReason.FAULT
    assert "0x60000000" in outcome.detail
    assert b"HardFault CFSR=0x00008200" in out


@pytest.mark.parametrize("fmt", ["elf", "bin", "hex"])
def test_all_three_formats(fmt):
    out = bytearray()
    SimBackend("nucleo-f303re").run(request("blink", 0.3, fmt=fmt, sink=out.extend))
    assert out == b"tick 1 led=1\r\n"


def test_unreadable_image_is_an_infrastructure_error(tmp_path):
    bad = tmp_path / "x.elf"
    bad.write_bytes(b"\x7fELF garbage")
    outcome = SimBackend("nucleo-f303re").run(
        RunRequest(bad, "elf", "nucleo-f303re", 1, lambda d: None, threading.Event()))
    assert outcome.reason is StopReason.INFRASTRUCTURE and "ELF" in outcome.detail


def test_console_input_is_typed_not_burst():
    # echo prints its banner before it reads: a burst would overrun, typed input does not
    out = bytearray()
    SimBackend("nucleo-f303re").run(request("echo", 0.05, sink=out.extend, uart_input=b"ab\rc"))
    assert out == b"echo ready\r\nab\r\nc"


def test_button_presses_reach_the_firmware():
    out = bytearray()
    req = RunRequest(BUILD / "button.elf", "elf", "nucleo-f303re", 1.0, out.extend,
                     threading.Event(), presses=(("B1", 0.5, 0.7),))
    SimBackend("nucleo-f303re").run(req)
    assert re.fullmatch(rb"B1 idle=1\r\npressed at 49\d ms\r\nreleased at 69\d ms\r\n", out)


def test_a_board_with_its_own_name_names_its_model():
    out = bytearray()
    req = RunRequest(BUILD / "semihost_exit.elf", "elf", "lab-bench-3", 1, out.extend,
                     threading.Event())
    assert SimBackend("lab-bench-3").run(req).reason is StopReason.INFRASTRUCTURE
    outcome = SimBackend("lab-bench-3", {"model": "nucleo-f303re"}).run(req)
    assert outcome.exit_code == 3 and out == b"semihosting: hello\nok\n"


def test_block_timing_is_a_board_option():
    out = bytearray()
    outcome = SimBackend("nucleo-f303re", {"timing": "block"}).run(
        request("hello", 0.35, sink=out.extend))
    assert outcome.reason is StopReason.LIMIT
    assert out.startswith(b"HWUT hello from NUCLEO-F303RE\r\nSYSCLK=72000000\r\ncount=0\r\n")


def test_precharging_is_a_board_option_with_the_same_results():
    runs = []
    for options in ({}, {"precharge": False}):
        out = bytearray()
        outcome = SimBackend("nucleo-f303re", options).run(request("hello", 0.35, sink=out.extend))
        runs.append((outcome.reason, outcome.instructions, outcome.time_used_s, bytes(out)))
    assert runs[0] == runs[1] and runs[0][0] is StopReason.LIMIT


@pytest.mark.parametrize("options,message", [
    ({"precharge": "no"}, "option precharge must be true or false, not 'no'"),
    ({"timing": "fast"}, "option timing must be one of exact, block, not 'fast'"),
    ({"model": "nucleo-f999"}, "option model must be one of nucleo-f303re, stm32f3discovery"),
    ({"wall_factor": 10}, "unknown options of backend sim: wall_factor; it takes model, "),
])
def test_options_are_typed_and_checked(options, message):
    assert SimBackend.check_options({}) == {"model": None, "timing": "exact",
                                            "precharge": True, "trace_bus": False}
    with pytest.raises(OptionError, match=re.escape(message)):
        SimBackend.check_options(options)
    with pytest.raises(OptionError, match=re.escape(message)):
        SimBackend("nucleo-f303re", options)


def test_every_fault_of_fault_bits_is_in_the_outcome():
    """The fault status fixture (tests/sim/test_fault_bits.py checks its bits): the
    outcome is a fault, its detail the first one, the infrastructure log names each
    fault the core took, by the handler that took it."""
    out = bytearray()
    outcome = SimBackend("nucleo-f303re").run(request("fault_bits", 0.5, sink=out.extend))
    assert outcome.reason is StopReason.FAULT
    assert outcome.detail.startswith("UsageFault: undefined instruction at 0x")
    assert out.endswith(b"fault_bits: done\r\n")
    log = outcome.infra_log.splitlines()
    # 7 BusFaults, but the two imprecise ones through the same store are the same line,
    # which the bounded log counts instead of repeating
    for kind, count in (("UsageFault", 8), ("BusFault", 6), ("MemManage", 4), ("HardFault", 6)):
        assert sum(line.startswith(f"{kind}: ") for line in log) == count, kind
