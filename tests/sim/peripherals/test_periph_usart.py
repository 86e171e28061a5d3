"""USART against RM0316: flags, pacing in virtual time, receive and overrun, interrupts."""
from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st
from periph_support import Bench, Line

from hwut.sim.peripherals.usart import Usart

CR1, CR2, CR3, BRR, RQR, ISR, ICR, RDR, TDR = 0x00, 0x04, 0x08, 0x0C, 0x18, 0x1C, 0x20, 0x24, 0x28
UE, RE, TE, RXNEIE, TCIE, TXEIE, IDLEIE = 1, 4, 8, 1 << 5, 1 << 6, 1 << 7, 1 << 4
ORE, IDLE, RXNE, TC, TXE, TEACK, REACK = 8, 16, 32, 64, 128, 1 << 21, 1 << 22
CHAR = 10 * 313 * 2                 # 10 bits x BRR 313 at PCLK1 36 MHz, HCLK 72 MHz


def make(**kw) -> tuple[Usart, Bench, list[tuple[int, bytes]], Line]:
    bench = Bench(72_000_000, PCLK1=36_000_000, PCLK2=72_000_000)
    out: list[tuple[int, bytes]] = []
    line = Line()
    u = Usart("USART2", 0x4000_4400, clock=bench.clock, clocks=bench.clocks, irq=line,
              tx=lambda b: out.append((bench.counter.n, b)), **kw)
    return u, bench, out, line


def enable(u: Usart, bench: Bench, extra: int = 0) -> None:
    u.write(BRR, 4, 313)
    u.write(CR1, 4, UE | TE | RE | extra)
    bench.advance(CHAR)   # the idle frame sent when TE is set


def test_reset_values() -> None:
    u, *_ = make()
    assert u.read(ISR, 4) == 0xC0
    assert u.read(CR1, 4) == 0 and u.read(BRR, 4) == 0


