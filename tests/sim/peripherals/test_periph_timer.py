"""Timers against RM0316: counting from virtual time, preloads, update/compare events."""
from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st
from periph_support import Bench, Line

from hwut.sim.peripherals.timer import Timer
from hwut.sim.soc.stm32f303 import soc_args

CR1, DIER, SR, EGR, CCMR1, CCER, CNT, PSC, ARR, RCR, CCR1 = (
    0x00, 0x0C, 0x10, 0x14, 0x18, 0x20, 0x24, 0x28, 0x2C, 0x30, 0x34)
CEN, UDIS, URS, OPM, DIR, ARPE = 1, 2, 4, 8, 16, 128


def make(name: str = "TIM6", hz: int = 72_000_000, **tree: int) -> tuple[Timer, Bench, Line]:
    bench = Bench(hz, **tree)
    line = Line()
    t = Timer(name, 0x4000_1000, clock=bench.clock, clocks=bench.clocks,
              **soc_args(name), irq=line)
    return t, bench, line


def test_reset_values() -> None:
    t6, *_ = make("TIM6")
    t2, *_ = make("TIM2")
    assert t6.read(ARR, 4) == 0xFFFF and t2.read(ARR, 4) == 0xFFFF_FFFF
    assert t6.read(CNT, 4) == 0 and t6.read(SR, 4) == 0 and t6.read(PSC, 4) == 0


def test_tim6_one_millisecond_update_interrupt() -> None:
    t, bench, line = make("TIM6")
    t.write(PSC, 4, 7199)
    t.write(ARR, 4, 9)
    t.write(EGR, 4, 1)                 # UG loads PSC and sets UIF
    assert t.read(SR, 4) & 1
    t.write(SR, 4, 0)
    t.write(DIER, 4, 1)
    t.write(CR1, 4, CEN)
    bench.advance(72_000 - 1)
    assert not line.level
    assert t.read(CNT, 4) == 9
    bench.advance(1)
    assert line.level and t.read(SR, 4) & 1 and t.read(CNT, 4) == 0
    t.write(SR, 4, 0)
    assert not line.level
    bench.advance(72_000)
    assert line.level


def test_psc_takes_effect_at_the_next_update_only() -> None:
    t, bench, line = make("TIM7")
    t.write(ARR, 4, 99)
    t.write(PSC, 4, 9)                 # preloaded, not yet active
    t.write(DIER, 4, 1)
    t.write(CR1, 4, CEN)
    bench.advance(100)                 # first period at PSC=0
    assert line.level
    t.write(SR, 4, 0)
    bench.advance(999)
    assert not line.level and t.read(CNT, 4) == 99
    bench.advance(1)
    assert line.level


def test_arr_preload_with_arpe() -> None:
    t, bench, _ = make("TIM6")
    t.write(ARR, 4, 99)
    t.write(CR1, 4, CEN | ARPE)
    bench.advance(50)
    t.write(ARR, 4, 9)                 # buffered until the update at 100
    bench.advance(50)
    assert t.read(CNT, 4) == 0
    bench.advance(15)
    assert t.read(CNT, 4) == 5          # new ARR active: wraps at 10
    bench.advance(5)
    assert t.read(CNT, 4) == 0


def test_arr_without_preload_applies_now() -> None:
    t, bench, _ = make("TIM6")
    t.write(ARR, 4, 99)
    t.write(CR1, 4, CEN)
    bench.advance(50)
    t.write(ARR, 4, 59)
    bench.advance(10)
    assert t.read(CNT, 4) == 0 and t.read(SR, 4) & 1


def test_one_pulse_mode_stops_the_counter() -> None:
    t, bench, line = make("TIM6")
    t.write(ARR, 4, 9)
    t.write(DIER, 4, 1)
    t.write(CR1, 4, CEN | OPM)
    bench.advance(10)
    assert line.level
    assert not t.read(CR1, 4) & CEN
    bench.advance(100)
    assert t.read(CNT, 4) == 0


def test_polled_flag_without_interrupt_schedules_nothing() -> None:
    t, bench, _ = make("TIM2")
    t.write(ARR, 4, 999)
    t.write(CR1, 4, CEN)
    assert bench.clock.next_deadline() is None
    bench.advance(10_500)
    assert t.read(CNT, 4) == 500
    assert t.read(SR, 4) & 1            # updates happened, seen when read


def test_udis_and_urs() -> None:
    t, bench, _ = make("TIM6")
    t.write(CR1, 4, URS)
    t.write(EGR, 4, 1)
    assert not t.read(SR, 4) & 1        # URS: UG sets no UIF
    t.write(ARR, 4, 9)
    t.write(CR1, 4, CEN | UDIS)
    bench.advance(25)
    assert not t.read(SR, 4) & 1 and t.read(CNT, 4) == 5


