"""SYSCFG + EXTI against RM0316: edge selection, masking, pending, SWIER, GPIO routing."""
from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st
from periph_support import Bench, Line

from hwut.sim.peripherals.exti import Exti, connect_gpio_exti
from hwut.sim.peripherals.gpio import GpioPort
from hwut.sim.peripherals.syscfg import Syscfg
from hwut.sim.soc.stm32f303 import EXTI_DIRECT_LINES, EXTI_IRQ_OF_LINE

IMR, EMR, RTSR, FTSR, SWIER, PR = 0x00, 0x04, 0x08, 0x0C, 0x10, 0x14


def make() -> tuple[Exti, Syscfg, list[GpioPort], dict[int, Line]]:
    bench = Bench()
    lines = {irq: Line() for irq in EXTI_IRQ_OF_LINE.values()}
    exti = Exti("EXTI", 0x4001_0400, irq_of_line=EXTI_IRQ_OF_LINE,
                direct_lines=EXTI_DIRECT_LINES, irqs=lines)
    syscfg = Syscfg("SYSCFG", 0x4001_0000)
    ports = [GpioPort(f"GPIO{c}", 0x4800_0000 + 0x400 * i, clock=bench.clock,
                      clocks=bench.clocks, external={13: 1} if c == "C" else None)
             for i, c in enumerate("ABCDEF")]
    connect_gpio_exti(ports, syscfg, exti)
    return exti, syscfg, ports, lines


def test_reset_values() -> None:
    exti, syscfg, *_ = make()
    assert exti.read(IMR, 4) == 0x1F80_0000      # the direct lines 23..28 are unmasked
    assert exti.read(0x20, 4) == 0x0000_000C     # IMR2: and 34, 35
    assert exti.read(PR, 4) == 0 and exti.read(RTSR, 4) == 0
    assert syscfg.read(0x08, 4) == 0 and syscfg.read(0x00, 4) & 3 == 0


def test_b1_press_on_pc13_reaches_exti15_10() -> None:
    exti, syscfg, ports, lines = make()
    syscfg.write(0x14, 4, 0x2 << 4)              # EXTICR4: EXTI13 = port C
    exti.write(FTSR, 4, 1 << 13)
    exti.write(IMR, 4, exti.read(IMR, 4) | 1 << 13)
    ports[2].set_input(13, 0)                    # press: falling edge
    assert exti.read(PR, 4) == 1 << 13 and lines[40].level
    exti.write(PR, 4, 1 << 13)
    assert exti.read(PR, 4) == 0 and not lines[40].level
    ports[2].set_input(13, None)                 # release: rising, not selected
    assert exti.read(PR, 4) == 0


def test_other_port_on_the_same_pin_is_ignored() -> None:
    exti, syscfg, ports, lines = make()
    exti.write(RTSR, 4, 1 << 1)
    exti.write(IMR, 4, 1 << 1)
    ports[0].set_input(1, 1)                     # PA1: EXTICR1 selects port A at reset
    assert exti.read(PR, 4) == 1 << 1 and lines[7].level
    exti.write(PR, 4, 1 << 1)
    ports[1].set_input(1, 1)                     # PB1 is not selected
    assert exti.read(PR, 4) == 0


def test_masked_line_does_not_pend() -> None:
    exti, *_ = make()
    exti.write(RTSR, 4, 1)
    exti.line_edge(0, True)
    assert exti.read(PR, 4) == 0


def test_swier_triggers_once_and_clears_with_pr() -> None:
    exti, _, _, lines = make()
    exti.write(IMR, 4, 1 << 5)
    exti.write(SWIER, 4, 1 << 5)
    assert exti.read(PR, 4) == 1 << 5 and lines[23].level
    exti.write(PR, 4, 1 << 5)
    assert exti.read(SWIER, 4) == 0 and not lines[23].level


def test_irq_mapping() -> None:
    assert [EXTI_IRQ_OF_LINE[i] for i in range(5)] == [6, 7, 8, 9, 10]
    assert {EXTI_IRQ_OF_LINE[i] for i in range(5, 10)} == {23}
    assert {EXTI_IRQ_OF_LINE[i] for i in range(10, 16)} == {40}


def test_events_wake() -> None:
    seen: list[int] = []
    exti = Exti("EXTI", 0x4001_0400, irq_of_line=EXTI_IRQ_OF_LINE,
                direct_lines=EXTI_DIRECT_LINES, on_event=seen.append)
    exti.write(EMR, 4, 1 << 2)
    exti.write(RTSR, 4, 1 << 2)
    exti.line_edge(2, True)
    assert seen == [2] and exti.read(PR, 4) == 0


@settings(max_examples=150, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 0x38).map(lambda x: x & ~3), st.integers(0, 0xFFFF_FFFF),
                          st.integers(0, 40), st.booleans()), max_size=30))
def test_any_sequence_never_raises(ops: list[tuple[int, int, int, bool]]) -> None:
    exti, syscfg, *_ = make()
    for off, value, line, rising in ops:
        exti.write(off, 4, value)
        syscfg.write(off, 4, value)
        exti.line_edge(line, rising)
