"""What the read cache answers without asking the model at the read: the reads a model
says ahead of time after an access (``read_backs``: the CCR1 just written, TIM2's SR
up to and past its next compare match, the ADC's ISR and CR after ADSTART and after a
DR read), CNT counted until the next wrap across the compare matches, and reads held
across SysTick's wraps with exact timing. Mbed's us-ticker handler and AnalogIn then
reach Python only where they change the model (SR's clear, CCR1's write, ADSTART, the
DR read that clears EOC), and the run is the one the model gives when every read
reaches it at the time it is made."""
from __future__ import annotations

import collections

import pytest

from hwut.sim.bus import Bus
from hwut.sim.machine import Machine
from hwut.sim.peripherals.adc import Adc
from hwut.sim.peripherals.timer import Timer

from .conftest import expected, run_firmware
from .test_line_at_cycle import RTX, _state, _symbol, _word

ISR, ADC_CR, DR = 0x5000_0000, 0x5000_0008, 0x5000_0040
DIER, SR, CNT, CCR1 = 0x4000_000C, 0x4000_0010, 0x4000_0024, 0x4000_0034


def _counted(monkeypatch) -> tuple[collections.Counter[int], collections.Counter[int]]:
    """Python reads and writes by address (the read cache's misses and its writes
    that reach a model)."""
    reads: collections.Counter[int] = collections.Counter()
    writes: collections.Counter[int] = collections.Counter()
    cached_read, cached_write = Bus._cached_read, Bus.cached_write

    def read(self: Bus, address: int, size: int) -> int:
        reads[address] += 1
        return cached_read(self, address, size)

    def write(self: Bus, address: int, size: int, value: int) -> None:
        writes[address] += 1
        cached_write(self, address, size, value)

    monkeypatch.setattr(Bus, "_cached_read", read)
    monkeypatch.setattr(Bus, "cached_write", write)
    return reads, writes


def test_only_the_accesses_that_change_the_model_reach_python(monkeypatch):
    reads, writes = _counted(monkeypatch)
    # the timer's writes and the ADC in Python (sim/native/tim.c and adc.c take them)
    r = run_firmware(RTX, 0.32, native_timers=False, native_adc=False)
    assert r.uart == expected(RTX)
    events = _word(r.machine, _symbol(RTX, "events"))
    conversions = writes[ADC_CR] - 4       # ADVREGEN, ADCAL, ADEN and the 0 before
    assert (events, conversions) == (1279, 1532)
    # each conversion: ADSTART written and DR read (which clears EOC) in Python; CR's
    # read before ADSTART and ISR's polling for EOC are answered by the cache (EOC's
    # arrival a step at the conversion's end), but for start-up's few CR reads
    assert (reads[DR], reads[ADC_CR], reads[ISR]) == (conversions, 10, 0)
    # each interrupt: SR's clear and CCR1's write in Python (the second clear and the
    # DIER rewrite are quiet writes); SR's and CCR1's reads in the handler are what
    # the last CCR1 write declared, but where a clock event (the UART's, while main
    # prints its three reports) came between; CNT counted by the cache from wrap to wrap
    assert (writes[SR], writes[CCR1]) == (events + 3, events + 1)
    assert (reads[SR], reads[CCR1], reads[DIER], reads[CNT]) == (61, 61, 62, 15)


def _as_before(monkeypatch) -> None:
    """Every read reaches the model at the time it is made (no read-backs, CNT's ramp
    to the next match only, every cached read ended at SysTick's wrap)."""
    monkeypatch.setattr(Timer, "read_backs", lambda self, offset: ())
    monkeypatch.setattr(Adc, "read_backs", lambda self, offset: ())
    ramp = Timer.ramp

    def to_the_match(self: Timer, offset: int) -> tuple[int, int, int, int] | None:
        r = ramp(self, offset)
        return None if r is None else (min(r[0], self._quiet_until), *r[1:])

    monkeypatch.setattr(Timer, "ramp", to_the_match)

    def horizon(self: Machine) -> int | None:
        nxt, tick = self.clock.next_deadline(), self.exc.systick_next
        if tick is None:
            return nxt
        return tick if nxt is None else min(nxt, tick)

    monkeypatch.setattr(Machine, "_read_horizon", horizon)


@pytest.mark.parametrize("machine_args", [{}, {"precharge": False}],
                         ids=["precharged", "counted"])
def test_the_run_is_the_one_the_model_gives_at_each_read(monkeypatch, machine_args):
    ahead = run_firmware(RTX, 0.32, native_adc=False, **machine_args)
    _as_before(monkeypatch)
    every = run_firmware(RTX, 0.32, native_adc=False, **machine_args)
    assert every.machine.read_cache.misses > 3 * ahead.machine.read_cache.misses
    assert (ahead.result.instructions, ahead.result.slept_cycles) == \
        (every.result.instructions, every.result.slept_cycles)
    assert ahead.timeline == every.timeline
    assert _state(ahead.machine) == _state(every.machine)
