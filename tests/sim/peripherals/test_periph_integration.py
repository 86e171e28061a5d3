"""RCC driving the others through the clock tree, as the SoC wires them."""
from __future__ import annotations

from periph_support import Bench, Line

from hwut.sim.peripherals.rcc import Rcc
from hwut.sim.peripherals.timer import Timer
from hwut.sim.peripherals.usart import Usart
from hwut.sim.soc.stm32f303 import soc_args


def cube_72mhz(rcc: Rcc) -> None:
    rcc.write(0x00, 4, rcc.read(0x00, 4) | (1 << 18) | (1 << 16))
    rcc.write(0x04, 4, (0b10 << 15) | (7 << 18))
    rcc.write(0x00, 4, rcc.read(0x00, 4) | (1 << 24))
    rcc.write(0x04, 4, rcc.read(0x04, 4) | (4 << 8) | 2)


def test_usart_and_timer_follow_rcc() -> None:
    bench = Bench()
    rcc = Rcc("RCC", 0x4002_1000, clock=bench.clock, clocks=bench.clocks)
    out: list[bytes] = []
    u2 = Usart("USART2", 0x4000_4400, clock=bench.clock, clocks=bench.clocks, tx=out.append)
    u1 = Usart("USART1", 0x4001_3800, clock=bench.clock, clocks=bench.clocks)
    line = Line()
    tim6 = Timer("TIM6", 0x4000_1000, clock=bench.clock, clocks=bench.clocks,
                 **soc_args("TIM6"), irq=line)
    u2.write(0x0C, 4, 69)                      # 115200 at 8 MHz HSI
    assert u2.char_cycles() == 690
    cube_72mhz(rcc)
    assert bench.clocks["HCLK"] == 72_000_000
    u2.write(0x0C, 4, 313)                     # 115200 at PCLK1 = 36 MHz
    assert u2.char_cycles() == 10 * 313 * 2
    u1.write(0x0C, 4, 625)                     # 115200 at PCLK2 = 72 MHz
    assert u1.char_cycles() == 10 * 625
    tim6.write(0x28, 4, 71)                    # 1 MHz tick from TIMCLK1 = 72 MHz
    tim6.write(0x2C, 4, 999)
    tim6.write(0x14, 4, 1)
    tim6.write(0x10, 4, 0)
    tim6.write(0x0C, 4, 1)
    tim6.write(0x00, 4, 1)
    bench.advance(72_000 - 1)
    assert not line.level
    bench.advance(1)
    assert line.level                          # 1 ms
