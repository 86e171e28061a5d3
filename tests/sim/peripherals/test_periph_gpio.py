"""GPIO against RM0316: reset values, IDR sources, BSRR/BRR, LCKR, listeners."""
from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st
from periph_support import Bench

from hwut.sim.peripherals.gpio import GpioPort
from hwut.sim.soc.stm32f303 import GPIO_RESETS

MODER, OTYPER, OSPEEDR, PUPDR, IDR, ODR, BSRR, LCKR, AFRL, AFRH, BRR = (
    0x00, 0x04, 0x08, 0x0C, 0x10, 0x14, 0x18, 0x1C, 0x20, 0x24, 0x28)


def port(letter: str, **kw) -> tuple[GpioPort, Bench]:
    bench = Bench()
    base = 0x4800_0000 + 0x400 * (ord(letter) - ord("A"))
    kw.setdefault("resets", GPIO_RESETS.get(f"GPIO{letter}"))
    return GpioPort(f"GPIO{letter}", base, clock=bench.clock, clocks=bench.clocks, **kw), bench


def test_reset_values_per_port() -> None:
    a, _ = port("A")
    b, _ = port("B")
    c, _ = port("C")
    assert (a.read(MODER, 4), a.read(OSPEEDR, 4), a.read(PUPDR, 4)) == (
        0xA800_0000, 0x0C00_0000, 0x6400_0000)
    assert (b.read(MODER, 4), b.read(PUPDR, 4)) == (0x0000_0280, 0x0000_0100)
    assert (c.read(MODER, 4), c.read(PUPDR, 4), c.read(ODR, 4)) == (0, 0, 0)


def test_idr_follows_odr_for_outputs_and_pulls_for_inputs() -> None:
    c, _ = port("C")
    c.write(MODER, 4, 0b01)                       # PC0 output
    c.write(ODR, 4, 1)
    assert c.read(IDR, 4) & 1
    c.write(PUPDR, 4, 0b01 << 2)                  # PC1 pull-up
    assert c.read(IDR, 4) >> 1 & 1
    c.write(PUPDR, 4, 0b10 << 2)                  # pull-down
    assert not c.read(IDR, 4) >> 1 & 1
    c.set_input(1, 1)                             # driven from outside beats the pull
    assert c.read(IDR, 4) >> 1 & 1
    c.set_input(1, None)
    assert not c.read(IDR, 4) >> 1 & 1


def test_b1_external_pullup_on_pc13() -> None:
    c, bench = port("C", external={13: 1})
    assert c.read(IDR, 4) >> 13 & 1               # not pressed
    c.set_input(13, 0)                            # pressed
    assert not c.read(IDR, 4) >> 13 & 1
    c.schedule_input(1_000_000, 13, None)         # released after 1 µs (8 cycles)
    bench.advance(8)
    assert c.read(IDR, 4) >> 13 & 1


def test_open_drain_over_pullup() -> None:
    b, _ = port("B", external={7: 1})
    b.write(MODER, 4, 0b01 << 14)
    b.write(OTYPER, 4, 1 << 7)
    b.write(ODR, 4, 1 << 7)
    assert b.read(IDR, 4) >> 7 & 1                # released: the pull-up wins
    b.set_input(7, 0)                             # a slave holds the line low
    assert not b.read(IDR, 4) >> 7 & 1
    b.set_input(7, None)
    b.write(BRR, 4, 1 << 7)
    assert not b.read(IDR, 4) >> 7 & 1            # we pull it low


def test_analog_reads_zero() -> None:
    c, _ = port("C", external={3: 1})
    c.write(MODER, 4, 0b11 << 6)
    assert not c.read(IDR, 4) >> 3 & 1


def test_bsrr_set_wins_and_brr_resets() -> None:
    a, _ = port("A")
    a.write(BSRR, 4, (1 << 5) | (1 << 21))
    assert a.read(ODR, 4) == 1 << 5
    a.write(BSRR, 2, 0xFFFF)                       # low half only
    a.write(BSRR + 2, 2, 1 << 5)                   # reset PA5 via the high half
    assert a.read(ODR, 4) == 0xFFDF
    a.write(BRR, 4, 0x00FF)
    assert a.read(ODR, 4) == 0xFF00
    assert a.read(BSRR, 4) == 0 and a.read(BRR, 4) == 0   # write-only


def test_output_listener_for_ld2() -> None:
    a, _ = port("A")
    seen: list[tuple[int, int]] = []
    a.on_output(lambda pin, level: seen.append((pin, level)))
    a.write(MODER, 4, a.read(MODER, 4) | (0b01 << 10))
    a.write(BSRR, 4, 1 << 5)
    a.write(BSRR, 4, 1 << 5)                       # no change, no call
    a.write(BRR, 4, 1 << 5)
    assert seen == [(5, 0), (5, 1), (5, 0)]


def test_input_change_listener() -> None:
    c, _ = port("C", external={13: 1})
    seen: list[tuple[int, int]] = []
    c.on_input_change(lambda pin, level: seen.append((pin, level)))
    c.set_input(13, 0)
    c.set_input(13, 0)
    c.set_input(13, None)
    assert seen == [(13, 0), (13, 1)]


def test_lock_sequence_freezes_configuration() -> None:
    a, _ = port("A")
    a.write(MODER, 4, 0xA800_0400)                 # PA5 output
    for v in (0x1_0020, 0x0_0020, 0x1_0020):
        a.write(LCKR, 4, v)
    assert a.read(LCKR, 4) == 0x1_0020
    a.write(MODER, 4, 0)                            # PA5 keeps its mode; others change
    assert a.read(MODER, 4) == 0x0000_0400
    a.write(LCKR, 4, 0)                             # cannot unlock until reset
    assert a.read(LCKR, 4) == 0x1_0020
    a.reset()
    assert a.read(LCKR, 4) == 0


def test_wrong_lock_sequence_does_not_lock() -> None:
    a, _ = port("A")
    for v in (0x1_0020, 0x0_0021, 0x1_0020):
        a.write(LCKR, 4, v)
    assert not a.read(LCKR, 4) >> 16 & 1


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.sampled_from([ODR, BSRR, BRR]), st.integers(0, 0xFFFF_FFFF)),
                max_size=40))
def test_bsrr_brr_against_a_model(ops: list[tuple[int, int]]) -> None:
    d, _ = port("D")
    d.write(MODER, 4, 0x5555_5555)
    model = 0
    for off, value in ops:
        d.write(off, 4, value)
        if off == ODR:
            model = value & 0xFFFF
        elif off == BSRR:
            model = (model & ~(value >> 16)) | (value & 0xFFFF)
        else:
            model &= ~value & 0xFFFF
        assert d.read(ODR, 4) == model == d.read(IDR, 4)


@settings(max_examples=150, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 0x3FF).map(lambda x: x & ~3),
                          st.sampled_from([1, 2, 4]), st.integers(0, 0xFFFF_FFFF)), max_size=30))
def test_any_access_never_raises(ops: list[tuple[int, int, int]]) -> None:
    a, _ = port("A")
    for off, size, value in ops:
        a.write(off, size, value & ((1 << 8 * size) - 1))
        a.read(off, size)
