"""RCC against RM0316: reset values, ready flags, SWS, and the computed clock tree."""
from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st
from periph_support import Bench

from hwut.sim.peripherals.rcc import Rcc

CR, CFGR, CIR, AHBENR, BDCR, CSR, CFGR2, CFGR3 = 0x00, 0x04, 0x08, 0x14, 0x20, 0x24, 0x2C, 0x30


def make(hse_hz: int = 8_000_000) -> tuple[Rcc, Bench]:
    bench = Bench()
    return Rcc("RCC", 0x4002_1000, clock=bench.clock, clocks=bench.clocks, hse_hz=hse_hz), bench


def setbits(rcc: Rcc, off: int, bits: int) -> None:
    rcc.write(off, 4, rcc.read(off, 4) | bits)


def test_reset_values_and_default_clocks() -> None:
    rcc, bench = make()
    assert rcc.read(CR, 4) & 0xFF == 0x83          # HSION, HSIRDY, HSITRIM=16
    assert rcc.read(CFGR, 4) == 0
    assert rcc.read(AHBENR, 4) == 0x14             # SRAMEN, FLITFEN
    assert rcc.read(CSR, 4) == 0x0C00_0000         # PORRSTF | PINRSTF after power-on
    snap = bench.clocks.snapshot()
    for name in ("SYSCLK", "HCLK", "PCLK1", "PCLK2", "TIMCLK1", "TIMCLK2"):
        assert snap[name] == 8_000_000


def test_cube_72mhz_from_hse_bypass() -> None:
    rcc, bench = make()
    setbits(rcc, CR, (1 << 18) | (1 << 16))        # HSEBYP, HSEON
    assert rcc.read(CR, 4) & (1 << 17)             # HSERDY at once
    rcc.write(CFGR2, 4, 0)                          # PREDIV /1
    setbits(rcc, CFGR, (0b10 << 15) | (7 << 18))   # HSE/PREDIV, x9
    setbits(rcc, CR, 1 << 24)
    assert rcc.read(CR, 4) & (1 << 25)             # PLLRDY
    setbits(rcc, CFGR, 4 << 8)                      # APB1 /2
    setbits(rcc, CFGR, 0b10)                        # SW = PLL
    assert (rcc.read(CFGR, 4) >> 2) & 3 == 0b10    # SWS follows
    c = bench.clocks
    assert (c["SYSCLK"], c["HCLK"], c["PCLK1"], c["PCLK2"]) == (72e6, 72e6, 36e6, 72e6)
    assert (c["TIMCLK1"], c["TIMCLK2"]) == (72_000_000, 72_000_000)
    assert c["USART2CLK"] == 36_000_000 and c["USART1CLK"] == 72_000_000


def test_hsi_div2_times_16_is_64mhz() -> None:
    rcc, bench = make()
    setbits(rcc, CFGR, 14 << 18)                    # PLLSRC=00 (HSI/2), x16
    setbits(rcc, CR, 1 << 24)
    setbits(rcc, CFGR, (4 << 8) | 2)
    assert bench.clocks["SYSCLK"] == 64_000_000
    assert bench.clocks["PCLK1"] == 32_000_000 and bench.clocks["TIMCLK1"] == 64_000_000


def test_hsi_prediv_source_f303xe() -> None:
    rcc, bench = make()
    rcc.write(CFGR2, 4, 1)                          # /2
    setbits(rcc, CFGR, (0b01 << 15) | (7 << 18))
    assert rcc.read(CFGR, 4) & (1 << 17)            # PLLXTPRE mirrors PREDIV[0]
    setbits(rcc, CR, 1 << 24)
    setbits(rcc, CFGR, 2)
    assert bench.clocks["SYSCLK"] == 36_000_000


def test_ahb_prescaler() -> None:
    rcc, bench = make()
    setbits(rcc, CFGR, 0b1000 << 4)                 # HCLK = SYSCLK/2
    assert bench.clocks["HCLK"] == 4_000_000
    rcc.write(CFGR, 4, 0b1100 << 4)                 # /64
    assert bench.clocks["HCLK"] == 125_000


