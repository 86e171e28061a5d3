"""Firmware is untrusted: whatever code runs, the machine ends with a result, never a
crash of the emulator or an exception out of ``run``."""
from __future__ import annotations

import struct

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hwut.sim.boards import board
from hwut.sim.machine import Machine, StopCause


def image(code: bytes, vectors: list[int]) -> list[tuple[int, bytes]]:
    table = struct.pack("<II", 0x2001_0000, 0x0800_0201) + b"".join(
        struct.pack("<I", v) for v in vectors)
    return [(0x0800_0000, table.ljust(0x200, b"\xff") + code)]


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(min_size=2, max_size=256),
       st.lists(st.integers(0, 0xFFFF_FFFF), max_size=14))
def test_random_code_always_ends_with_a_result(code, vectors):
    m = Machine(board("nucleo-f303re"))
    m.load(image(code, vectors))
    result = m.run(0.001, wall_limit_s=20)
    assert result.cause in (StopCause.LIMIT, StopCause.EXIT, StopCause.LOCKUP)
    assert 0 <= result.seconds <= 0.001 + 1e-9
    assert m.bus.model_errors == 0, [n for n in m.notes if "failed in the model" in n]


@settings(max_examples=40, deadline=None)
@given(st.lists(st.tuples(st.sampled_from([0x4000_0000, 0x4001_0000, 0x4002_0000, 0x4800_0000,
                                            0x5000_0000, 0xE000_E000, 0xE000_ED00]),
                          st.integers(0, 0x3FF), st.integers(0, 0xFFFF_FFFF)),
                max_size=20))
def test_any_peripheral_writes_leave_a_machine_that_runs(writes):
    """Whatever state firmware (or a debugger) leaves the peripherals in, the run ends
    with a result: pending interrupts, odd clocks and timers included."""
    m = Machine(board("nucleo-f303re"))
    m.load(image(b"\xfe\xe7", []))  # b .
    for base, offset, value in writes:
        m.bus.write(base + (offset & ~3), 4, value)
        m.bus.read(base + (offset & ~3), 4)
    result = m.run(0.001, wall_limit_s=20)
    assert result.cause in (StopCause.LIMIT, StopCause.LOCKUP)
    # a model that raised is noted and answered with 0 so the run goes on: none may
    assert m.bus.model_errors == 0, [n for n in m.notes if "failed in the model" in n]
