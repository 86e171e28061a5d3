"""What a debugger finds behind the Cortex-M4's AHB-AP besides memory: the ROM
table, the CoreSight identification blocks of SCS, DWT, FPB and ITM, the FPB, and
the FPU feature registers (ARMv7-M ARM, C1; CoreSight Architecture, B2; Cortex-M4
TRM r0p1 tables 3-2, 8-3, 8-4).

These blocks exist for the debugger's view only (``board.DebugBus``): the CPU's
bus keeps its own models of SCS, DWT and ITM, whose id registers it does not serve.
"""
from __future__ import annotations

from collections.abc import Callable, Iterable

from ..regs import Access, Field, Peripheral, Register, word

ROM_TABLE = 0xE00F_F000
SCS, DWT, FPB, ITM, TPIU, ETM = 0xE000_E000, 0xE000_1000, 0xE000_2000, 0xE000_0000, 0xE004_0000, 0xE004_1000
ID_BLOCK = 0xFD0  # PIDR4..7, PIDR0..3, CIDR0..3 at the end of every 4 KiB component

#: Component class 0xE (generic IP) and 0x1 (ROM table) preambles, CIDR0..3 as one word.
CIDR_GENERIC = 0xB105_E00D
CIDR_ROM_TABLE = 0xB105_100D
JEP106_ARM = (4, 0x3B)   # continuation code, identity code
JEP106_ST = (0, 0x20)


def peripheral_id(part: int, designer: tuple[int, int], revision: int = 0,
                  size_4k_log2: int = 0) -> int:
    """PIDR0..PIDR4 as one 40-bit number (PIDR4 in bits 39:32): part number, JEP106
    designer (JEDEC flag set), revision, and the component's size in 4 KiB blocks."""
    continuation, identity = designer
    pidr0 = part & 0xFF
    pidr1 = (part >> 8) & 0xF | (identity & 0xF) << 4
    pidr2 = (identity >> 4) & 0x7 | 0x8 | (revision & 0xF) << 4
    pidr4 = continuation & 0xF | (size_4k_log2 & 0xF) << 4
    return pidr0 | pidr1 << 8 | pidr2 << 16 | pidr4 << 32


#: The Cortex-M4's components as the TRM lists them (PIDR and CIDR).
CORTEX_M4_IDS = {
    "SCS": (SCS, peripheral_id(0x00C, JEP106_ARM, revision=0), CIDR_GENERIC),
    "DWT": (DWT, peripheral_id(0x002, JEP106_ARM, revision=3), CIDR_GENERIC),
    "FPB": (FPB, peripheral_id(0x003, JEP106_ARM, revision=2), CIDR_GENERIC),
    "ITM": (ITM, peripheral_id(0x001, JEP106_ARM, revision=3), CIDR_GENERIC),
}


def _id() -> tuple[Field, ...]:
    """An identification register: its low byte, read-only."""
    return (Field("ID", 0, 8, Access.RO),)


def _id_registers(pid: int, cid: int, at: int = ID_BLOCK) -> Iterable[Register]:
    for i in range(4):
        yield Register(f"PIDR{4 + i}", at + 4 * i, reset=(pid >> (32 + 8 * i)) & 0xFF,
                       fields=_id())
    for i in range(4):
        yield Register(f"PIDR{i}", at + 0x10 + 4 * i, reset=(pid >> (8 * i)) & 0xFF, fields=_id())
    for i in range(4):
        yield Register(f"CIDR{i}", at + 0x20 + 4 * i, reset=(cid >> (8 * i)) & 0xFF, fields=_id())


class ComponentIds(Peripheral):
    """Only the identification block (0xFD0-0xFFF) of a component modelled elsewhere."""

    size = 0x30

    def __init__(self, name: str, component_base: int, pid: int, cid: int = CIDR_GENERIC,
                 note: Callable[[str], None] | None = None) -> None:
        self._pid, self._cid = pid, cid
        super().__init__(name, component_base + ID_BLOCK, note=note)

    def registers(self) -> Iterable[Register]:
        return _id_registers(self._pid, self._cid, at=0)


