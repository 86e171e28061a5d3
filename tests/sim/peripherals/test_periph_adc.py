"""ADC against RM0316: calibration, enable handshake, conversions and their timing."""
from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st
from periph_support import Bench, Line

from hwut.sim.peripherals.adc import Adc, AdcCommon

ISR, IER, CR, CFGR, SMPR1, SQR1, SQR2, DR, CALFACT = (
    0x00, 0x04, 0x08, 0x0C, 0x14, 0x30, 0x34, 0x40, 0xB4)
ADEN, ADDIS, ADSTART, ADCAL = 1, 2, 4, 1 << 31
ADRDY, EOC, EOS, OVR = 1, 4, 8, 16


def make(**values: int) -> tuple[Adc, AdcCommon, Bench, Line]:
    bench = Bench(72_000_000)
    line = Line()
    common = AdcCommon("ADC12_COMMON", 0x5000_0300)
    adc = Adc("ADC1", 0x5000_0000, clock=bench.clock, clocks=bench.clocks, irq=line,
              common=common, channel_values={int(k[2:]): v for k, v in values.items()})
    common.write(0x08, 4, 1 << 16)                  # CKMODE = HCLK/1, as Cube sets it
    return adc, common, bench, line


def test_reset_values() -> None:
    adc, *_ = make()
    assert adc.read(CR, 4) == 0x2000_0000 and adc.read(ISR, 4) == 0
    assert adc.read(0x20, 4) == 0x0FFF_0000


def test_calibration_then_enable_handshake() -> None:
    adc, _, bench, _ = make()
    adc.write(CR, 4, 0)                              # ADVREGEN 10 -> 00 -> 01
    adc.write(CR, 4, 1 << 28)
    adc.write(CR, 4, (1 << 28) | ADCAL)
    assert adc.read(CR, 4) & ADCAL
    bench.advance(112)
    assert not adc.read(CR, 4) & ADCAL and adc.read(CALFACT, 4)
    adc.write(CR, 4, (1 << 28) | ADEN)
    assert adc.read(ISR, 4) & ADRDY
    adc.write(CR, 4, (1 << 28) | ADEN | ADDIS)
    assert not adc.read(CR, 4) & (ADEN | ADDIS) and not adc.read(ISR, 4) & ADRDY


def test_single_conversion_with_timing_and_dr() -> None:
    adc, _, bench, line = make(ch1=0x7B3)
    adc.write(CR, 4, (1 << 28) | ADEN)
    adc.write(SQR1, 4, 1 << 6)                       # L=0, SQ1 = channel 1
    adc.write(SMPR1, 4, 0b010 << 3)                  # 4.5 cycles: 4.5 + 12.5 = 17
    adc.write(IER, 4, EOC)
    adc.write(CR, 4, (1 << 28) | ADEN | ADSTART)
    bench.advance(16)
    assert not adc.read(ISR, 4) & EOC
    bench.advance(1)
    assert adc.read(ISR, 4) & (EOC | EOS) == EOC | EOS and line.level
    assert not adc.read(CR, 4) & ADSTART
    assert adc.read(DR, 4) == 0x7B3
    assert not adc.read(ISR, 4) & EOC and not line.level


def test_sequence_resolution_alignment_and_overrun() -> None:
    adc, _, bench, _ = make(ch1=0xFFF, ch2=0x800, ch3=0x001)
    adc.write(CR, 4, (1 << 28) | ADEN)
    adc.write(SQR1, 4, 2 | (1 << 6) | (2 << 12) | (3 << 18))    # 3 conversions
    adc.write(CFGR, 4, (0b01 << 3) | (1 << 5))       # 10-bit, left-aligned
    adc.write(CR, 4, (1 << 28) | ADEN | ADSTART)
    bench.advance(14)                                # 1.5 + 12.5 cycles each
    assert adc.read(DR, 4) == 0x3FF << 6
    bench.advance(28)                                # two more, DR not read in between
    assert adc.read(ISR, 4) & OVR and adc.read(ISR, 4) & EOS
    assert adc.read(DR, 4) == 0x200 << 6             # OVRMOD=0: the old data is kept


def test_continuous_mode_keeps_converting() -> None:
    adc, _, bench, _ = make(ch5=100)
    adc.write(CR, 4, (1 << 28) | ADEN)
    adc.write(SQR1, 4, 5 << 6)
    adc.write(CFGR, 4, 1 << 13)
    adc.write(CR, 4, (1 << 28) | ADEN | ADSTART)
    for _ in range(3):
        bench.advance(14)
        assert adc.read(DR, 4) == 100
    assert adc.read(CR, 4) & ADSTART
    adc.write(CR, 4, (1 << 28) | ADEN | (1 << 4))    # ADSTP
    assert not adc.read(CR, 4) & ADSTART


def test_sequence_ranks_beyond_four() -> None:
    adc, *_ = make()
    adc.write(SQR1, 4, 5 | (1 << 6) | (2 << 12) | (3 << 18) | (4 << 24))
    adc.write(SQR2, 4, 6 | (7 << 6))
    assert adc._sequence() == [1, 2, 3, 4, 6, 7]


@settings(max_examples=100, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 0xB4).map(lambda x: x & ~3), st.integers(0, 0xFFFF_FFFF),
                          st.integers(0, 2000)), max_size=30))
def test_any_sequence_never_raises(ops: list[tuple[int, int, int]]) -> None:
    adc, _, bench, _ = make(ch1=5)
    for off, value, dt in ops:
        adc.write(off, 4, value)
        bench.advance(dt)
        adc.read(off, 4)


def test_a_conversion_nobody_watches_ends_on_the_same_cycle_without_an_event() -> None:
    """No EOCIE, no DMA: no clock event, the end is brought up to date at the next read,
    on the cycle the event would have given (RM0316 15.3.16: tCONV = tSMPL + 12.5)."""
    adc, _, bench, line = make(ch1=0x7B3)
    adc.write(CR, 4, (1 << 28) | ADEN)
    adc.write(SQR1, 4, 1 << 6)
    adc.write(SMPR1, 4, 0b010 << 3)                  # 4.5 + 12.5 = 17 ADC cycles
    adc.write(CR, 4, (1 << 28) | ADEN | ADSTART)
    assert bench.clock.next_deadline() is None       # nothing scheduled
    assert adc.stable_until(ISR) == bench.clock.cycles + 17
    bench.advance(16)
    assert not adc.read(ISR, 4) & EOC
    bench.advance(1)
    assert adc.read(ISR, 4) & (EOC | EOS) == EOC | EOS and not line.level
    assert not adc.read(CR, 4) & ADSTART
    assert adc.read(DR, 4) == 0x7B3
