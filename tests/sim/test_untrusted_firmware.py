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


#: Every peripheral of the part as built (base, window size): each model gets random states.
_WINDOWS = sorted({(p.base, p.size) for p in Machine(board("nucleo-f303re")).peripherals.values()})


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(st.sampled_from(_WINDOWS), st.integers(0, 0xFFF),
                          st.sampled_from((1, 2, 4)), st.integers(0, 0xFFFF_FFFF)),
                max_size=30))
def test_any_peripheral_writes_leave_a_machine_that_runs(writes):
    """Whatever state firmware (or a debugger) leaves the peripherals in, the run ends
    with a result: pending interrupts, odd clocks and timers included, and no model
    raised, neither on the accesses nor in the clock events that follow."""
    m = Machine(board("nucleo-f303re"))
    m.load(image(b"\xfe\xe7", []))  # b .
    for (base, window), offset, size, value in writes:
        address = base + (offset % window & ~(size - 1))
        m.bus.write(address, size, value & ((1 << 8 * size) - 1))   # raises if a model does
        m.bus.read(address, size)
    result = m.run(0.001, wall_limit_s=20)
    assert result.cause in (StopCause.LIMIT, StopCause.LOCKUP)
    # a model that raised under the CPU is noted and answered with 0 so the run goes
    # on: none may
    assert m.bus.model_errors == 0, [n for n in m.notes if "failed in the model" in n]
    assert not [n for n in m.notes if "failed in the model" in n]