class RomTable(Peripheral):
    """The processor ROM table at 0xE00FF000 (ARMv7-M C1.2): entries as offsets from
    the table, bit 0 present, bit 1 32-bit format; MEMTYPE says system memory is on
    the bus. On an STM32 it carries ST's identification and the device id."""

    size = 0x1000

    def __init__(self, name: str, base: int = ROM_TABLE, *, part: int = 0x446,
                 tpiu: bool = False, note: Callable[[str], None] | None = None) -> None:
        self._part = part
        self._tpiu = tpiu
        super().__init__(name, base, note=note)

    def registers(self) -> Iterable[Register]:
        def entry(address: int, present: bool) -> int:
            return ((address - self.base) & 0xFFFF_F000) | 2 | int(present)

        entries = ((SCS, True), (DWT, True), (FPB, True), (ITM, True),
                   (TPIU, self._tpiu), (ETM, False))
        for i, (address, present) in enumerate(entries):
            yield Register(f"ENTRY{i}", 4 * i, reset=entry(address, present), fields=(
                Field("PRESENT", 0, access=Access.RO), Field("FORMAT", 1, access=Access.RO),
                Field("OFFSET", 12, 20, Access.RO)))
        yield Register("END", 4 * len(entries), fields=word("END", Access.RO))  # marker, 0
        yield Register("MEMTYPE", 0xFCC, reset=1, fields=(Field("SYSMEM", 0, access=Access.RO),))
        yield from _id_registers(peripheral_id(self._part, JEP106_ST), CIDR_ROM_TABLE)


class Fpb(Peripheral):
    """Flash patch and breakpoint unit (ARMv7-M C1.11), version 1: six instruction
    comparators and two literal ones. Enabled comparators with REPLACE != 0 on
    instruction addresses are breakpoints; ``changed`` is told whenever the set of
    breakpoint addresses may have changed. Remapping (REPLACE = 0) is stored, not done."""

    size = 0x1000
    NUM_CODE, NUM_LIT = 6, 2

    def __init__(self, name: str, base: int = FPB, *,
                 changed: Callable[[], None] | None = None,
                 note: Callable[[str], None] | None = None) -> None:
        self._changed = changed or (lambda: None)
        super().__init__(name, base, note=note)

    def registers(self) -> Iterable[Register]:
        yield Register("FP_CTRL", 0x000, reset=self.NUM_CODE << 4 | self.NUM_LIT << 8, fields=(
            Field("ENABLE", 0, on_write=self._enable_written),
            Field("KEY", 1, access=Access.WO),
            Field("NUM_CODE1", 4, 4, access=Access.RO), Field("NUM_LIT", 8, 4, access=Access.RO),
            Field("NUM_CODE2", 12, 3, access=Access.RO), Field("REV", 28, 4, access=Access.RO)))
        yield Register("FP_REMAP", 0x004, reset=0x2000_0000, fields=(
            Field("REMAP", 5, 24), Field("RMPSPT", 29, access=Access.RO)))
        for n in range(self.NUM_CODE + self.NUM_LIT):
            yield Register(f"FP_COMP{n}", 0x008 + 4 * n, fields=(
                Field("ENABLE", 0), Field("COMP", 2, 27), Field("REPLACE", 30, 2)),
                on_write=lambda old, new: self._changed())
        yield from _id_registers(*CORTEX_M4_IDS["FPB"][1:])

    def _enable_written(self, old: int, new: int) -> None:
        # ENABLE is written only together with KEY = 1
        self._changed()

    def write(self, offset: int, size: int, value: int) -> None:
        if offset & ~3 == 0 and not (value << (8 * (offset & 3))) & 2:
            return  # FP_CTRL writes without KEY are ignored
        super().write(offset, size, value)

    def breakpoints(self) -> set[int]:
        """Halfword addresses an enabled breakpoint comparator matches."""
        if not self.get("FP_CTRL") & 1:
            return set()
        found = set()
        for n in range(self.NUM_CODE):
            comp = self.get(f"FP_COMP{n}")
            replace = comp >> 30
            if comp & 1 and replace:
                word = comp & 0x1FFF_FFFC
                if replace & 1:
                    found.add(word)
                if replace & 2:
                    found.add(word + 2)
        return found


class FpuFeatures(Peripheral):
    """MVFR0-MVFR2 (0xE000EF40): single precision, no double (Cortex-M4F, TRM 7.3)."""

    size = 0xC

    def __init__(self, name: str, base: int = 0xE000_EF40, *,
                 note: Callable[[str], None] | None = None) -> None:
        super().__init__(name, base, note=note)

    def registers(self) -> Iterable[Register]:
        yield Register("MVFR0", 0x0, reset=0x1011_0021, fields=word("MVFR0", Access.RO))
        yield Register("MVFR1", 0x4, reset=0x1100_0011, fields=word("MVFR1", Access.RO))
        # ARMv7-M: reserved, reads 0
        yield Register("MVFR2", 0x8, fields=word("MVFR2", Access.RO))
