"""SysTick (0xE000E010): a 24-bit down-counter on the core clock or HCLK/8.

The counter is not ticked; its value is computed from the cycle count. The
wraps that raise the interrupt are handed to the exception model as a cycle
and a period, so the native hook can take a 1 MHz SysTick without a round trip
through Python.
"""
from __future__ import annotations

from collections.abc import Callable, Iterable

from ..regs import STABLE, Access, Field, Peripheral, Register
from ..vclock import VirtualClock
from .exceptions import ExceptionModel


class SysTick(Peripheral):
    size = 0x10

    def __init__(self, name: str, base: int, *, clock: VirtualClock, exceptions: ExceptionModel,
                 calib: int = 0x4000_2328, note: Callable[[str], None] | None = None) -> None:
        self.clock = clock
        self.exc = exceptions
        self._calib = calib
        self._start = 0      # cycle at which the counter held _c0
        self._c0 = 0
        self._reload = 0     # the reload in effect (RVR takes effect at the next wrap)
        self._running = False
        self._last_flag_check = 0
        #: The last CSR read returned COUNTFLAG set (and so cleared it).
        self._flag_read = False
        super().__init__(name, base, note=note)

    def registers(self) -> Iterable[Register]:
        restart = lambda old, new: self._restart()  # noqa: E731
        self.csr = Register("CSR", 0x0, fields=(
            Field("ENABLE", 0, on_write=restart),
            Field("TICKINT", 1, on_write=restart),
            Field("CLKSOURCE", 2, on_write=restart),
            Field("COUNTFLAG", 16, access=Access.RO)), on_read=self._read_csr)
        self.enable, self.tickint = self.csr["ENABLE"], self.csr["TICKINT"]
        self.clksource, self.countflag = self.csr["CLKSOURCE"], self.csr["COUNTFLAG"]
        self.rvr = Register("RVR", 0x4, fields=(Field("RELOAD", 0, 24),), on_write=restart)
        yield from (self.csr, self.rvr)
        # CVR: any write clears the counter (and COUNTFLAG); reads are computed.
        yield Register("CVR", 0x8, on_read=lambda _v: self.current(),
                       on_write=lambda old, new: self._clear_current(),
                       fields=(Field("CURRENT", 0, 24, Access.WO),))
        yield Register("CALIB", 0xC, reset=self._calib, fields=(
            Field("TENMS", 0, 24, Access.RO), Field("SKEW", 30, access=Access.RO),
            Field("NOREF", 31, access=Access.RO)))

    def reset(self) -> None:
        super().reset()
        self._running = False
        self._c0 = 0
        self._reload = 0
        self._flag_read = False
        self.exc.set_systick(None, 0)

    # timing ----------------------------------------------------------------
    @property
    def _div(self) -> int:
        return 1 if self.clksource.value else 8

    def _ticks(self, cycles: int) -> int:
        return (cycles - self._start) // self._div

    def current(self) -> int:
        if not self._running:
            return self._c0
        reload = self._reload
        n = self._ticks(self.clock.cycles)
        if n < self._c0 or reload == 0:
            return max(0, self._c0 - n)
        return (self._c0 - n) % (reload + 1)

    def _first_zero_after(self, cycles: int) -> int | None:
        """Cycle of the first 1→0 transition strictly after ``cycles``."""
        reload = self._reload
        if not self._running:
            return None
        first = self._c0 if self._c0 else reload + 1
        if reload == 0 and not self._c0:
            return None
        n = self._ticks(cycles)
        if n < first:
            k = first
        elif reload == 0:
            return None
        else:
            period = reload + 1
            k = first + ((n - first) // period + 1) * period
        return self._start + k * self._div

    def _restart(self) -> None:
        """ENABLE/CLKSOURCE/TICKINT/RVR changed: re-anchor the counter at its value now.
        A new reload counts from the next wrap on, as on the core."""
        now = self.clock.cycles
        value = self.current()
        self._running = bool(self.enable.value)
        self._reload = self.rvr["RELOAD"].value
        self._c0, self._start = value, now
        self._schedule()

    def _clear_current(self) -> None:
        self._c0, self._start = 0, self.clock.cycles
        self._last_flag_check = self._start
        self._schedule()

    def _schedule(self) -> None:
        if self._running and self.tickint.value:
            when = self._first_zero_after(self.clock.cycles)
            period = (self._reload + 1) * self._div if self._reload else 0
            self.exc.set_systick(when, period)
        else:
            self.exc.set_systick(None, 0)

    def stable_until(self, offset: int) -> int | None:
        if offset == 0x0:   # CSR: COUNTFLAG rises at the next wrap
            if self._flag_read:
                return None     # the read that saw COUNTFLAG cleared it: the next one differs
            nxt = self._first_zero_after(self.clock.cycles)
            return STABLE if nxt is None else nxt
        if offset == 0x8 and self._running:
            return None     # CVR counts down every tick
        return STABLE

    def _read_csr(self, stored: int) -> int:
        now = self.clock.cycles
        countflag = self.countflag
        flag = 0
        if self._running:
            last_zero = self._first_zero_after(self._last_flag_check)
            if last_zero is not None and last_zero <= now:
                flag = countflag.mask
        self._last_flag_check = now
        self._flag_read = bool(flag)
        return (stored & ~countflag.mask) | flag