def test_tim2_compare_interrupt() -> None:
    t, bench, line = make("TIM2")
    t.write(CCR1, 4, 500)
    t.write(DIER, 4, 1 << 1)            # CC1IE
    t.write(CR1, 4, CEN)
    bench.advance(499)
    assert not line.level
    bench.advance(1)
    assert line.level and t.read(SR, 4) & 2
    t.write(SR, 4, ~2 & 0xFFFF)
    t.write(CCR1, 4, 1500)              # an Embassy-style driver moves the alarm
    bench.advance(999)
    assert not line.level
    bench.advance(1)
    assert line.level


def test_down_counting() -> None:
    t, bench, line = make("TIM3")
    t.write(ARR, 4, 9)
    t.write(CR1, 4, DIR)
    t.write(EGR, 4, 1)                  # UG: a down-counter starts at ARR
    t.write(SR, 4, 0)
    assert t.read(CNT, 4) == 9
    t.write(DIER, 4, 1)
    t.write(CR1, 4, DIR | CEN)
    bench.advance(3)
    assert t.read(CNT, 4) == 6
    bench.advance(7)
    assert line.level and t.read(CNT, 4) == 9


def test_timer_clock_follows_the_clock_tree() -> None:
    t, bench, line = make("TIM6", 72_000_000, TIMCLK1=72_000_000)
    t.write(ARR, 4, 99)
    t.write(DIER, 4, 1)
    t.write(CR1, 4, CEN)
    bench.advance(50)
    bench.clocks.update(TIMCLK1=36_000_000)  # one tick is now two core cycles
    assert t.read(CNT, 4) == 50
    bench.advance(99)
    assert not line.level and t.read(CNT, 4) == 99
    bench.advance(1)
    assert line.level


def test_repetition_counter_tim1() -> None:
    bench = Bench(72_000_000)
    up = Line()
    t = Timer("TIM1", 0x4001_2C00, clock=bench.clock, clocks=bench.clocks,
              **soc_args("TIM1"), irq_up=up)
    t.write(ARR, 4, 9)
    t.write(RCR, 4, 2)
    t.write(EGR, 4, 1)
    t.write(SR, 4, 0)
    t.write(DIER, 4, 1)
    t.write(CR1, 4, CEN)
    bench.advance(29)
    assert not up.level
    bench.advance(1)
    assert up.level


def test_long_idle_stretch_is_jumped() -> None:
    t, bench, _ = make("TIM16")
    t.write(ARR, 4, 9)
    t.write(CR1, 4, CEN)
    bench.advance(10**12 + 3)
    assert t.read(CNT, 4) == 3 and t.read(SR, 4) & 1


def test_input_capture() -> None:
    t, bench, line = make("TIM2")
    t.write(CCMR1, 4, 0b01)             # CC1S = 01: input TI1
    t.write(CCER, 4, 1)                 # CC1E, rising edge
    t.write(DIER, 4, 2)
    t.write(CR1, 4, CEN)
    bench.advance(1234)
    t.input_edge(1, rising=False)
    assert not line.level
    t.input_edge(1, rising=True)
    assert line.level and t.read(SR, 4) & 2
    bench.advance(10)
    t.input_edge(1, rising=True)
    assert t.read(SR, 4) & (1 << 9)     # CC1OF: the previous capture was not read
    assert t.read(CCR1, 4) == 1244
    assert not t.read(SR, 4) & 2        # reading CCR1 cleared CC1IF


def test_uifremap_copies_uif_into_cnt() -> None:
    t, bench, _ = make("TIM6")
    t.write(ARR, 4, 9)
    t.write(CR1, 4, CEN | (1 << 11))
    bench.advance(12)
    assert t.read(CNT, 4) == (1 << 31) | 2