def test_switch_waits_for_the_source_and_pll_cannot_stop_while_used() -> None:
    rcc, bench = make()
    setbits(rcc, CFGR, 1)                           # SW=HSE while HSE is off
    assert (rcc.read(CFGR, 4) >> 2) & 3 == 0 and bench.clocks["SYSCLK"] == 8_000_000
    setbits(rcc, CR, 1 << 16)                       # the switch happens once HSE is ready
    assert (rcc.read(CFGR, 4) >> 2) & 3 == 1
    rcc.write(CR, 4, rcc.read(CR, 4) & ~(1 << 16))  # HSEON cannot drop while it clocks the core
    assert rcc.read(CR, 4) & (1 << 17)


def test_lsi_lse_ready_and_reset_flags() -> None:
    rcc, bench = make()
    setbits(rcc, CSR, 1)
    assert rcc.read(CSR, 4) & 2 and bench.clocks["LSI"] == 40_000
    setbits(rcc, BDCR, 1)
    assert rcc.read(BDCR, 4) & 2 and bench.clocks["LSE"] == 32_768
    setbits(rcc, CSR, 1 << 24)                       # RMVF
    assert rcc.read(CSR, 4) == 0x3                   # flags cleared, RMVF reads 0
    rcc.system_reset("software")
    assert rcc.read(CSR, 4) & (1 << 28) and rcc.read(BDCR, 4) & 1


def test_ready_interrupt_flags() -> None:
    from periph_support import Line
    bench = Bench()
    line = Line()
    rcc = Rcc("RCC", 0x4002_1000, clock=bench.clock, clocks=bench.clocks, irq=line)
    setbits(rcc, CIR, 1 << 11)                       # HSERDYIE
    setbits(rcc, CR, 1 << 16)
    assert rcc.read(CIR, 4) & (1 << 3) and line.level
    rcc.write(CIR, 4, (1 << 11) | (1 << 19))         # HSERDYC
    assert not rcc.read(CIR, 4) & (1 << 3) and not line.level


def test_peripheral_reset_hook_and_enabled() -> None:
    bench = Bench()
    seen: list[tuple[str, int]] = []
    rcc = Rcc("RCC", 0x4002_1000, clock=bench.clock, clocks=bench.clocks,
              on_peripheral_reset=lambda bus, bit: seen.append((bus, bit)))
    rcc.write(0x10, 4, 1 << 17)
    assert seen == [("APB1", 17)]
    rcc.write(0x1C, 4, 1 << 17)
    assert rcc.enabled("APB1", 17) and not rcc.enabled("APB2", 14)


def test_usart_kernel_clock_selection() -> None:
    rcc, bench = make()
    rcc.write(CFGR3, 4, 0b11 << 16)                  # USART2 from HSI
    assert bench.clocks["USART2CLK"] == 8_000_000
    rcc.write(CFGR3, 4, 0b01 << 16)
    assert bench.clocks["USART2CLK"] == bench.clocks["SYSCLK"]


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 0xFF) .map(lambda x: x * 4 % 0x400),
                          st.sampled_from([1, 2, 4]), st.integers(0, 0xFFFF_FFFF)), max_size=30))
def test_any_writes_never_raise_and_clocks_stay_positive(ops: list[tuple[int, int, int]]) -> None:
    rcc, bench = make()
    for off, size, value in ops:
        rcc.write(off, size, value & ((1 << (8 * size)) - 1))
        rcc.read(off, size)
    for name in ("SYSCLK", "HCLK", "PCLK1", "PCLK2", "TIMCLK1", "TIMCLK2"):
        assert bench.clocks[name] > 0


def test_rtcclk_follows_rtcsel() -> None:
    rcc, bench = make()
    setbits(rcc, BDCR, 1 | (0b01 << 8))             # LSEON, RTCSEL = LSE
    assert bench.clocks["RTCCLK"] == 32_768
    setbits(rcc, CSR, 1)
    rcc.write(BDCR, 4, 1 | (0b10 << 8))             # LSI
    assert bench.clocks["RTCCLK"] == 40_000
