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

from hwut.sim.regs import Access, Field, Peripheral, Register, flags, word
from hwut.sim.signals import ClockTree
from hwut.sim.vclock import PS_PER_S, Event, VirtualClock

TR, DR, CR, ISR, PRER, WUTR, ALRMAR, ALRMBR, WPR, SSR = (
    0x00, 0x04, 0x08, 0x0C, 0x10, 0x14, 0x1C, 0x20, 0x24, 0x28)
_EPOCH = dt.datetime(2000, 1, 1)


def _number(reg: Register, prefix: str) -> int:
    """The two-digit BCD number in fields ``<prefix>T`` (tens) and ``<prefix>U`` (units)."""
    return reg[f"{prefix}T"].value * 10 + reg[f"{prefix}U"].value


Digits = tuple[tuple[Field, Field], ...]


def _digits(reg: Register, *prefixes: str) -> Digits:
    """The (tens, units) fields of each two-digit number of ``reg`` ("H" → HT, HU)."""
    return tuple((reg[f"{p}T"], reg[f"{p}U"]) for p in prefixes)


def _bcd_word(digits: Digits, numbers: tuple[int, ...]) -> int:
    """The word holding each of ``numbers`` in BCD in its (tens, units) fields."""
    word = 0
    for (tens, units), n in zip(digits, numbers):
        word |= (n // 10 << tens.lsb) & tens.mask | (n % 10 << units.lsb) & units.mask
    return word


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
        super().__init__(name, base, note=note)

    def registers(self) -> list[Register]:
        unlocked = self._unlocked

        def in_init() -> bool:      # TR, DR, PRER: only in init mode, unlocked
            return unlocked() and bool(self.initf.value)

        def time_fields(access: Access = Access.RW) -> tuple[Field, ...]:
            return (Field("SU", 0, 4, access), Field("ST", 4, 3, access),
                    Field("MNU", 8, 4, access), Field("MNT", 12, 3, access),
                    Field("HU", 16, 4, access), Field("HT", 20, 2, access),
                    Field("PM", 22, access=access))

        def date_fields(access: Access = Access.RW) -> tuple[Field, ...]:
            return (Field("DU", 0, 4, access), Field("DT", 4, 2, access),
                    Field("MU", 8, 4, access), Field("MT", 12, access=access),
                    Field("WDU", 13, 3, access), *((Field("YU", 16, 4, access),
                                                     Field("YT", 20, 4, access))
                                                    if access is Access.RW else ()))

        def alarm_fields() -> tuple[Field, ...]:
            return (Field("SU", 0, 4), Field("ST", 4, 3), Field("MSK1", 7),
                    Field("MNU", 8, 4), Field("MNT", 12, 3), Field("MSK2", 15),
                    Field("HU", 16, 4), Field("HT", 20, 2), Field("PM", 22), Field("MSK3", 23),
                    Field("DU", 24, 4), Field("DT", 28, 2), Field("WDSEL", 30), Field("MSK4", 31))

        rc_w0, ro = Access.RC_W0, Access.RO
        self.cr = Register("CR", CR, fields=(
            Field("WUCKSEL", 0, 3), *flags("TSEDGE", "REFCKON", "BYPSHAD", "FMT", start=3),
            *flags("ALRAE", "ALRBE", "WUTE", "TSE", "ALRAIE", "ALRBIE", "WUTIE", "TSIE",
                   "ADD1H", "SUB1H", "BKP", "COSEL", "POL", start=8),
            Field("OSEL", 21, 2), Field("COE", 23)),
            on_write=self._cr_written, writable_when=unlocked)
        self.isr = Register("ISR", ISR, fields=(
            *flags("ALRAWF", "ALRBWF", "WUTWF", "SHPF", "INITS", access=ro),
            Field("RSF", 5, access=rc_w0), Field("INITF", 6, access=ro), Field("INIT", 7),
            *flags("ALRAF", "ALRBF", "WUTF", "TSF", "TSOVF", "TAMP1F", "TAMP2F", "TAMP3F",
                   "RECALPF", start=8, access=rc_w0)),
            on_write=self._isr_written)
        isr = self.isr
        isr.reset = isr["ALRAWF"].mask | isr["ALRBWF"].mask | isr["WUTWF"].mask
        self.initf, self.init = isr["INITF"], isr["INIT"]
        self.tr = Register("TR", TR, fields=time_fields(), on_read=self._tr_read,
                           writable_when=in_init)
        self.dr = Register("DR", DR, reset=0x0000_2101, fields=date_fields(),
                           on_read=self._dr_read, writable_when=in_init)
        self.prer = Register("PRER", PRER, reset=0x007F_00FF, fields=(
            Field("PREDIV_S", 0, 15), Field("PREDIV_A", 16, 7)), writable_when=in_init)
        self.prediv_s, self.prediv_a = self.prer["PREDIV_S"], self.prer["PREDIV_A"]
        self._time_digits = _digits(self.tr, "H", "MN", "S")
        self._date_digits = _digits(self.dr, "Y", "M", "D")
        self.alrmar = Register("ALRMAR", ALRMAR, fields=alarm_fields(),
                               on_write=lambda old, new: self._schedule_alarm(),
                               writable_when=unlocked)
        wutr = Register("WUTR", WUTR, reset=0xFFFF, fields=(Field("WUT", 0, 16),),
                        writable_when=unlocked)
        self.wut = wutr["WUT"]
        self.key = Field("KEY", 0, 8, Access.WO)
        return [
            self.tr, self.dr, self.cr, self.isr, self.prer, wutr, self.alrmar,
            Register("ALRMBR", ALRMBR, fields=alarm_fields(), writable_when=unlocked),
            Register("WPR", WPR, fields=(self.key,), on_write=self._wpr),
            Register("SSR", SSR, fields=(Field("SS", 0, 16, ro),), on_read=self._ssr_read),
            Register("SHIFTR", 0x2C, fields=(Field("SUBFS", 0, 15, Access.WO),
                                             Field("ADD1S", 31, access=Access.WO)), tagged=True),
            Register("TSTR", 0x30, fields=time_fields(ro)),
            Register("TSDR", 0x34, fields=date_fields(ro)),
            Register("TSSSR", 0x38, fields=(Field("SS", 0, 16, ro),)),
            Register("CALR", 0x3C, fields=(
                Field("CALM", 0, 9), Field("CALW16", 13), Field("CALW8", 14), Field("CALP", 15)),
                tagged=True),
            Register("TAFCR", 0x40, fields=(
                *flags("TAMP1E", "TAMP1TRG", "TAMPIE", "TAMP2E", "TAMP2TRG", "TAMP3E",
                       "TAMP3TRG", "TAMPTS"), Field("TAMPFREQ", 8, 3), Field("TAMPFLT", 11, 2),
                Field("TAMPPRCH", 13, 2), Field("TAMPPUDIS", 15), Field("PC13VALUE", 18),
                Field("PC13MODE", 19), Field("PC14VALUE", 20), Field("PC14MODE", 21),
                Field("PC15VALUE", 22), Field("PC15MODE", 23)), tagged=True),
            Register("ALRMASSR", 0x44, fields=(Field("SS", 0, 15), Field("MASKSS", 24, 4))),
            Register("ALRMBSSR", 0x48, fields=(Field("SS", 0, 15), Field("MASKSS", 24, 4))),
            *(Register(f"BKP{i}R", 0x50 + 4 * i, fields=word("BKP")) for i in range(16)),
        ]

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
    def _wpr(self, old: int, new: int) -> None:
        # Any write to WPR is a key: the wrong one (or a write past KEY) locks again.
        key = self.key.of(new)
        self._key = 1 if key == 0xCA else (2 if key == 0x53 and self._key == 1 else 0)

    def _unlocked(self) -> bool:
        return self._key == 2

    # -- the calendar --------------------------------------------------------
    def _seconds_hz(self) -> tuple[int, int]:
        """(RTCCLK, RTCCLK ticks per second of the calendar)."""
        rtcclk = self.clocks.get(self.clock_name) or 32_768
        return rtcclk, (self.prediv_a.value + 1) * (self.prediv_s.value + 1)

    def _calendar_in_registers(self) -> dt.datetime:
        tr, dr = self.tr, self.dr
        try:
            return dt.datetime(2000 + _number(dr, "Y"), max(1, _number(dr, "M")),
                               max(1, _number(dr, "D")), _number(tr, "H") % 24,
                               _number(tr, "MN") % 60, _number(tr, "S") % 60)
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
        return _bcd_word(self._time_digits, (t.hour, t.minute, t.second))

    def _dr_read(self, stored: int) -> int:
        if not self._running:
            return stored
        t = self.now()
        return (_bcd_word(self._date_digits, (t.year % 100, t.month, t.day))
                | self.dr.compose(WDU=t.isoweekday()))

    def _ssr_read(self, stored: int) -> int:
        rtcclk, per_second = self._seconds_hz()
        ticks = (self.clock.now_ps() - self._start_ps) * rtcclk // PS_PER_S
        sub = (ticks % per_second) // (self.prediv_a.value + 1)
        return self.prediv_s.value - sub

    # -- ISR: init mode and synchronisation ----------------------------------
    def _isr_written(self, old: int, new: int) -> None:
        """The flags clear by writing 0 (rc_w0, done by the declaration); INIT enters
        and leaves init mode, and is write-protected like the calendar."""
        isr, init = self.isr, self.init
        was_init = old & init.mask
        if not self._unlocked():
            init.value = bool(was_init)
        if init.value and not was_init:
            self.tr.value, self.dr.value = self._tr_read(0), self._dr_read(0)
            self._start = self.now()
            self._running = False
            self.initf.value = 1
        elif not init.value and was_init:
            self.initf.value = 0
            self._start = self._calendar_in_registers()
            self._start_ps = self.clock.now_ps()
            self._running = True
            self._schedule_alarm()
        isr["RSF"].value = 1     # shadow registers resynchronise two RTCCLK cycles later
        isr["INITS"].value = bool(self.regs["DR"]["YU"].value or self.regs["DR"]["YT"].value)

    # -- wakeup timer and alarm A ---------------------------------------------
    def _cr_written(self, old: int, new: int) -> None:
        cr, isr = self.cr, self.isr
        wute = cr["WUTE"]
        if wute.value and not old & wute.mask:
            self._schedule_wakeup()
        elif not wute.value:
            self._cancel("wakeup")
        # The write flags say when WUTR/ALRMxR may change: while the unit is off.
        isr["WUTWF"].value = not wute.value
        isr["ALRAWF"].value = not cr["ALRAE"].value
        isr["ALRBWF"].value = not cr["ALRBE"].value
        self._schedule_alarm()

    def _cancel(self, what: str) -> None:
        ev = self._events.pop(what, None)
        if ev is not None:
            ev.cancel()

    def _wakeup_period_ps(self) -> int:
        """WUCKSEL: RTC/16, /8, /4, /2 (WUTR+1 ticks), or 1 Hz (WUTR+1 s, +2^16 with 11x)."""
        rtcclk, per_second = self._seconds_hz()
        wucksel = self.cr["WUCKSEL"].value
        count = self.wut.value + 1
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
        self.isr["WUTF"].value = 1
        if self.cr["WUTIE"].value and self.on_wakeup is not None:
            self.on_wakeup()
        if self.cr["WUTE"].value:
            self._schedule_wakeup()

    def _alarm_matches(self, t: dt.datetime) -> bool:
        a = self.alrmar
        weekday = a["WDSEL"].value       # DU is the weekday, DT unused
        checks = (("MSK1", _number(a, "S"), t.second), ("MSK2", _number(a, "MN"), t.minute),
                  ("MSK3", _number(a, "H"), t.hour),
                  ("MSK4", a["DU"].value if weekday else _number(a, "D"),
                   t.isoweekday() if weekday else t.day))
        return all(a[mask].value or want == have for mask, want, have in checks)

    def _schedule_alarm(self) -> None:
        """Alarm A is checked once per calendar second while it is enabled."""
        self._cancel("alarm")
        if not self.cr["ALRAE"].value or not self._running:
            return
        rtcclk, per_second = self._seconds_hz()
        elapsed = (self.clock.now_ps() - self._start_ps) * rtcclk // PS_PER_S
        next_tick = (elapsed // per_second + 1) * per_second
        at = self._start_ps + -(-next_tick * PS_PER_S // rtcclk)
        self._events["alarm"] = self.clock.at_time(at, self._alarm_tick)

    def _alarm_tick(self) -> None:
        self._events.pop("alarm", None)
        if self._alarm_matches(self.now()):
            self.isr["ALRAF"].value = 1
            if self.cr["ALRAIE"].value and self.on_alarm is not None:
                self.on_alarm()
        self._schedule_alarm()
