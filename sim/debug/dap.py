"""The debug access port of a Cortex-M4 (ADIv5, ARM IHI 0031): an SW-DP and one
MEM-AP (the Cortex-M4's AHB-AP), with registers declared as data.

The probe-facing calls are those of an SWD transfer: ``read_dp``/``write_dp`` with
A[3:2], ``read_ap``/``write_ap`` with A[3:2] (APSEL and APBANKSEL come from
SELECT, as on the wire). Posted AP reads are resolved here, as a probe's firmware
does: the value comes back with the request, and RDBUFF keeps it too.

A transfer the target refuses answers FAULT (``DapFault``) and sets STICKYERR;
while a sticky error is set every AP access and every DP access except DPIDR,
CTRL/STAT and ABORT answers FAULT, until ABORT.STKERRCLR. A target that does not
answer at all raises ``DapNoResponse`` (failure injection: ``responding``).
"""
from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Protocol

from ..regs import Access, Field, Peripheral, Register, flags, word

#: DPIDR of the Cortex-M4's SW-DP: DPv1, designer ARM (0x23B), part 0xBA, revision 2.
DPIDR_CORTEX_M4 = 0x2BA0_1477
#: IDR of the Cortex-M4's AHB-AP: revision 2, ARM, MEM-AP class, variant 1, AHB.
AHB_AP_IDR_CORTEX_M4 = 0x2477_0011
#: BASE of that AP: the ROM table at 0xE00FF000, ADIv5 format, present.
ROM_TABLE_BASE = 0xE00F_F003

# CTRL/STAT bits
ORUNDETECT, STICKYORUN, STICKYCMP, STICKYERR, READOK, WDATAERR = (
    1, 1 << 1, 1 << 4, 1 << 5, 1 << 6, 1 << 7)
CDBGRSTREQ, CDBGRSTACK, CDBGPWRUPREQ, CDBGPWRUPACK, CSYSPWRUPREQ, CSYSPWRUPACK = (
    1 << 26, 1 << 27, 1 << 28, 1 << 29, 1 << 30, 1 << 31)
# ABORT bits
DAPABORT, STKCMPCLR, STKERRCLR, WDERRCLR, ORUNERRCLR = 1, 1 << 1, 1 << 2, 1 << 3, 1 << 4
# CSW bits
CSW_SIZE, CSW_ADDRINC, CSW_DEVICEEN, CSW_TRINPROG = 0x7, 0x30, 1 << 6, 1 << 7


class DapError(Exception):
    """A transfer that did not complete."""


class DapFault(DapError):
    """FAULT acknowledge: a sticky error is (or was just) set in CTRL/STAT."""


class DapNoResponse(DapError):
    """No acknowledge at all: the target does not answer (unpowered, vanished)."""


class MemoryPort(Protocol):
    """What a MEM-AP reaches: the system bus as a debugger sees it. Raises
    ``LookupError`` (or ``DapError``) for a transfer the bus refuses."""

    def read(self, address: int, size: int) -> int: ...
    def write(self, address: int, size: int, value: int) -> None: ...


