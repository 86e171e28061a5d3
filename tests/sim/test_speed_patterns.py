"""The speed patterns of issue 13 (``fixtures/src/speed_*.c``, timed in
``bench/bench_sim.py``) print exactly what they print on the board, and exact
timing gives the same run whichever way it counts: precharged (the default),
every instruction counted, with or without the idle-loop skip and the read
cache's counting registers (``fast_forward``).
"""
from __future__ import annotations

import pytest

from .conftest import expected, run_firmware

PRESSES = (("B1", 0.1, 0.2),)
#: name -> (limit_s, run_firmware keyword arguments); the limits fall after the last line.
PATTERNS = {
    "speed_rtx_ticker": (0.32, {}),
    "speed_blt_poll": (0.3, {"presses": PRESSES}),
    "speed_hal_delay": (0.32, {}),
    "speed_rtos_idle": (0.32, {}),
    "speed_gpio_poll": (0.3, {"presses": PRESSES}),
}


def _run(name: str, **machine_args):
    limit, kwargs = PATTERNS[name]
    return run_firmware(name, limit, **kwargs, **machine_args)


@pytest.mark.parametrize("name", sorted(PATTERNS))
def test_pattern_prints_exactly_the_expected_text(name):
    r = _run(name)
    assert r.uart == expected(name), r.uart.decode(errors="replace")


def test_rtos2_prints_through_the_itm_as_a_swv_console_shows_it():
    trace: list[bytes] = []
    r = run_firmware("speed_rtos2_itm", 0.32, trace_out=lambda port, data: trace.append(data))
    assert r.uart == b""
    assert b"".join(trace) == expected("speed_rtos2_itm")


def test_rtos2_without_a_debugger_says_itm_is_off():
    r = run_firmware("speed_rtos2_itm", 0.05)
    assert r.uart == b"rtos2: ITMENA is off: no debugger capturing SWV\r\n"


@pytest.mark.parametrize("name", sorted(PATTERNS))
@pytest.mark.parametrize("variant", [{"precharge": False}, {"fast_forward": False}])
def test_every_way_of_counting_gives_the_same_run(name, variant):
    """Instructions executed, cycles slept, the text and when each byte left."""
    ref, other = _run(name), _run(name, **variant)
    assert (other.result.instructions, other.result.slept_cycles) == \
        (ref.result.instructions, ref.result.slept_cycles)
    assert other.timeline == ref.timeline


def test_waiting_loops_are_skipped_not_run():
    """HAL_Delay's loop reads a tick in RAM: its turns are counted, not run, up to
    each SysTick; wait_us, polling the us-ticker's CNT (answered by the read cache),
    is skipped to the turn that reads its exit tick (``sim.rampskip``)."""
    r = _run("speed_hal_delay")
    assert r.machine.state.idle.turns > 1_000_000
    r = _run("speed_rtx_ticker")
    cache, ramp = r.machine.read_cache, r.machine.ramp
    assert cache is not None and cache.hits > cache.misses
    assert ramp is not None and ramp.skipped_turns > 1_000_000
