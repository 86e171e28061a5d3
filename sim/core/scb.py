"""System control block (0xE000ED00): the registers through which firmware talks
to the exception model, plus CPACR and the fault status registers."""
from __future__ import annotations

from collections.abc import Callable, Iterable

from ..regs import Access, Field, Peripheral, Register, flags, word
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
                 on_ccr: Callable[[int], None] | None = None,
                 on_cpacr: Callable[[int], None] | None = None) -> None:
        self.exc = exceptions
        self._request_reset = request_reset
        #: Told the new CCR after every write (the traps the CPU takes depend on it).
        self._on_ccr = on_ccr or (lambda ccr: None)
        #: Told CPACR after every write and reset (FP instructions trap with NOCP while
        #: CP10/CP11 deny access: ``sim.traps``).
        self._on_cpacr = on_cpacr or (lambda cpacr: None)
        super().__init__(name, base, note=note)

    def reset(self) -> None:
        super().reset()
        self._on_cpacr(self.get("CPACR"))

    def registers(self) -> Iterable[Register]:
        exc = self.exc
        ro, wo, w1c = Access.RO, Access.WO, Access.RC_W1
        yield Register("CPUID", 0x00, reset=CPUID_CORTEX_M4_R0P1, fields=(
            Field("REVISION", 0, 4, ro), Field("PARTNO", 4, 12, ro), Field("CONSTANT", 16, 4, ro),
            Field("VARIANT", 20, 4, ro), Field("IMPLEMENTER", 24, 8, ro)))
        # Registers that read the exception model: their fields hold no state here
        # (reads are computed), so writable ones are write-only actions.
        yield Register("ICSR", 0x04, on_read=self._icsr, on_write=self._icsr_write, fields=(
            Field("VECTACTIVE", 0, 9, ro), Field("RETTOBASE", 11, access=ro),
            Field("VECTPENDING", 12, 9, ro), Field("ISRPENDING", 22, access=ro),
            *flags("PENDSTCLR", "PENDSTSET", "PENDSVCLR", "PENDSVSET", start=25, access=wo),
            Field("NMIPENDSET", 31, access=wo)))
        yield Register("VTOR", 0x08, fields=(Field("TBLOFF", 7, 25),),
                       on_write=lambda old, new: setattr(exc, "vtor", new))
        yield Register("AIRCR", 0x0C, reset=0xFA05_0000, on_read=self._aircr,
                       on_write=self._aircr_write, fields=(
                           *flags("VECTRESET", "VECTCLRACTIVE", "SYSRESETREQ", access=wo),
                           Field("PRIGROUP", 8, 3, wo), Field("ENDIANNESS", 15, access=ro),
                           Field("VECTKEY", 16, 16, wo)))
        self.scr = Register("SCR", 0x10, fields=(
            Field("SLEEPONEXIT", 1), Field("SLEEPDEEP", 2), Field("SEVONPEND", 4)),
            on_write=lambda old, new: setattr(exc, "sevonpend", bool(self.sevonpend.value)))
        self.sevonpend = self.scr["SEVONPEND"]
        yield self.scr
        yield Register("CCR", 0x14, reset=0x0000_0200, fields=(
            Field("NONBASETHRDENA", 0), Field("USERSETMPEND", 1), Field("UNALIGN_TRP", 3),
            Field("DIV_0_TRP", 4), Field("BFHFNMIGN", 8), Field("STKALIGN", 9)),
            on_write=lambda old, new: self._on_ccr(new))
        for i, first in enumerate((4, 8, 12)):
            def write(old: int, new: int, first: int = first) -> None:
                for b in range(4):
                    exc.set_priority(first + b, (new >> (8 * b)) & 0xFF)

            def read(_v: int, first: int = first) -> int:
                return sum(exc.priority_byte(first + b) << (8 * b) for b in range(4)
                           if first + b in (MEMMANAGE, BUSFAULT, USAGEFAULT, SVCALL, 12, PENDSV, SYSTICK))
            yield Register(f"SHPR{i + 1}", 0x18 + 4 * i, on_read=read, on_write=write,
                           fields=tuple(Field(f"PRI_{first + b}", 8 * b, 8) for b in range(4)))
        yield Register("SHCSR", 0x24, on_read=self._shcsr, on_write=self._shcsr_write, fields=(
            *(Field(n, bit, access=ro) for n, bit in (
                ("MEMFAULTACT", 0), ("BUSFAULTACT", 1), ("USGFAULTACT", 3), ("SVCALLACT", 7),
                ("MONITORACT", 8), ("PENDSVACT", 10), ("SYSTICKACT", 11))),
            *flags("USGFAULTPENDED", "MEMFAULTPENDED", "BUSFAULTPENDED", "SVCALLPENDED",
                   "MEMFAULTENA", "BUSFAULTENA", "USGFAULTENA", start=12, access=wo)))
        yield Register("CFSR", 0x28, on_read=lambda _v: exc.faults.cfsr,
                       on_write=lambda old, new: setattr(exc.faults, "cfsr", exc.faults.cfsr & ~new),
                       fields=(
                           *flags("IACCVIOL", "DACCVIOL", "", "MUNSTKERR", "MSTKERR", "MLSPERR",
                                  "", "MMARVALID", "IBUSERR", "PRECISERR", "IMPRECISERR",
                                  "UNSTKERR", "STKERR", "LSPERR", "", "BFARVALID", "UNDEFINSTR",
                                  "INVSTATE", "INVPC", "NOCP", access=w1c),
                           Field("UNALIGNED", 24, access=w1c), Field("DIVBYZERO", 25, access=w1c)))
        yield Register("HFSR", 0x2C, on_read=lambda _v: exc.faults.hfsr,
                       on_write=lambda old, new: setattr(exc.faults, "hfsr", exc.faults.hfsr & ~new),
                       fields=(Field("VECTTBL", 1, access=w1c), Field("FORCED", 30, access=w1c),
                               Field("DEBUGEVT", 31, access=w1c)))
        yield Register("DFSR", 0x30, fields=(
            *flags("HALTED", "BKPT", "DWTTRAP", "VCATCH", "EXTERNAL", access=w1c),))
        yield Register("MMFAR", 0x34, on_read=lambda _v: exc.faults.mmfar,
                       on_write=lambda old, new: setattr(exc.faults, "mmfar", new),
                       fields=word("ADDRESS"))
        yield Register("BFAR", 0x38, on_read=lambda _v: exc.faults.bfar,
                       on_write=lambda old, new: setattr(exc.faults, "bfar", new),
                       fields=word("ADDRESS"))
        yield Register("AFSR", 0x3C, fields=word("AUXFAULT"))
        for i, value in enumerate((0x30, 0x0, 0x0, 0x0)):  # ID_PFR0.. as on Cortex-M4
            yield Register(f"ID_{i}", 0x40 + 4 * i, reset=value, fields=word("ID", Access.RO))
        yield Register("CPACR", 0x88, fields=(Field("CP10", 20, 2), Field("CP11", 22, 2)),
                       on_write=lambda old, new: self._on_cpacr(new))

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

    def _icsr_write(self, old: int, value: int) -> None:
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

    def _aircr_write(self, old: int, value: int) -> None:
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

    def _shcsr_write(self, old: int, value: int) -> None:
        self.exc.shcsr_enables = value & (7 << 16)
        for bit, n in self._SHCSR_PENDED.items():
            if value & (1 << bit):
                self.exc.set_pending(n)
