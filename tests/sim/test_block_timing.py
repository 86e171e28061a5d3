"""Opt-in block-granular timing: faster, deterministic, the same text; interrupts
and slice ends wait for the next translated block instead of the next instruction."""
from __future__ import annotations

import pytest

from hwut.sim.counter import InstructionCounter

from .conftest import expected, run_firmware

CASES = [("hello", 1), ("blink", 1), ("hal_clock", 0.6), ("float", 0.2), ("timers", 2)]


@pytest.mark.parametrize("name, limit", CASES)
def test_same_text_as_exact_timing(name, limit):
    block = run_firmware(name, limit, timing="block")
    assert block.output == expected(name)


@pytest.mark.parametrize("name, limit", [("hello", 0.35), ("uart_irq", 0.03)])
def test_byte_times_stay_within_microseconds_of_exact(name, limit):
    kw = {"uart_input": b"hey\r", "input_at_s": 0.01}
    block = run_firmware(name, limit, timing="block", **kw)
    exact = run_firmware(name, limit, **kw)
    assert block.output == exact.output
    assert max(abs(a - b) for (a, _), (b, _) in zip(block.timeline, exact.timeline)) < 10e-6


def test_deterministic_run_to_run():
    a = run_firmware("fw_rtos", 0.1, timing="block")
    b = run_firmware("fw_rtos", 0.1, timing="block")
    assert a.output == b.output and a.timeline == b.timeline
    assert a.result.instructions == b.result.instructions


@pytest.mark.parametrize("name, limit", [("uart_irq", 0.02), ("float", 0.03)])
def test_python_block_counter_matches_the_native_one(name, limit):
    kw = {"timing": "block", "uart_input": b"ok\r", "input_at_s": 0.01}
    native = run_firmware(name, limit, **kw)
    python = run_firmware(name, limit, native=False, **kw)
    assert native.output == python.output and native.timeline == python.timeline
    assert native.result.instructions == python.result.instructions


def test_unknown_timing_is_refused():
    from unicorn import UC_ARCH_ARM, UC_MODE_MCLASS, UC_MODE_THUMB, Uc
    with pytest.raises(ValueError, match="exact, block"):
        InstructionCounter(Uc(UC_ARCH_ARM, UC_MODE_THUMB | UC_MODE_MCLASS), timing="fast")
