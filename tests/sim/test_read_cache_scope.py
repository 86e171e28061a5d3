"""What the native read cache keeps across accesses (``Machine._forget_before_write``,
``Timer.changed_by_write``, ``local_effects``) and what it answers ahead of time
(``Adc.step``): Mbed's main loop polls the ADC's EOC and the us-ticker's CNT, and
its TIM2 handler reads SR, CCR1 and DIER. Each of these reaches Python only where
the model may have changed, and the run is the one every access through Python gives."""
from __future__ import annotations

import collections

import pytest

from hwut.sim.bus import Bus
from hwut.sim.machine import Machine
from hwut.sim.peripherals.adc import Adc
from hwut.sim.peripherals.timer import Timer

from .conftest import run_firmware
from .test_line_at_cycle import RTX, _state
from .test_write_allocate import _as_before

ISR, ADC_CR, DR = 0x5000_0000, 0x5000_0008, 0x5000_0040
DIER, SR, CNT, CCR1 = 0x4000_000C, 0x4000_0010, 0x4000_0024, 0x4000_0034


def test_python_reads_only_where_the_model_may_have_changed(monkeypatch):
    reads: collections.Counter[int] = collections.Counter()
    cached_read = Bus._cached_read

    def counted(self: Bus, address: int, size: int) -> int:
        reads[address] += 1
        return cached_read(self, address, size)

    monkeypatch.setattr(Bus, "_cached_read", counted)
    _as_before(monkeypatch)   # what the scope alone keeps (test_write_allocate: the rest)
    # the timer's writes and the ADC in Python (sim/native/tim.c and adc.c take them)
    r = run_firmware(RTX, 0.3, native_timers=False, native_adc=False)
    assert b"tick=200 events=805 reads=966 adc=2048\r\n" in r.uart
    # 1450 conversions by 0.3 s: EOC read in Python once each (its end is answered by the
    # cache), and once more while waiting for ADRDY at start-up; DR pops EOC
    assert (reads[ISR], reads[DR], reads[ADC_CR]) == (1451, 1450, 1454)
    # 1199 TIM2 interrupts: SR and CCR1 once each; DIER, unchanged, once per SysTick
    # tick or so; CNT after each compare match and each tick (a CCR1 write leaves it:
    # a match does not change CNT), not after each ADC access
    assert (reads[SR], reads[CCR1], reads[DIER], reads[CNT]) == (1199, 1199, 334, 1249)


@pytest.mark.parametrize("machine_args", [{}, {"precharge": False}],
                         ids=["precharged", "counted"])
def test_the_run_is_the_one_every_access_through_python_gives(monkeypatch, machine_args):
    # TIM2's and the ADC's accesses in Python, where the scope decides what is forgotten
    # (in C they refill the cache themselves: test_native_timer.py, test_adc_native.py)
    machine_args = {**machine_args, "native_timers": False, "native_adc": False}
    scoped = run_firmware(RTX, 0.32, **machine_args)
    monkeypatch.setattr(Machine, "_forget_before_write",
                        lambda self, p, offset: self.bus.invalidate())
    monkeypatch.setattr(Timer, "changed_by_write", lambda self, offset: None)
    monkeypatch.setattr(Adc, "step", lambda self, offset: None)
    every = run_firmware(RTX, 0.32, **machine_args)
    assert every.machine.read_cache.misses > scoped.machine.read_cache.misses
    assert (scoped.result.instructions, scoped.result.slept_cycles) == \
        (every.result.instructions, every.result.slept_cycles)
    assert scoped.timeline == every.timeline
    assert _state(scoped.machine) == _state(every.machine)
