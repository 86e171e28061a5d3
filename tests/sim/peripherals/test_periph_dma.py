"""DMA against RM0316: requests move items, CNDTR counts, HT/TC flags, circular, USART TX."""
from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st
from periph_support import Bench, Line

from hwut.sim.peripherals.dma import Dma
from hwut.sim.peripherals.usart import Usart

ISR, IFCR = 0x00, 0x04
CCR7, CNDTR7, CPAR7, CMAR7 = 0x80, 0x84, 0x88, 0x8C
CCR1, CNDTR1, CPAR1, CMAR1 = 0x08, 0x0C, 0x10, 0x14


class Bus:
    """SRAM at 0x20000000 plus USART2 at its address: what the DMA reaches."""

    def __init__(self, usart: Usart | None = None) -> None:
        self.ram = bytearray(256)
        self.usart = usart

    def read(self, addr: int, size: int) -> int:
        if self.usart is not None and 0x4000_4400 <= addr < 0x4000_4800:
            return self.usart.read(addr - 0x4000_4400, size)
        off = addr - 0x2000_0000
        if not 0 <= off < len(self.ram):
            raise MemoryError(hex(addr))
        return int.from_bytes(self.ram[off:off + size], "little")

    def write(self, addr: int, size: int, value: int) -> None:
        if self.usart is not None and 0x4000_4400 <= addr < 0x4000_4800:
            self.usart.write(addr - 0x4000_4400, size, value)
            return
        off = addr - 0x2000_0000
        self.ram[off:off + size] = value.to_bytes(size, "little")


def test_usart2_tx_by_dma_channel7() -> None:
    bench = Bench(72_000_000, PCLK1=36_000_000)
    out: list[bytes] = []
    line = Line()
    dma: Dma
    u = Usart("USART2", 0x4000_4400, clock=bench.clock, clocks=bench.clocks, tx=out.append,
              dma_tx_request=lambda: dma.request(7))
    bus = Bus(u)
    dma = Dma("DMA1", 0x4002_0000,
              bus_read=bus.read, bus_write=bus.write, irqs={7: line})
    bus.ram[0:6] = b"hello\n"
    u.write(0x0C, 4, 313)
    u.write(0x00, 4, 0b1101)                      # UE TE RE
    bench.advance(6260)                            # idle frame
    dma.write(CPAR7, 4, 0x4000_4428)               # TDR
    dma.write(CMAR7, 4, 0x2000_0000)
    dma.write(CNDTR7, 4, 6)
    dma.write(CCR7, 4, (1 << 4) | (1 << 7) | (1 << 1) | 1)   # DIR mem->periph, MINC, TCIE, EN
    u.write(0x08, 4, 1 << 7)                       # DMAT: the request starts the stream
    bench.advance(6 * 6260)
    assert b"".join(out) == b"hello\n"
    assert dma.read(ISR, 4) >> 24 & 0xF == 0b0111 and line.level   # GIF TCIF HTIF of ch7
    assert dma.read(CNDTR7, 4) == 0
    dma.write(IFCR, 4, 1 << 24)                    # CGIF7 clears all of the channel's flags
    assert dma.read(ISR, 4) == 0 and not line.level


def test_memory_to_memory_runs_at_once() -> None:
    bus = Bus()
    dma = Dma("DMA2", 0x4002_0400, channels=5,
              bus_read=bus.read, bus_write=bus.write)
    bus.ram[0:8] = bytes(range(1, 9))
    dma.write(CPAR1, 4, 0x2000_0000)
    dma.write(CMAR1, 4, 0x2000_0040)
    dma.write(CNDTR1, 4, 2)
    dma.write(CCR1, 4, (1 << 14) | (1 << 6) | (1 << 7) | (2 << 8) | (2 << 10) | 1)
    assert bus.ram[0x40:0x48] == bytes(range(1, 9))
    assert dma.read(ISR, 4) & 0b10


def test_circular_reloads_and_cndtr_is_locked_while_enabled() -> None:
    bus = Bus()
    dma = Dma("DMA1", 0x4002_0000,
              bus_read=bus.read, bus_write=bus.write)
    dma.write(CPAR1, 4, 0x2000_0000)
    dma.write(CMAR1, 4, 0x2000_0080)
    dma.write(CNDTR1, 4, 3)
    dma.write(CCR1, 4, (1 << 5) | (1 << 7) | 1)
    dma.write(CNDTR1, 4, 50)
    assert dma.read(CNDTR1, 4) == 3
    for i in range(4):
        bus.ram[0] = 10 + i
        dma.request(1)
    assert bus.ram[0x80:0x83] == bytes([13, 11, 12]) and dma.read(CNDTR1, 4) == 2


def test_bus_error_sets_teif_and_disables() -> None:
    bus = Bus()
    dma = Dma("DMA1", 0x4002_0000,
              bus_read=bus.read, bus_write=bus.write)
    dma.write(CPAR1, 4, 0x1234_0000)
    dma.write(CMAR1, 4, 0x2000_0000)
    dma.write(CNDTR1, 4, 1)
    dma.write(CCR1, 4, 1)
    dma.request(1)
    assert dma.read(ISR, 4) & 0b1001 == 0b1001 and not dma.read(CCR1, 4) & 1


@settings(max_examples=100, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 0x90).map(lambda x: x & ~3), st.integers(0, 0xFFFF_FFFF),
                          st.integers(1, 7)), max_size=30))
def test_any_sequence_never_raises(ops: list[tuple[int, int, int]]) -> None:
    bus = Bus()
    dma = Dma("DMA1", 0x4002_0000,
              bus_read=bus.read, bus_write=bus.write)
    for off, value, ch in ops:
        dma.write(off, 4, value)
        dma.request(ch)
        dma.read(off, 4)
