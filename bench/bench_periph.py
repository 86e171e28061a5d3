"""Register access costs of the models firmware polls, as figures (never asserted).

Run ``python bench/bench_periph.py``. Each figure is the best of several runs of
a loop of bus accesses on one model, in nanoseconds per access and as a ratio to
the reference measured in the same run: a write to a plain read-write register
(USART BRR, no callback) through the same ``Peripheral.write``. Time moves a few
cycles between accesses, as it does between a firmware's polls, so the timer's
lazy catch-up (``_sync``) is part of what is measured.
"""
from __future__ import annotations

import sys
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from hwut.sim.peripherals.bxcan import BxCan
from hwut.sim.peripherals.exti import Exti
from hwut.sim.peripherals.irq import NoIrq
from hwut.sim.peripherals.rtc import Rtc
from hwut.sim.peripherals.timer import Timer
from hwut.sim.peripherals.usart import Usart
from hwut.sim.signals import ClockTree
from hwut.sim.soc.stm32f303 import STM32F303RE
from hwut.sim.vclock import VirtualClock

N = 20_000
REPEATS = 5
HZ = 72_000_000


class _Counter:
    def __init__(self) -> None:
        self.n = 0

    def cycles(self) -> int:
        return self.n


def _base(name: str) -> int:
    return next(p.base for p in STM32F303RE.peripherals if p.name == name)


def _setup() -> dict[str, Callable[[], None]]:
    counter = _Counter()
    clock = VirtualClock(counter, HZ)
    clocks = ClockTree(HSI=8_000_000, SYSCLK=HZ, HCLK=HZ, PCLK1=HZ // 2, PCLK2=HZ,
                       TIMCLK1=HZ, TIMCLK2=HZ)
    usart = Usart("USART2", _base("USART2"), clock=clock, clocks=clocks)
    tim2 = Timer("TIM2", _base("TIM2"), clock=clock, clocks=clocks, kind="general32",
                 irq=NoIrq())
    tim2.write(0x28, 4, 71)            # PSC: 1 MHz
    tim2.write(0x2C, 4, 999)           # ARR: 1 ms
    tim2.write(0x0C, 4, 1)             # UIE: the update is a scheduled event
    tim2.write(0x00, 4, 1)             # CEN
    exti = Exti("EXTI", _base("EXTI"), irq_of_line={0: 6, 1: 7}, irqs={6: NoIrq(), 7: NoIrq()})
    exti.write(0x00, 4, 3)             # IMR: lines 0, 1
    exti.write(0x08, 4, 3)             # RTSR
    can = BxCan("CAN", _base("CAN"), clock=clock, clocks=clocks)
    rtc = Rtc("RTC", _base("RTC"), clock=clock, clocks=clocks)

    def step(fn: Callable[[], None]) -> Callable[[], None]:
        def once() -> None:
            counter.n += 7
            clock.run_due()
            fn()
        return once

    return {
        "reference: USART BRR write": step(lambda: usart.write(0x0C, 4, 625)),
        "TIM2 SR write (clear UIF)": step(lambda: tim2.write(0x10, 4, 0xFFFF_FFFE)),
        "TIM2 SR read": step(lambda: tim2.read(0x10, 4) and None),
        "TIM2 CNT read": step(lambda: tim2.read(0x24, 4) and None),
        "TIM2 CCR1 write": step(lambda: tim2.write(0x34, 4, 500)),
        "EXTI edge + PR write": step(lambda: (exti.line_edge(0, True), exti.write(0x14, 4, 1))
                                     and None),
        "EXTI edge, line not selected": step(lambda: exti.line_edge(5, True)),
        "EXTI IMR write": step(lambda: exti.write(0x00, 4, 3)),
        "CAN MSR read": step(lambda: can.read(0x04, 4) and None),
        "CAN MCR write (INRQ)": step(lambda: can.write(0x00, 4, 1)),
        "RTC TR read": step(lambda: rtc.read(0x00, 4) and None),
        "RTC ISR write": step(lambda: rtc.write(0x0C, 4, 0)),
    }


def measure(fn: Callable[[], None]) -> float:
    """Best nanoseconds per call over ``REPEATS`` loops of ``N`` calls."""
    best = float("inf")
    for _ in range(REPEATS):
        t = time.perf_counter()
        for _ in range(N):
            fn()
        best = min(best, time.perf_counter() - t)
    return best / N * 1e9


def main() -> None:
    cases = _setup()
    ref = None
    for name, fn in cases.items():
        ns = measure(fn)
        ref = ref or ns
        print(f"{name:32s} {ns:8.0f} ns/access  {ns / ref:5.2f}x reference")


if __name__ == "__main__":
    main()
