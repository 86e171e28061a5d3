"""Writes the model says change nothing, answered by the native read cache by doing
nothing (``NativeReadCache.quiet``, ``Timer.quiet_writes``): Mbed's TIM2 interrupt
handler clears CC1IF twice and rewrites DIER with its own value; the second clear
and the rewrite never reach Python, and the run is the one they give when they do. With the timer's compare path in C
(sim/native/tim.c) its handler takes these writes before the quiet ones are looked
at: these tests hold the quiet writes with the timer's writes in Python."""
from __future__ import annotations

import pytest

from hwut.sim.machine import Machine

from .conftest import expected, run_firmware
from .test_line_at_cycle import RTX, _state, _symbol, _word


def test_the_handlers_second_clear_and_dier_rewrite_are_answered_natively():
    r = run_firmware(RTX, 0.32, native_timers=False)
    assert r.uart == expected(RTX)
    events = _word(r.machine, _symbol(RTX, "events"))
    assert events == 1279
    # two per interrupt, once the timer's declarations are seen to be used: its set-up
    # writes found none, so it declared only every 8th write until the 2nd interrupt
    assert r.machine.read_cache.quiet_hits == 2 * events - 1


@pytest.mark.parametrize("machine_args", [{}, {"precharge": False}],
                         ids=["precharged", "counted"])
def test_the_run_is_the_one_the_model_gives(monkeypatch, machine_args):
    quiet = run_firmware(RTX, 0.32, native_timers=False, **machine_args)
    monkeypatch.setattr(Machine, "_declare_quiet_writes", lambda self, p: None)
    every = run_firmware(RTX, 0.32, native_timers=False, **machine_args)
    assert every.machine.read_cache.quiet_hits == 0
    assert (quiet.result.instructions, quiet.result.slept_cycles) == \
        (every.result.instructions, every.result.slept_cycles)
    assert quiet.timeline == every.timeline
    assert _state(quiet.machine) == _state(every.machine)
