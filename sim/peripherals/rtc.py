"""RTC of the STM32F303 (RM0316 section 27): the handshakes and a calendar on virtual time.

HAL's RTC code unlocks the write protection (0xCA, 0x53), sets INIT and waits
for INITF, waits for RSF after clearing it, and for WUTWF before writing the
wakeup timer; a register that only reads back what was written hangs every
one of those loops. The calendar runs from the virtual clock at RTCCLK /
((PREDIV_A+1)(PREDIV_S+1)) (1 Hz with the usual 127/255 and LSE), the wakeup
timer and alarm A raise their flags at the virtual time they fall due, and
their edges go to EXTI lines 20 and 17 through ``on_wakeup``/``on_alarm``.
"""
from __future__ import annotations

import datetime as dt
from collections.abc import Callable

from hwut.sim.regs import Access, Field, Peripheral, Register
from hwut.sim.signals import ClockTree
from hwut.sim.vclock import PS_PER_S, Event, VirtualClock

TR, DR, CR, ISR, PRER, WUTR, ALRMAR, ALRMBR, WPR, SSR = (
    0x00, 0x04, 0x08, 0x0C, 0x10, 0x14, 0x1C, 0x20, 0x24, 0x28)
ALRAWF, ALRBWF, WUTWF, INITS, RSF, INITF, INIT = 1, 2, 4, 16, 32, 64, 128
ALRAF, ALRBF, WUTF = 1 << 8, 1 << 9, 1 << 10
WUTE, ALRAE, ALRBE, ALRAIE, WUTIE = 1 << 10, 1 << 8, 1 << 9, 1 << 12, 1 << 14
#: ISR bits software may write (the rest are status).
_ISR_WRITABLE = INIT | ALRAF | ALRBF | WUTF | RSF | (0xFF << 11)
_EPOCH = dt.datetime(2000, 1, 1)


