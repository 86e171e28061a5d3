"""DWT (0xE0001000) cycle counter and CoreDebug DEMCR, used for cycle-exact delays."""
from __future__ import annotations

from collections.abc import Callable, Iterable

from ..regs import Peripheral, Register
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
        yield Register("CTRL", 0x000, reset=0x4000_0000, write_mask=0x0FFF_FFFF,
                       on_write=lambda _v: self._switch())
        yield Register("CYCCNT", 0x004, on_read=lambda _v: self.cyccnt(),
                       on_write=lambda v: self._rebase(v))
        for name, off in (("CPICNT", 0x8), ("EXCCNT", 0xC), ("SLEEPCNT", 0x10),
                          ("LSUCNT", 0x14), ("FOLDCNT", 0x18), ("PCSR", 0x1C)):
            yield Register(name, off, tagged=True)
        yield Register("LAR", 0xFB0, write_mask=0)
        yield Register("LSR", 0xFB4, write_mask=0)

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
        self._on = bool(self.values[0] & 1)

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
        yield Register("DHCSR", 0x0, write_mask=0)
        yield Register("DCRSR", 0x4, write_mask=0)
        yield Register("DCRDR", 0x8)
        yield Register("DEMCR", 0xC, write_mask=0x010F_07F1)
