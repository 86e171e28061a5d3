"""RTC against RM0316: write protection, init handshake, calendar on virtual time, wakeup."""
from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st
from periph_support import Bench

from hwut.sim.peripherals.rtc import Rtc

TR, DR, CR, ISR, PRER, WUTR, ALRMAR, WPR, SSR = (
    0x00, 0x04, 0x08, 0x0C, 0x10, 0x14, 0x1C, 0x24, 0x28)
INITF, INIT, RSF, WUTWF, WUTF, ALRAF = 64, 128, 32, 4, 1 << 10, 1 << 8
HZ = 8_000_000


def make(**kw) -> tuple[Rtc, Bench]:
    bench = Bench(HZ, LSE=32_768, RTCCLK=32_768)
    return Rtc("RTC", 0x4000_2800, clock=bench.clock, clocks=bench.clocks, **kw), bench


def unlock(rtc: Rtc) -> None:
    rtc.write(WPR, 4, 0xCA)
    rtc.write(WPR, 4, 0x53)


def set_time(rtc: Rtc, tr: int, dr: int) -> None:
    unlock(rtc)
    rtc.write(ISR, 4, INIT)
    assert rtc.read(ISR, 4) & INITF
    rtc.write(TR, 4, tr)
    rtc.write(DR, 4, dr)
    rtc.write(ISR, 4, 0)
    assert not rtc.read(ISR, 4) & INITF


def test_reset_values() -> None:
    rtc, _ = make()
    assert rtc.read(ISR, 4) == 0x7 and rtc.read(PRER, 4) == 0x007F_00FF
    assert rtc.read(DR, 4) & 0xFF1F3F == 0x00_01_01     # 2000-01-01, as DR's reset value
    assert rtc.read(TR, 4) == 0


def test_write_protection_and_init_handshake() -> None:
    rtc, _ = make()
    rtc.write(ISR, 4, INIT)
    assert not rtc.read(ISR, 4) & INITF                # locked: INIT ignored
    unlock(rtc)
    rtc.write(ISR, 4, INIT)
    assert rtc.read(ISR, 4) & INITF
    rtc.write(WPR, 4, 0xFF)                            # relock
    rtc.write(PRER, 4, 0)
    assert rtc.read(PRER, 4) == 0x007F_00FF


def test_rsf_comes_back_after_being_cleared() -> None:
    rtc, _ = make()
    rtc.write(ISR, 4, ~RSF & 0xFFFF)
    assert rtc.read(ISR, 4) & RSF


def test_calendar_follows_virtual_time() -> None:
    rtc, bench = make()
    set_time(rtc, 0x23_59_58, 0x26_2C_31)            # 23:59:58, 2026-12-31
    bench.advance(HZ)                                 # one second
    assert rtc.read(TR, 4) == 0x23_59_59
    bench.advance(HZ)
    assert rtc.read(TR, 4) == 0 and rtc.read(DR, 4) & 0xFF1F3F == 0x27_01_01
    bench.advance(HZ // 2)
    assert rtc.read(SSR, 4) == 127                    # half a second into the next one


def test_wakeup_timer_every_second() -> None:
    hits: list[int] = []
    rtc, bench = make()
    rtc.on_wakeup = lambda: hits.append(bench.counter.n)
    unlock(rtc)
    assert rtc.read(ISR, 4) & WUTWF
    rtc.write(WUTR, 4, 0)                             # 1 s with WUCKSEL = 1 Hz
    rtc.write(CR, 4, 0b100 | (1 << 10) | (1 << 14))  # WUTE, WUTIE
    assert not rtc.read(ISR, 4) & WUTWF
    bench.advance(3 * HZ)
    assert hits == [HZ, 2 * HZ, 3 * HZ] and rtc.read(ISR, 4) & WUTF
    rtc.write(ISR, 4, ~WUTF & 0xFFFF)
    assert not rtc.read(ISR, 4) & WUTF


def test_alarm_a() -> None:
    hits: list[int] = []
    rtc, bench = make()
    rtc.on_alarm = lambda: hits.append(bench.counter.n)
    set_time(rtc, 0x12_00_00, 0x26_01_01)
    rtc.write(ALRMAR, 4, (1 << 31) | (1 << 23) | (1 << 15) | 0x05)   # any day/hour/minute, :05
    rtc.write(CR, 4, (1 << 8) | (1 << 12))
    bench.advance(10 * HZ)
    assert hits == [5 * HZ] and rtc.read(ISR, 4) & ALRAF


@settings(max_examples=100, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 0x8C).map(lambda x: x & ~3), st.integers(0, 0xFFFF_FFFF),
                          st.integers(0, 3 * HZ)), max_size=25))
def test_any_sequence_never_raises(ops: list[tuple[int, int, int]]) -> None:
    rtc, bench = make()
    unlock(rtc)
    for off, value, dt in ops:
        rtc.write(off, 4, value)
        bench.advance(dt)
        rtc.read(off, 4)