class MemAp(Peripheral):
    """A MEM-AP (ADIv5 C2.6) in front of ``memory``: CSW with size and auto-increment,
    TAR incrementing within ``wrap`` bytes (4 KiB on the Cortex-M4's AHB-AP, as pyOCD
    assumes for its IDR; ADIv5 guarantees 1 KiB), DRW, BD0-BD3, CFG, BASE, IDR."""

    size = 0x100

    def __init__(self, name: str, *, memory: MemoryPort, idr: int = AHB_AP_IDR_CORTEX_M4,
                 base_register: int = ROM_TABLE_BASE, wrap: int = 0x1000,
                 note: Callable[[str], None] | None = None) -> None:
        self.memory = memory
        self._idr = idr
        self._base_register = base_register
        self.wrap = wrap
        super().__init__(name, 0, note=note)

    def registers(self) -> Iterable[Register]:
        yield Register("CSW", 0x00, reset=0x0300_0040 | 2, fields=(
            Field("Size", 0, 3, on_write=self._size_written), Field("AddrInc", 4, 2),
            Field("DeviceEn", 6, access=Access.RO), Field("TrInProg", 7, access=Access.RO),
            Field("Mode", 8, 4, access=Access.RO), Field("SPIDEN", 23, access=Access.RO),
            Field("Prot", 24, 7)))
        yield Register("TAR", 0x04, fields=word("ADDR"))
        yield Register("DRW", 0x0C, on_read=lambda _v: self._transfer_read(self.get("TAR"), True),
                       on_write=lambda old, new: self._transfer_write(self.get("TAR"), new, True),
                       fields=word("DATA", Access.WO))
        for n in range(4):
            def read_banked(_v: int, n: int = n) -> int:
                return self._transfer_read(self._banked(n), False)

            def write_banked(old: int, new: int, n: int = n) -> None:
                self._transfer_write(self._banked(n), new, False)

            yield Register(f"BD{n}", 0x10 + 4 * n, fields=word("DATA", Access.WO),
                           on_read=read_banked, on_write=write_banked)
        # no large address, no large data, little-endian
        yield Register("CFG", 0xF4, fields=(Field("BE", 0, access=Access.RO),
                                            Field("LA", 1, access=Access.RO),
                                            Field("LD", 2, access=Access.RO)))
        yield Register("BASE", 0xF8, reset=self._base_register, fields=(
            Field("P", 0, access=Access.RO), Field("FORMAT", 1, access=Access.RO),
            Field("BASEADDR", 12, 20, Access.RO)))
        yield Register("IDR", 0xFC, reset=self._idr, fields=(
            Field("TYPE", 0, 4, Access.RO), Field("VARIANT", 4, 4, Access.RO),
            Field("CLASS", 13, 4, Access.RO), Field("DESIGNER", 17, 11, Access.RO),
            Field("REVISION", 28, 4, Access.RO)))

    def _size_written(self, _old: int, new: int) -> None:
        if new > 2:  # 8, 16 and 32 bits only: the field reads back a supported size
            self.values[0x00] = (self.values[0x00] & ~CSW_SIZE) | 2

    def _banked(self, n: int) -> int:
        return (self.get("TAR") & ~0xF) | (4 * n)

    def _width(self) -> int:
        return 1 << (self.get("CSW") & CSW_SIZE)

    def _advance(self) -> None:
        if (self.get("CSW") & CSW_ADDRINC) >> 4 == 0:
            return
        tar = self.get("TAR")
        page = tar & ~(self.wrap - 1)
        self.set("TAR", page | ((tar + self._width()) & (self.wrap - 1)))

    def _transfer_read(self, address: int, increment: bool) -> int:
        width = self._width()
        lane = address & 3 & ~(width - 1)
        try:
            value = self.memory.read(address & ~(width - 1), width) << (8 * lane)
        except LookupError as exc:
            raise DapFault(f"{self.name}: read of 0x{address:08x} refused by the bus") from exc
        finally:
            if increment:
                self._advance()
        return value & 0xFFFF_FFFF

    def _transfer_write(self, address: int, value: int, increment: bool) -> None:
        width = self._width()
        lane = address & 3 & ~(width - 1)
        data = (value >> (8 * lane)) & ((1 << (8 * width)) - 1)
        try:
            self.memory.write(address & ~(width - 1), width, data)
        except LookupError as exc:
            raise DapFault(f"{self.name}: write of 0x{address:08x} refused by the bus") from exc
        finally:
            if increment:
                self._advance()