def test_char_time_115200_at_36mhz() -> None:
    u, bench, *_ = make()
    u.write(BRR, 4, 313)
    assert u.char_cycles() == CHAR                 # 10*313/36e6 s in 72 MHz cycles
    u.write(CR2, 4, 0b10 << 12)                     # 2 stop bits
    assert u.char_cycles() == 11 * 313 * 2
    u.write(CR2, 4, 0)
    u.write(CR1, 4, 1 << 12)                        # M0: 9-bit word
    assert u.char_cycles() == 11 * 313 * 2
    u.write(CR1, 4, 1 << 15)                        # OVER8, BRR=0x271 -> USARTDIV 0x272
    u.write(BRR, 4, 0x271)
    assert u.char_cycles() == -(-20 * 0x272 * 72_000_000 // (4 * 36_000_000))


def test_teack_reack_follow_te_re_when_enabled() -> None:
    u, bench, *_ = make()
    u.write(CR1, 4, TE | RE)
    assert not u.read(ISR, 4) & (TEACK | REACK)
    u.write(CR1, 4, UE | TE | RE)
    assert u.read(ISR, 4) & TEACK and u.read(ISR, 4) & REACK
    u.write(CR1, 4, UE)
    assert not u.read(ISR, 4) & (TEACK | REACK)


def test_transmit_is_paced_with_one_tdr_and_one_shift_register() -> None:
    u, bench, out, _ = make()
    enable(u, bench)
    t0 = bench.counter.n
    u.write(TDR, 4, ord("A"))
    isr = u.read(ISR, 4)
    assert isr & TXE and not isr & TC              # went straight to the shift register
    u.write(TDR, 4, ord("B"))
    assert not u.read(ISR, 4) & TXE                # TDR full now
    bench.advance(CHAR - 1)
    assert out == []
    bench.advance(1)
    assert out == [(t0 + CHAR, b"A")]
    assert u.read(ISR, 4) & TXE and not u.read(ISR, 4) & TC
    bench.advance(CHAR)
    assert out[-1] == (t0 + 2 * CHAR, b"B")
    assert u.read(ISR, 4) & TC


def test_first_byte_waits_for_the_idle_frame() -> None:
    u, bench, out, _ = make()
    u.write(BRR, 4, 313)
    u.write(CR1, 4, UE | TE)
    u.write(TDR, 4, 0x55)
    assert not u.read(ISR, 4) & TXE
    bench.advance(2 * CHAR)
    assert out == [(2 * CHAR, b"U")]


def test_tdr_ignored_while_transmitter_off() -> None:
    u, bench, out, _ = make()
    u.write(TDR, 4, 0x41)
    bench.advance(10 * CHAR)
    assert out == [] and u.read(ISR, 4) & TXE


def test_tc_cleared_by_icr_and_interrupts() -> None:
    u, bench, out, line = make()
    enable(u, bench, TCIE)
    assert line.level                               # TC is 1 after reset
    u.write(ICR, 4, 1 << 6)
    assert not line.level
    u.write(TDR, 4, 1)
    bench.advance(CHAR)
    assert line.level
    u.write(CR1, 4, UE | TE | RE | TXEIE)
    assert line.level                               # TXE=1, TXEIE


def test_receive_rxne_and_overrun() -> None:
    u, bench, out, line = make()
    enable(u, bench, RXNEIE)
    u.receive(b"xyz")
    bench.advance(CHAR)
    assert u.read(ISR, 4) & RXNE and line.level
    assert u.read(RDR, 4) == ord("x")
    assert not u.read(ISR, 4) & RXNE and not line.level
    bench.advance(2 * CHAR)                         # y and z arrive; z overruns
    assert u.read(ISR, 4) & ORE and line.level
    assert u.read(RDR, 4) == ord("y")
    assert line.level                               # ORE keeps it up
    u.write(ICR, 4, 1 << 3)
    assert not line.level and not u.read(ISR, 4) & ORE


def test_idle_after_the_last_byte() -> None:
    u, bench, *_ = make()
    enable(u, bench, IDLEIE)
    u.receive(b"a")
    bench.advance(CHAR)
    assert not u.read(ISR, 4) & IDLE
    bench.advance(CHAR)
    assert u.read(ISR, 4) & IDLE
    u.write(ICR, 4, 1 << 4)
    assert not u.read(ISR, 4) & IDLE


def test_input_waits_for_the_receiver_and_rxfrq_flushes() -> None:
    u, bench, *_ = make()
    u.receive(b"q")
    bench.advance(5 * CHAR)
    assert not u.read(ISR, 4) & RXNE
    enable(u, bench)
    assert u.read(ISR, 4) & RXNE
    u.write(RQR, 4, 1 << 3)
    assert not u.read(ISR, 4) & RXNE


def test_dma_tx_request_when_tdr_empties() -> None:
    calls: list[int] = []
    u, bench, out, _ = make(dma_tx_request=lambda: calls.append(1))
    enable(u, bench)
    u.write(CR3, 4, 1 << 7)                        # DMAT with TXE already set
    assert calls == [1]
    u.write(TDR, 4, 1)                             # goes to the shift register: TXE again
    assert calls == [1, 1]


def test_baud_follows_the_clock_tree() -> None:
    u, bench, *_ = make()
    u.write(BRR, 4, 69)                            # 115200 at 8 MHz
    bench.clocks.update(HCLK=8_000_000, PCLK1=8_000_000)
    assert u.char_cycles() == 690


@settings(max_examples=150, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 0x2C).map(lambda x: x & ~3), st.integers(0, 0xFFFF_FFFF),
                          st.integers(0, 3000)), max_size=25))
def test_any_sequence_never_raises(ops: list[tuple[int, int, int]]) -> None:
    u, bench, *_ = make()
    u.receive(b"hello")
    for off, value, dt in ops:
        u.write(off, 4, value)
        u.read(off, 4)
        bench.advance(dt)


def test_isr_is_stable_and_rdr_reads_are_not() -> None:
    # ISR changes only at events, writes or an RDR read; the RDR read has a side
    # effect, so it reports no horizon (the machine then drops cached reads)
    u, bench, *_ = make()
    enable(u, bench)
    u.receive(b"k")
    bench.advance(CHAR)
    assert u.stable_until(ISR) is not None
    assert u.stable_until(RDR) is None
    u.read(RDR, 4)
    assert not u.read(ISR, 4) & (1 << 5)        # RXNE cleared by the read