@settings(max_examples=100, deadline=None)
@given(st.integers(1, 200), st.integers(0, 20), st.lists(st.integers(0, 5000), max_size=10))
def test_cnt_matches_a_model(arr: int, psc: int, steps: list[int]) -> None:
    t, bench, _ = make("TIM3")
    t.write(ARR, 4, arr)
    t.write(PSC, 4, psc)
    t.write(EGR, 4, 1)
    t.write(CR1, 4, CEN)
    t0 = bench.counter.n
    for dt in steps:
        bench.advance(dt)
        elapsed = bench.counter.n - t0
        assert t.read(CNT, 4) == (elapsed // (psc + 1)) % (arr + 1)


@settings(max_examples=150, deadline=None)
@given(st.sampled_from(["TIM1", "TIM2", "TIM3", "TIM6", "TIM15", "TIM16"]),
       st.lists(st.tuples(st.integers(0, 0x5C).map(lambda x: x & ~3),
                          st.integers(0, 0xFFFF_FFFF), st.integers(0, 100_000)), max_size=25))
def test_any_sequence_never_raises(name: str, ops: list[tuple[int, int, int]]) -> None:
    t, bench, _ = make(name)
    for off, value, dt in ops:
        t.write(off, 4, value)
        bench.advance(dt)
        t.read(off, 4)
        t.input_edge(1, True)


class Isr:
    """An interrupt handler: records when the line rises and clears the flags, as firmware does."""

    def __init__(self, bench: Bench) -> None:
        self.bench = bench
        self.timer: Timer | None = None
        self.level = False
        self.at: list[int] = []

    def set(self, level: bool) -> None:
        self.level = bool(level)
        if level and self.timer is not None:
            self.at.append(self.bench.counter.n)
            self.timer.write(SR, 4, 0)


@settings(max_examples=120, deadline=None)
@given(st.integers(1, 60), st.integers(0, 6), st.integers(0, 3), st.booleans(),
       st.integers(0, 500))
def test_update_interrupts_at_the_computed_cycles(arr: int, psc: int, rcr: int, down: bool,
                                                   start: int) -> None:
    bench = Bench(72_000_000)
    isr = Isr(bench)
    t = Timer("TIM1", 0x4001_2C00, clock=bench.clock, clocks=bench.clocks,
              **soc_args("TIM1"), irq=isr)
    isr.timer = t
    bench.advance(start)
    t.write(ARR, 4, arr)
    t.write(PSC, 4, psc)
    t.write(RCR, 4, rcr)
    t.write(CR1, 4, DIR if down else 0)
    t.write(EGR, 4, 1)
    t.write(SR, 4, 0)
    t.write(DIER, 4, 1)
    t0 = bench.counter.n
    t.write(CR1, 4, CEN | (DIR if down else 0))
    period = (arr + 1) * (psc + 1) * (rcr + 1)
    bench.advance(5 * period)
    assert isr.at == [t0 + k * period for k in range(1, 6)]


@settings(max_examples=120, deadline=None)
@given(st.integers(1, 60), st.integers(0, 6), st.integers(0, 70))
def test_compare_interrupts_at_the_computed_cycles(arr: int, psc: int, ccr: int) -> None:
    bench = Bench(72_000_000)
    isr = Isr(bench)
    t = Timer("TIM3", 0x4000_0400, clock=bench.clock, clocks=bench.clocks,
              **soc_args("TIM3"), irq=isr)
    isr.timer = t
    t.write(ARR, 4, arr)
    t.write(PSC, 4, psc)
    t.write(CCR1, 4, ccr)
    t.write(EGR, 4, 1)
    t.write(SR, 4, 0)
    t.write(DIER, 4, 2)
    t.write(CR1, 4, CEN)
    tick, full = psc + 1, (arr + 1) * (psc + 1)
    bench.advance(4 * full)
    if ccr > arr:
        expected: list[int] = []
    elif ccr == 0:
        expected = [k * full for k in range(1, 5)]
    else:
        expected = [ccr * tick + k * full for k in range(4) if ccr * tick + k * full <= 4 * full]
    assert isr.at == expected


@settings(max_examples=150, deadline=None)
@given(st.integers(1, 20), st.integers(0, 3), st.integers(0, 3), st.integers(0, 100_000))
def test_lazy_catch_up_keeps_the_phase(arr: int, psc: int, rcr: int, idle: int) -> None:
    """After a long stretch nobody looked at, the next update comes when it should."""
    bench = Bench(72_000_000)
    isr = Isr(bench)
    t = Timer("TIM1", 0x4001_2C00, clock=bench.clock, clocks=bench.clocks,
              **soc_args("TIM1"), irq=isr)
    t.write(ARR, 4, arr)
    t.write(PSC, 4, psc)
    t.write(RCR, 4, rcr)
    t.write(EGR, 4, 1)
    t.write(CR1, 4, CEN)
    bench.advance(idle)
    isr.timer = t
    t.write(SR, 4, 0)
    t.write(DIER, 4, 1)
    period = (arr + 1) * (psc + 1) * (rcr + 1)
    bench.advance(2 * period)
    first = (idle // period + 1) * period
    assert isr.at[:2] == [first, first + period]


def test_counter_is_blocked_while_arr_is_zero() -> None:
    t, bench, _ = make("TIM3")
    t.write(ARR, 4, 0)
    t.write(CR1, 4, CEN)
    bench.advance(100)
    assert t.read(CNT, 4) == 0 and not t.read(SR, 4) & 1
    t.write(ARR, 4, 9)
    bench.advance(5)
    assert t.read(CNT, 4) == 5


def test_stable_until_tells_the_read_cache_when_lazy_flags_change() -> None:
    t, bench, _ = make("TIM6")
    t.write(PSC, 4, 9)
    t.write(ARR, 4, 99)
    t.write(EGR, 4, 1)
    t.write(SR, 4, 0)
    t.write(CR1, 4, CEN)                   # no interrupt: no clock event at all
    assert bench.clock.next_deadline() is None
    bench.advance(15)
    assert t.stable_until(SR) == 1000      # UIF rises at the overflow
    assert t.stable_until(CNT) == 20       # CNT moves at the next tick
    bench.advance(985)
    assert t.read(SR, 4) & 1
    t.write(CR1, 4, 0)
    from hwut.sim.regs import STABLE
    assert t.stable_until(CNT) == STABLE