class DebugPort(Peripheral):
    """The SW-DP (ADIv5 B2): DPIDR/ABORT at 0x0, CTRL/STAT at 0x4, RESEND/SELECT at 0x8,
    RDBUFF at 0xC. Power-up requests are acknowledged at once (the debug and system
    domains are always powered here); APs are selected by SELECT.APSEL."""

    size = 0x10

    def __init__(self, name: str, *, aps: dict[int, MemAp], dpidr: int = DPIDR_CORTEX_M4,
                 note: Callable[[str], None] | None = None) -> None:
        self.aps = aps
        self._dpidr = dpidr
        self._last_read = 0
        #: False: the target gives no acknowledge (failure injection).
        self.responding = True
        #: True: every AP access answers FAULT and sets STICKYERR, as a target whose bus
        #: is stuck does; clearing the error through ABORT does not help (failure injection).
        self.faulting = False
        #: After a line reset only a DPIDR read is accepted (ADIv5 B4.3.3).
        self.in_reset_state = True
        super().__init__(name, 0, note=note)

    def registers(self) -> Iterable[Register]:
        # DP register 0: DPIDR when read, ABORT when written.
        yield Register("DPIDR", 0x0, fields=(
            *flags("DAPABORT", "STKCMPCLR", "STKERRCLR", "WDERRCLR", "ORUNERRCLR",
                   access=Access.WO),),
            on_read=lambda _v: self._dpidr, stable=True,
            on_write=lambda old, new: self._abort(new))
        yield Register("CTRL/STAT", 0x4, fields=(
            Field("ORUNDETECT", 0), Field("STICKYORUN", 1, access=Access.RO),
            Field("TRNMODE", 2, 2), Field("STICKYCMP", 4, access=Access.RO),
            Field("STICKYERR", 5, access=Access.RO), Field("READOK", 6, access=Access.RO),
            Field("WDATAERR", 7, access=Access.RO), Field("MASKLANE", 8, 4),
            Field("TRNCNT", 12, 10), Field("CDBGRSTREQ", 26),
            Field("CDBGRSTACK", 27, access=Access.RO), Field("CDBGPWRUPREQ", 28),
            Field("CDBGPWRUPACK", 29, access=Access.RO), Field("CSYSPWRUPREQ", 30),
            Field("CSYSPWRUPACK", 31, access=Access.RO),
        ), on_write=lambda old, new: self._acknowledge())
        yield Register("SELECT", 0x8, on_read=lambda _v: self._last_read,  # reads: RESEND
                       fields=(Field("DPBANKSEL", 0, 4), Field("APBANKSEL", 4, 4),
                               Field("APSEL", 24, 8)))
        yield Register("RDBUFF", 0xC, on_read=lambda _v: self._last_read,
                       fields=word("DATA", Access.RO))

    def reset(self) -> None:
        super().reset()
        self._last_read = 0

    # -- DP side -------------------------------------------------------------------
    def _acknowledge(self) -> None:
        """ACK bits follow their requests: the domains power up (and reset) at once."""
        cs = self.get("CTRL/STAT")
        acks = CDBGPWRUPACK | CSYSPWRUPACK | CDBGRSTACK
        reqs = (cs & CDBGPWRUPREQ) << 1 | (cs & CSYSPWRUPREQ) << 1 | (cs & CDBGRSTREQ) << 1
        self.set("CTRL/STAT", (cs & ~acks) | reqs)

    def _abort(self, value: int) -> None:
        cs = self.get("CTRL/STAT")
        for clear, bit in ((STKCMPCLR, STICKYCMP), (STKERRCLR, STICKYERR),
                           (WDERRCLR, WDATAERR), (ORUNERRCLR, STICKYORUN)):
            if value & clear:
                cs &= ~bit
        self.set("CTRL/STAT", cs)

    def _sticky(self) -> bool:
        return bool(self.get("CTRL/STAT") & (STICKYERR | STICKYCMP | STICKYORUN | WDATAERR))

    def _check(self, what: str, always_allowed: bool = False, dpidr: bool = False) -> None:
        if not self.responding:
            raise DapNoResponse(f"{what}: no acknowledge from the target")
        if self.in_reset_state and not dpidr:
            raise DapNoResponse(f"{what}: the SW-DP is in its reset state (read DPIDR first)")
        if self._sticky() and not always_allowed:
            raise DapFault(f"{what}: sticky error set in CTRL/STAT (clear it through ABORT)")

    def line_reset(self) -> None:
        """At least 50 SWCLK cycles with SWDIO high: the next transfer must read DPIDR."""
        self.in_reset_state = True

    def read_dp(self, a: int) -> int:
        a &= 0xC
        self._check(f"read DP 0x{a:x}", always_allowed=a in (0x0, 0x4), dpidr=a == 0x0)
        if a == 0x0:
            self.in_reset_state = False
        value = self.read(a, 4)
        if a == 0x4:  # READOK: the last AP read or RDBUFF read was OK
            value |= READOK
        return value

    def write_dp(self, a: int, value: int) -> None:
        a &= 0xC
        self._check(f"write DP 0x{a:x}", always_allowed=a == 0x0)
        if a == 0xC:
            return  # RDBUFF: writes ignored
        self.write(a, 4, value & 0xFFFF_FFFF)

    # -- AP side -------------------------------------------------------------------
    def _ap(self, a: int, what: str) -> tuple[MemAp | None, int]:
        self._check(what)
        if self.faulting:
            self.set_bits("CTRL/STAT", STICKYERR)
            raise DapFault(f"{what}: the target's bus does not answer")
        select = self.get("SELECT")
        cs = self.get("CTRL/STAT")
        if not cs & CDBGPWRUPACK or not cs & CSYSPWRUPACK:
            self.set_bits("CTRL/STAT", STICKYERR)
            raise DapFault(f"{what}: debug power is down (CTRL/STAT.CDBGPWRUPREQ)")
        return self.aps.get(select >> 24), (select & 0xF0) | (a & 0xC)

    def read_ap(self, a: int) -> int:
        ap, reg = self._ap(a, f"read AP 0x{a & 0xC:x}")
        try:
            value = 0 if ap is None else ap.read(reg, 4)
        except DapFault:
            self.set_bits("CTRL/STAT", STICKYERR)
            raise
        self._last_read = value
        return value

    def write_ap(self, a: int, value: int) -> None:
        ap, reg = self._ap(a, f"write AP 0x{a & 0xC:x}")
        if ap is None:
            return
        try:
            ap.write(reg, 4, value & 0xFFFF_FFFF)
        except DapFault:
            self.set_bits("CTRL/STAT", STICKYERR)
            raise