def _bcd(value: int) -> int:
    return (value // 10) << 4 | value % 10


def _unbcd(value: int) -> int:
    return (value >> 4) * 10 + (value & 0xF)


class Rtc(Peripheral):
    """Real-time clock on ``clock_name`` (RCC's RTCCLK, which follows BDCR.RTCSEL).

    While no RTC clock is selected the calendar runs at 32768 Hz rather than
    stopping: firmware that never sets RTCSEL still sees time pass.
    """

    def __init__(self, name: str, base: int, *, clock: VirtualClock, clocks: ClockTree,
                 note: Callable[[str], None] | None = None, clock_name: str = "RTCCLK",
                 on_wakeup: Callable[[], None] | None = None,
                 on_alarm: Callable[[], None] | None = None) -> None:
        self.clock = clock
        self.clocks = clocks
        self.clock_name = clock_name
        #: Edge on EXTI line 20 (wakeup timer) and 17 (alarms), wired by the SoC.
        self.on_wakeup = on_wakeup
        self.on_alarm = on_alarm
        self._key = 0
        self._start_ps = 0
        self._start = _EPOCH
        self._running = False
        self._events: dict[str, Event] = {}
        self._before = 0
        super().__init__(name, base, note=note)

    def registers(self) -> list[Register]:
        guarded = self._guarded
        return [
            Register("TR", TR, write_mask=0x007F_7F7F, on_read=self._tr_read,
                     on_write=guarded(TR)),
            Register("DR", DR, reset=0x0000_2101, write_mask=0x00FF_FF3F,
                     on_read=self._dr_read, on_write=guarded(DR)),
            Register("CR", CR, write_mask=0x00FF_FF7F, on_write=guarded(CR)),
            Register("ISR", ISR, reset=ALRAWF | ALRBWF | WUTWF, write_mask=_ISR_WRITABLE,
                     on_write=guarded(ISR)),
            Register("PRER", PRER, reset=0x007F_00FF, write_mask=0x007F_7FFF,
                     on_write=guarded(PRER)),
            Register("WUTR", WUTR, reset=0xFFFF, write_mask=0xFFFF, on_write=guarded(WUTR)),
            Register("ALRMAR", ALRMAR, on_write=guarded(ALRMAR)),
            Register("ALRMBR", ALRMBR, on_write=guarded(ALRMBR)),
            Register("WPR", WPR, fields=(Field("KEY", 0, 8, Access.WO),), on_write=self._wpr),
            Register("SSR", SSR, write_mask=0, on_read=self._ssr_read),
            Register("SHIFTR", 0x2C, tagged=True),
            Register("TSTR", 0x30, write_mask=0), Register("TSDR", 0x34, write_mask=0),
            Register("TSSSR", 0x38, write_mask=0),
            Register("CALR", 0x3C, tagged=True), Register("TAFCR", 0x40, tagged=True),
            Register("ALRMASSR", 0x44), Register("ALRMBSSR", 0x48),
            *(Register(f"BKP{i}R", 0x50 + 4 * i) for i in range(16)),
        ]

    def write(self, offset: int, size: int, value: int) -> None:
        self._before = self.values.get(offset & ~3, 0)
        super().write(offset, size, value)

    def reset(self) -> None:
        for ev in self._events.values():
            ev.cancel()
        self._events = {}
        self._key = 0
        self._running = False
        super().reset()
        self._start_ps = self.clock.now_ps()
        self._start = self._calendar_in_registers()
        self._running = True

    # -- write protection ----------------------------------------------------
    def _wpr(self, value: int) -> None:
        key = value & 0xFF
        self._key = 1 if key == 0xCA else (2 if key == 0x53 and self._key == 1 else 0)

    def _unlocked(self) -> bool:
        return self._key == 2

    def _guarded(self, offset: int) -> Callable[[int], None]:
        """Writes to protected registers are ignored until WPR is unlocked (ISR flags excepted)."""
        def written(value: int) -> None:
            if offset == ISR:
                self._isr_written()
                return
            if not self._unlocked() or (offset in (TR, DR, PRER) and not self.values[ISR] & INITF):
                self.values[offset] = self._before
                return
            if offset == CR:
                self._cr_written()
            elif offset == ALRMAR:
                self._schedule_alarm()
        return written

    # -- the calendar --------------------------------------------------------
    def _seconds_hz(self) -> tuple[int, int]:
        """(RTCCLK, RTCCLK ticks per second of the calendar)."""
        rtcclk = self.clocks.get(self.clock_name) or 32_768
        prer = self.values[PRER]
        return rtcclk, ((prer >> 16 & 0x7F) + 1) * ((prer & 0x7FFF) + 1)

    def _calendar_in_registers(self) -> dt.datetime:
        tr, dr = self.values[TR], self.values[DR]
        try:
            return dt.datetime(2000 + _unbcd(dr >> 16 & 0xFF), max(1, _unbcd(dr >> 8 & 0x1F)),
                               max(1, _unbcd(dr & 0x3F)), _unbcd(tr >> 16 & 0x3F) % 24,
                               _unbcd(tr >> 8 & 0x7F) % 60, _unbcd(tr & 0x7F) % 60)
        except ValueError:
            return _EPOCH

    def now(self) -> dt.datetime:
        """The calendar at the current virtual time."""
        if not self._running:
            return self._start
        rtcclk, per_second = self._seconds_hz()
        ticks = (self.clock.now_ps() - self._start_ps) * rtcclk // PS_PER_S
        return self._start + dt.timedelta(seconds=ticks // per_second)

    def _tr_read(self, stored: int) -> int:
        if not self._running:
            return stored      # init mode: what firmware is setting up
        t = self.now()
        return _bcd(t.hour) << 16 | _bcd(t.minute) << 8 | _bcd(t.second)

    def _dr_read(self, stored: int) -> int:
        if not self._running:
            return stored
        t = self.now()
        return (_bcd(t.year % 100) << 16 | (t.isoweekday()) << 13 | _bcd(t.month) << 8
                | _bcd(t.day))

    def _ssr_read(self, stored: int) -> int:
        rtcclk, per_second = self._seconds_hz()
        prediv_s = self.values[PRER] & 0x7FFF
        ticks = (self.clock.now_ps() - self._start_ps) * rtcclk // PS_PER_S
        sub = (ticks % per_second) // ((self.values[PRER] >> 16 & 0x7F) + 1)
        return prediv_s - sub

    # -- ISR: init mode and synchronisation ----------------------------------
    def _isr_written(self) -> None:
        isr, before = self.values[ISR], self._before
        if not self._unlocked():
            isr = (isr & ~INIT) | (before & INIT)       # INIT is write-protected
        # Flags are cleared by writing 0; writing 1 keeps them (rc_w0).
        flags = ALRAF | ALRBF | WUTF | RSF | (0x3F << 11)
        isr = (isr & ~flags) | (before & isr & flags)
        if isr & INIT and not before & INIT:
            self.values[TR], self.values[DR] = self._tr_read(0), self._dr_read(0)
            self._start = self.now()
            self._running = False
            isr |= INITF
        elif not isr & INIT and before & INIT:
            isr &= ~INITF
            self._start = self._calendar_in_registers()
            self._start_ps = self.clock.now_ps()
            self._running = True
            self._schedule_alarm()
        if not isr & RSF:
            isr |= RSF       # shadow registers resynchronise two RTCCLK cycles later
        isr = (isr & ~INITS) | (INITS if self.values[DR] >> 16 & 0xFF else 0)
        self.values[ISR] = isr

    # -- wakeup timer and alarm A ---------------------------------------------
    def _cr_written(self) -> None:
        cr, before = self.values[CR], self._before
        if cr & WUTE and not before & WUTE:
            self._schedule_wakeup()
        elif not cr & WUTE:
            self._cancel("wakeup")
        # The write flags say when WUTR/ALRMxR may change: while the unit is off.
        isr = self.values[ISR] & ~(WUTWF | ALRAWF | ALRBWF)
        isr |= (0 if cr & WUTE else WUTWF) | (0 if cr & ALRAE else ALRAWF) \
            | (0 if cr & ALRBE else ALRBWF)
        self.values[ISR] = isr
        self._schedule_alarm()

    def _cancel(self, what: str) -> None:
        ev = self._events.pop(what, None)
        if ev is not None:
            ev.cancel()

    def _wakeup_period_ps(self) -> int:
        """WUCKSEL: RTC/16, /8, /4, /2 (WUTR+1 ticks), or 1 Hz (WUTR+1 s, +2^16 with 11x)."""
        rtcclk, per_second = self._seconds_hz()
        wucksel = self.values[CR] & 7
        count = (self.values[WUTR] & 0xFFFF) + 1
        if wucksel < 4:
            return count * (16 >> wucksel) * PS_PER_S // rtcclk
        if wucksel >= 6:
            count += 1 << 16
        return count * per_second * PS_PER_S // rtcclk

    def _schedule_wakeup(self) -> None:
        self._cancel("wakeup")
        at = self.clock.now_ps() + self._wakeup_period_ps()
        self._events["wakeup"] = self.clock.at_time(at, self._wakeup_due)

    def _wakeup_due(self) -> None:
        self._events.pop("wakeup", None)
        self.values[ISR] |= WUTF
        if self.values[CR] & WUTIE and self.on_wakeup is not None:
            self.on_wakeup()
        if self.values[CR] & WUTE:
            self._schedule_wakeup()

    def _alarm_matches(self, t: dt.datetime) -> bool:
        a = self.values[ALRMAR]
        checks = ((7, _unbcd(a & 0x7F), t.second), (15, _unbcd(a >> 8 & 0x7F), t.minute),
                  (23, _unbcd(a >> 16 & 0x3F), t.hour),
                  (31, (a >> 24 & 0xF) if a >> 30 & 1 else _unbcd(a >> 24 & 0x3F),
                   t.isoweekday() if a >> 30 & 1 else t.day))
        return all(a >> mask & 1 or want == have for mask, want, have in checks)

    def _schedule_alarm(self) -> None:
        """Alarm A is checked once per calendar second while it is enabled."""
        self._cancel("alarm")
        if not self.values[CR] & ALRAE or not self._running:
            return
        rtcclk, per_second = self._seconds_hz()
        elapsed = (self.clock.now_ps() - self._start_ps) * rtcclk // PS_PER_S
        next_tick = (elapsed // per_second + 1) * per_second
        at = self._start_ps + -(-next_tick * PS_PER_S // rtcclk)
        self._events["alarm"] = self.clock.at_time(at, self._alarm_tick)

    def _alarm_tick(self) -> None:
        self._events.pop("alarm", None)
        if self._alarm_matches(self.now()):
            self.values[ISR] |= ALRAF
            if self.values[CR] & ALRAIE and self.on_alarm is not None:
                self.on_alarm()
        self._schedule_alarm()
