"""bxCAN against RM0316: init/sleep handshakes, loopback transmit and receive, filters."""
from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st
from periph_support import Bench, Line

from hwut.sim.peripherals.bxcan import BxCan, CanFrame

MCR, MSR, TSR, RF0R, RF1R, IER, ESR, BTR = 0x00, 0x04, 0x08, 0x0C, 0x10, 0x14, 0x18, 0x1C
TI0R, TDT0R, TDL0R, TDH0R = 0x180, 0x184, 0x188, 0x18C
RI0R, RDT0R, RDL0R, RDH0R = 0x1B0, 0x1B4, 0x1B8, 0x1BC
FMR, FM1R, FS1R, FFA1R, FA1R, F0R1, F0R2 = 0x200, 0x204, 0x20C, 0x214, 0x21C, 0x240, 0x244
INRQ, SLEEP, NART = 1, 2, 16
INAK, SLAK = 1, 2


def make(**kw) -> tuple[BxCan, Bench, dict[str, Line]]:
    bench = Bench(72_000_000, PCLK1=36_000_000)
    lines = {k: Line() for k in ("irq_tx", "irq_rx0", "irq_rx1", "irq_sce")}
    can = BxCan("CAN", 0x4000_6400, clock=bench.clock, clocks=bench.clocks, **lines, **kw)
    return can, bench, lines


def hal_init(can: BxCan, btr: int) -> None:
    can.write(MCR, 4, 0x0001_0000)                  # leave sleep
    assert not can.read(MSR, 4) & SLAK
    can.write(MCR, 4, 0x0001_0000 | INRQ)
    assert can.read(MSR, 4) & INAK
    can.write(BTR, 4, btr)
    can.write(FMR, 4, can.read(FMR, 4) | 1)         # filter init
    can.write(FS1R, 4, 1)
    can.write(F0R1, 4, 0)
    can.write(F0R2, 4, 0)                           # mask 0: accept all
    can.write(FA1R, 4, 1)
    can.write(FMR, 4, can.read(FMR, 4) & ~1)
    can.write(MCR, 4, 0x0001_0000)                  # HAL_CAN_Start
    assert not can.read(MSR, 4) & INAK


def test_reset_values() -> None:
    can, *_ = make()
    assert can.read(MCR, 4) == 0x0001_0002 and can.read(MSR, 4) == 0x0000_0C02
    assert can.read(TSR, 4) == 0x1C00_0000 and can.read(BTR, 4) == 0x0123_0000
    assert can.read(FMR, 4) == 0x2A1C_0E01


def test_btr_only_in_init_mode() -> None:
    can, *_ = make()
    can.write(MCR, 4, 0)
    can.write(BTR, 4, 0x0025_0011)
    assert can.read(BTR, 4) == 0x0123_0000
    can.write(MCR, 4, INRQ)
    can.write(BTR, 4, 0x0025_0011)
    assert can.read(BTR, 4) == 0x0025_0011


def test_loopback_frame_comes_back_after_its_bit_time() -> None:
    can, bench, lines = make()
    btr = (1 << 31) | (1 << 30) | (1 << 20) | (12 << 16) | 1   # silent loopback, 16 tq, BRP 2
    hal_init(can, btr)
    can.write(IER, 4, 0b11)                          # TMEIE, FMPIE0
    can.write(TDT0R, 4, 2)
    can.write(TDL0R, 4, 0xBEEF)
    can.write(TI0R, 4, (0x123 << 21) | 1)
    assert not can.read(TSR, 4) & (1 << 26)          # mailbox 0 busy
    bit = can.bit_cycles()
    assert bit == 2 * 16 * 2                         # 2 tq x 16 per bit, 2 core cycles each
    bench.advance((47 + 16) * bit - 1)
    assert not lines["irq_rx0"].level
    bench.advance(1)
    tsr = can.read(TSR, 4)
    assert tsr & 0b11 == 0b11 and tsr & (1 << 26) and lines["irq_tx"].level
    assert can.read(RF0R, 4) & 3 == 1 and lines["irq_rx0"].level
    assert can.read(RI0R, 4) >> 21 == 0x123 and can.read(RDT0R, 4) & 0xF == 2
    assert can.read(RDL0R, 4) & 0xFFFF == 0xBEEF
    can.write(RF0R, 4, 1 << 5)                       # RFOM0
    assert can.read(RF0R, 4) & 3 == 0 and not lines["irq_rx0"].level
    can.write(TSR, 4, 1)                             # RQCP0
    assert not can.read(TSR, 4) & 0b11 and not lines["irq_tx"].level


def test_normal_mode_without_a_bus_is_an_ack_error() -> None:
    can, bench, _ = make()
    hal_init(can, 0)
    can.write(MCR, 4, 0x0001_0000 | NART)
    can.write(TI0R, 4, (0x10 << 21) | 1)
    bench.advance(10_000)
    assert (can.read(ESR, 4) >> 4) & 7 == 3
    assert can.read(TSR, 4) & 0b1001 == 0b1001       # RQCP0 and TERR0


def test_host_side_receive_through_a_filter() -> None:
    can, bench, lines = make(bus_tx=lambda f: None)
    hal_init(can, 0)
    can.write(FMR, 4, 1)
    can.write(F0R1, 4, 0x321 << 21)
    can.write(F0R2, 4, 0x7FF << 21)                  # exact standard id
    can.write(FFA1R, 4, 1)                           # to FIFO 1
    can.write(FMR, 4, 0)
    can.receive(CanFrame.standard(0x320, b"x"))
    assert can.read(RF1R, 4) & 3 == 0
    for i in range(4):
        can.receive(CanFrame.standard(0x321, bytes([i])))
    rf1 = can.read(RF1R, 4)
    assert rf1 & 3 == 3 and rf1 & (1 << 3) and rf1 & (1 << 4)   # full and overrun
    assert can.read(0x1C8, 4) & 0xFF == 0            # RDL1R: head of FIFO 1


@settings(max_examples=100, deadline=None)
@given(st.lists(st.tuples(st.sampled_from([MCR, MSR, TSR, RF0R, RF1R, IER, BTR, TI0R, TDT0R,
                                           0x190, 0x1A0, FMR, FS1R, FA1R, F0R1, RI0R]),
                          st.integers(0, 0xFFFF_FFFF), st.integers(0, 50_000)), max_size=30))
def test_any_sequence_never_raises(ops: list[tuple[int, int, int]]) -> None:
    can, bench, _ = make()
    for off, value, dt in ops:
        can.write(off, 4, value)
        bench.advance(dt)
        can.read(off, 4)
        can.receive(CanFrame.extended(value & 0x1FFF_FFFF, b"ab"))
