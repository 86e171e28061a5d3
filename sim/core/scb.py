"""System control block (0xE000ED00): the registers through which firmware talks
to the exception model, plus CPACR and the fault status registers."""
from __future__ import annotations

from collections.abc import Callable, Iterable

from ..regs import Access, Field, Peripheral, Register
from .exceptions import (
    BUSFAULT,
    MEMMANAGE,
    NMI,
    PENDSV,
    SVCALL,
    SYSTICK,
    USAGEFAULT,
    ExceptionModel,
)

CPUID_CORTEX_M4_R0P1 = 0x410F_C241
VECTKEY = 0x05FA


class Scb(Peripheral):
    size = 0x90  # 0xE000ED00..0xE000ED8F; the MPU and CoreDebug follow

    def __init__(self, name: str, base: int, *, exceptions: ExceptionModel,
                 request_reset: Callable[[], None],
                 note: Callable[[str], None] | None = None,
                 on_ccr: Callable[[int], None] | None = None) -> None:
        self.exc = exceptions
        self._request_reset = request_reset
        #: Told the new CCR after every write (the traps the CPU takes depend on it).
        self._on_ccr = on_ccr or (lambda ccr: None)
        super().__init__(name, base, note=note)

    def registers(self) -> Iterable[Register]:
        exc = self.exc
        yield Register("CPUID", 0x00, reset=CPUID_CORTEX_M4_R0P1, write_mask=0)
        yield Register("ICSR", 0x04, on_read=self._icsr, on_write=self._icsr_write,
                       write_mask=0)
        yield Register("VTOR", 0x08, write_mask=0xFFFF_FF80,
                       on_write=lambda _v: setattr(exc, "vtor", self.get("VTOR")))
        yield Register("AIRCR", 0x0C, reset=0xFA05_0000, on_read=self._aircr,
                       on_write=self._aircr_write, write_mask=0)
        yield Register("SCR", 0x10, write_mask=0x16,
                       on_write=lambda _v: setattr(exc, "sevonpend", bool(self.get("SCR") & 0x10)))
        yield Register("CCR", 0x14, reset=0x0000_0200, write_mask=0x31B,
                       on_write=lambda _v: self._on_ccr(self.get("CCR")))
        for i, first in enumerate((4, 8, 12)):
            def write(_v: int, first=first, off=0x18 + 4 * i) -> None:
                stored = self.values[off]
                for b in range(4):
                    exc.set_priority(first + b, (stored >> (8 * b)) & 0xFF)

            def read(_v: int, first=first) -> int:
                return sum(exc.priority_byte(first + b) << (8 * b) for b in range(4)
                           if first + b in (MEMMANAGE, BUSFAULT, USAGEFAULT, SVCALL, 12, PENDSV, SYSTICK))
            yield Register(f"SHPR{i + 1}", 0x18 + 4 * i, on_read=read, on_write=write)
        yield Register("SHCSR", 0x24, on_read=self._shcsr, on_write=self._shcsr_write,
                       write_mask=0)
        yield Register("CFSR", 0x28, on_read=lambda _v: exc.faults.cfsr,
                       on_write=lambda v: setattr(exc.faults, "cfsr", exc.faults.cfsr & ~v))
        yield Register("HFSR", 0x2C, on_read=lambda _v: exc.faults.hfsr,
                       on_write=lambda v: setattr(exc.faults, "hfsr", exc.faults.hfsr & ~v))
        yield Register("DFSR", 0x30, fields=(Field("HALTED", 0, 5, Access.RC_W1),))
        yield Register("MMFAR", 0x34, on_read=lambda _v: exc.faults.mmfar,
                       on_write=lambda v: setattr(exc.faults, "mmfar", v))
        yield Register("BFAR", 0x38, on_read=lambda _v: exc.faults.bfar,
                       on_write=lambda v: setattr(exc.faults, "bfar", v))
        yield Register("AFSR", 0x3C)
        for i, value in enumerate((0x30, 0x0, 0x0, 0x0)):  # ID_PFR0.. as on Cortex-M4
            yield Register(f"ID_{i}", 0x40 + 4 * i, reset=value, write_mask=0)
        yield Register("CPACR", 0x88, write_mask=0x00F0_0000)

    # ICSR -----------------------------------------------------------------
    def _icsr(self, _stored: int) -> int:
        exc = self.exc
        pending = exc.highest_pending()
        active = exc.cpu_ipsr()
        value = active & 0x1FF
        if pending is not None:
            value |= (pending & 0x1FF) << 12
        if exc.any_irq_pending():
            value |= 1 << 22
        others = exc.active_count() - (1 if active else 0)
        if others == 0:
            value |= 1 << 11  # RETTOBASE
        if exc.is_pending(SYSTICK):
            value |= 1 << 26
        if exc.is_pending(PENDSV):
            value |= 1 << 28
        if exc.is_pending(NMI):
            value |= 1 << 31
        return value

    def _icsr_write(self, value: int) -> None:
        exc = self.exc
        if value & (1 << 31):
            exc.set_pending(NMI)
        if value & (1 << 28):
            exc.set_pending(PENDSV)
        if value & (1 << 27):
            exc.clear_pending(PENDSV)
        if value & (1 << 26):
            exc.set_pending(SYSTICK)
        if value & (1 << 25):
            exc.clear_pending(SYSTICK)

    # AIRCR ------------------------------------------------------------------
    def _aircr(self, _stored: int) -> int:
        return 0xFA05_0000 | (self.exc.prigroup << 8)

    def _aircr_write(self, value: int) -> None:
        if value >> 16 != VECTKEY:
            return  # writes without the key are ignored by the core
        self.exc.prigroup = (value >> 8) & 7
        if value & (1 << 2):  # SYSRESETREQ
            self._request_reset()

    # SHCSR --------------------------------------------------------------------
    _SHCSR_ACTIVE = {0: MEMMANAGE, 1: BUSFAULT, 3: USAGEFAULT, 7: SVCALL, 8: 12, 10: PENDSV, 11: SYSTICK}
    _SHCSR_PENDED = {12: USAGEFAULT, 13: MEMMANAGE, 14: BUSFAULT, 15: SVCALL}

    def _shcsr(self, _stored: int) -> int:
        exc = self.exc
        value = exc.shcsr_enables
        for bit, n in self._SHCSR_ACTIVE.items():
            if exc.is_active(n):
                value |= 1 << bit
        for bit, n in self._SHCSR_PENDED.items():
            if exc.is_pending(n):
                value |= 1 << bit
        return value

    def _shcsr_write(self, value: int) -> None:
        self.exc.shcsr_enables = value & (7 << 16)
        for bit, n in self._SHCSR_PENDED.items():
            if value & (1 << bit):
                self.exc.set_pending(n)
