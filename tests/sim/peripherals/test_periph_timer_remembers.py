"""The timer remembers what it computed (counting stretches, wanted events, interrupt
flags, the next wrap across a write, a write that changed nothing): it must answer
exactly as a timer that decides everything afresh at every access."""
from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st
from periph_support import Bench

from hwut.sim.peripherals.timer import Timer
from hwut.sim.soc.stm32f303 import soc_args

CR1, DIER, SR, EGR, CCMR1, CCER, CNT, PSC, ARR, RCR, CCR1, CCR2 = (
    0x00, 0x0C, 0x10, 0x14, 0x18, 0x20, 0x24, 0x28, 0x2C, 0x30, 0x34, 0x38)


class TimedLine:
    """An interrupt output recording when its level changed."""

    def __init__(self, bench: Bench) -> None:
        self.bench = bench
        self.level = False
        self.changes: list[tuple[int, bool]] = []

    def set(self, level: bool) -> None:
        level = bool(level)
        if level != self.level:
            self.level = level
            self.changes.append((self.bench.counter.n, level))


class Afresh(Timer):
    """The same timer with everything it remembers forgotten before each access and
    event, and the next wrap found again after every write (as it was decided before
    the timer remembered anything)."""

    def _forget(self) -> None:
        self._segments.clear()
        self._wants.clear()
        self._irq_pending = -1
        self._settled = False

    def read(self, offset: int, size: int) -> int:
        self._forget()
        return super().read(offset, size)

    def write(self, offset: int, size: int, value: int) -> None:
        self._forget()
        super().write(offset, size, value)
        self._quiet_until = 0

    def _on_event(self) -> None:
        self._forget()
        super()._on_event()


def _make(cls: type[Timer], name: str) -> tuple[Timer, Bench, TimedLine]:
    bench = Bench(72_000_000)
    line = TimedLine(bench)
    return cls(name, 0x4000_0000, clock=bench.clock, clocks=bench.clocks, **soc_args(name),
               irq=line), bench, line


REGS = {CR1: st.sampled_from([0, 1, 1 | 128, 1 | 8, 1 | 2, 1 | 16, 1 | 4]),
        DIER: st.integers(0, 0x1F), SR: st.integers(0, 0x1F), EGR: st.integers(0, 7),
        CCMR1: st.sampled_from([0, 1, 8, 0x100, 0x808]), CNT: st.integers(0, 60),
        PSC: st.integers(0, 3), ARR: st.integers(0, 50), CCR1: st.integers(0, 60),
        CCR2: st.integers(0, 60), CCER: st.sampled_from([0, 1, 3, 0x11])}
OPS = st.one_of(
    st.tuples(st.just("advance"), st.integers(1, 400)),
    st.tuples(st.just("read"), st.sampled_from(sorted(REGS))),
    st.sampled_from(sorted(REGS)).flatmap(
        lambda reg: st.tuples(st.just("write"), st.just(reg), REGS[reg])))


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(["TIM2", "TIM3", "TIM1", "TIM15", "TIM16", "TIM6"]),
       st.lists(OPS, max_size=40))
def test_remembering_changes_no_answer(name: str, ops: list[tuple]) -> None:
    fast, fast_bench, fast_line = _make(Timer, name)
    ref, ref_bench, ref_line = _make(Afresh, name)
    for op in ops:
        for t, bench in ((fast, fast_bench), (ref, ref_bench)):
            if op[0] == "advance":
                bench.advance(op[1])
            elif op[0] == "write" and op[1] in t._regs:
                t.write(op[1], 4, op[2])
        if op[0] == "read" and op[1] in fast._regs:
            assert fast.read(op[1], 4) == ref.read(op[1], 4), op
        assert fast_bench.clock.next_deadline() == ref_bench.clock.next_deadline(), op
        assert fast_line.changes == ref_line.changes, op
    for off in sorted(fast._regs):
        assert fast.read(off, 4) == ref.read(off, 4)
    assert fast.stable_until(SR) == ref.stable_until(SR)
