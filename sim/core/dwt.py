"""DWT (0xE0001000) cycle counter and CoreDebug DEMCR, used for cycle-exact delays."""
from __future__ import annotations

from collections.abc import Callable, Iterable

from ..regs import Access, Field, Peripheral, Register, flags, tag, word
from ..vclock import VirtualClock

#: DEMCR.TRCENA: DWT and ITM enabled.
TRCENA = 1 << 24


class Dwt(Peripheral):
    size = 0x1000

    def __init__(self, name: str, base: int, *, clock: VirtualClock,
                 note: Callable[[str], None] | None = None) -> None:
        self.clock = clock
        self._base_value = 0
        self._base_cycle = 0
        self._on = False
        super().__init__(name, base, note=note)

    def registers(self) -> Iterable[Register]:
        # NUMCOMP=4 in CTRL[31:28], as the Cortex-M4 has four comparators
        self.ctrl = Register("CTRL", 0x000, reset=0x4000_0000, fields=(
            Field("CYCCNTENA", 0), Field("POSTPRESET", 1, 4), Field("POSTINIT", 5, 4),
            Field("CYCTAP", 9), Field("SYNCTAP", 10, 2), Field("PCSAMPLENA", 12),
            tag("EXCTRCENA", 16), tag("CPIEVTENA", 17), tag("EXCEVTENA", 18),
            tag("SLEEPEVTENA", 19), tag("LSUEVTENA", 20), tag("FOLDEVTENA", 21),
            tag("CYCEVTENA", 22), Field("NOPRFCNT", 24, access=Access.RO),
            Field("NOCYCCNT", 25, access=Access.RO), Field("NOEXTTRIG", 26, access=Access.RO),
            Field("NOTRCPKT", 27, access=Access.RO), Field("NUMCOMP", 28, 4, Access.RO)),
            on_write=lambda old, new: self._switch())
        yield self.ctrl
        yield Register("CYCCNT", 0x004, on_read=lambda _v: self.cyccnt(),
                       on_write=lambda old, new: self._rebase(new), fields=word("CYCCNT"))
        for name, off, width in (("CPICNT", 0x8, 8), ("EXCCNT", 0xC, 8), ("SLEEPCNT", 0x10, 8),
                                 ("LSUCNT", 0x14, 8), ("FOLDCNT", 0x18, 8),
                                 ("PCSR", 0x1C, 32)):
            yield Register(name, off, fields=word(name, width=width), tagged=True)
        yield Register("LAR", 0xFB0, fields=word("KEY", Access.WO))
        yield Register("LSR", 0xFB4, fields=(
            Field("SLI", 0, access=Access.RO), Field("SLK", 1, access=Access.RO),
            Field("nTT", 2, access=Access.RO)))

    def reset(self) -> None:
        super().reset()
        self._on = False
        self._base_value = 0

    def cyccnt(self) -> int:
        if not self._on:
            return self._base_value
        return (self._base_value + self.clock.cycles - self._base_cycle) & 0xFFFF_FFFF

    def _switch(self) -> None:
        self._rebase(self.cyccnt())
        self._on = bool(self.ctrl["CYCCNTENA"].value)

    def _rebase(self, value: int) -> None:
        self._base_value = value & 0xFFFF_FFFF
        self._base_cycle = self.clock.cycles


class CoreDebug(Peripheral):
    """DHCSR/DCRSR/DCRDR/DEMCR at 0xE000EDF0: no halting debugger, TRCENA stored.

    ``swv_ports`` non-zero: a debugger captures SWV (see ``itm.Itm``) and, like
    any debugger reaching the ITM, has set DEMCR.TRCENA at power-on reset. DEMCR
    is in the debug domain: a system reset (SYSRESETREQ) leaves it alone.
    """

    size = 0x10

    def __init__(self, name: str, base: int, *, swv_ports: int = 0,
                 note: Callable[[str], None] | None = None) -> None:
        self._debugger_trace = bool(swv_ports)
        super().__init__(name, base, note=note)

    def reset(self) -> None:
        super().reset()
        if self._debugger_trace:
            self.set("DEMCR", TRCENA)

    def system_reset(self, cause: str = "software") -> None:
        demcr = self.get("DEMCR")
        super().reset()
        self.set("DEMCR", demcr)

    def registers(self) -> Iterable[Register]:
        # No halting debugger on the firmware's side: DHCSR and DCRSR ignore its writes
        # (the debug port's model, sim.debug.core, drives them).
        yield Register("DHCSR", 0x0, fields=(
            *flags("C_DEBUGEN", "C_HALT", "C_STEP", "C_MASKINTS", "", "C_SNAPSTALL",
                   access=Access.RO),
            *flags("S_REGRDY", "S_HALT", "S_SLEEP", "S_LOCKUP", start=16, access=Access.RO),
            Field("S_RETIRE_ST", 24, access=Access.RO), Field("S_RESET_ST", 25, access=Access.RO)))
        yield Register("DCRSR", 0x4, fields=(Field("REGSEL", 0, 7, Access.RO),
                                             Field("REGWnR", 16, access=Access.RO)))
        yield Register("DCRDR", 0x8, fields=word("DBGTMP"))
        yield Register("DEMCR", 0xC, fields=(
            Field("VC_CORERESET", 0), *flags("VC_MMERR", "VC_NOCPERR", "VC_CHKERR",
                                             "VC_STATERR", "VC_BUSERR", "VC_INTERR",
                                             "VC_HARDERR", start=4),
            *flags("MON_EN", "MON_PEND", "MON_STEP", "MON_REQ", start=16),
            Field("TRCENA", 24)))
