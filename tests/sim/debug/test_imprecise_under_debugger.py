"""A debugger at the store that the write buffer takes (fault_bits' ``str_site``, a
store to 0x60000000 where nothing answers), through the debug port as a probe
drives it: an FPB breakpoint halts the core before the store; a single step
(DHCSR.C_STEP), or a resume with the breakpoint still set, retires it, and the
bus error is the imprecise BusFault it is without a debugger (CFSR.IMPRECISERR,
BFAR not valid), caught by the vector catch on BusFault entry. Before, the step
stopped the store's completion at the step's end and the resume met the
breakpoint again in it: both made it precise (PRECISERR | BFARVALID)."""
from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest
from elftools.elf.elffile import ELFFile
from elftools.elf.sections import SymbolTableSection

from hwut.sim.debug.board import SimulatedBoard

from .conftest import AIRCR, BUILD, DEMCR, DFSR, Swd, open_board

C_DEBUGEN, C_HALT, C_STEP = 1, 2, 4
VC_CORERESET, VC_BUSERR, VC_HARDERR = 1, 1 << 8, 1 << 10
DFSR_BKPT, DFSR_VCATCH = 2, 8
FP_CTRL, FP_COMP0 = 0xE000_2000, 0xE000_2008
CFSR, SHCSR, BFAR = 0xE000_ED28, 0xE000_ED24, 0xE000_ED38
IMPRECISERR, PRECISERR, BFARVALID = 1 << 10, 1 << 9, 1 << 15
BUSFAULTPENDED = 1 << 14
BUSFAULT_ENTRY_IPSR = 5


def _str_site() -> int:
    with (BUILD / "fault_bits.elf").open("rb") as f:
        table = ELFFile(f).get_section_by_name(".symtab")
        assert isinstance(table, SymbolTableSection)
        return int(table.get_symbol_by_name("str_site")[0]["st_value"]) & ~1


STORE = _str_site()


@pytest.fixture
def at_store() -> Iterator[Swd]:
    """fault_bits halted by an FPB breakpoint before its first buffered store (the
    IMPRECISERR case: BusFault enabled, nothing masked), vector catch on BusFault
    and HardFault entry."""
    before = set(threading.enumerate())
    target: SimulatedBoard = open_board("fault_bits")
    try:
        swd = Swd(target)
        swd.dhcsr(C_DEBUGEN | C_HALT)
        swd.wait_halted()
        swd.write32(DEMCR, VC_CORERESET)
        swd.write32(AIRCR, 0x05FA_0004)    # SYSRESETREQ: halted at the reset handler
        swd.wait_halted()
        swd.write32(DEMCR, 0)              # the cases before it run uncaught
        swd.write32(FP_COMP0, (STORE & ~3) | 1 | (2 if STORE & 2 else 1) << 30)
        swd.write32(FP_CTRL, 3)            # KEY | ENABLE
        swd.write32(DFSR, 0x1F)
        swd.dhcsr(C_DEBUGEN)
        swd.wait_halted(tries=200_000)
        assert swd.read_reg(15) == STORE and swd.read32(DFSR) & DFSR_BKPT
        assert swd.read32(CFSR) == 0
        swd.write32(DEMCR, VC_BUSERR | VC_HARDERR)
        swd.write32(DFSR, 0x1F)
        yield swd
    finally:
        target.close()
    assert set(threading.enumerate()) <= before, "a thread outlived the board"


def test_a_step_retires_the_store_and_its_fault_stays_imprecise(at_store):
    swd = at_store
    swd.dhcsr(C_DEBUGEN | C_STEP)
    swd.wait_halted()
    cfsr = swd.read32(CFSR)
    assert cfsr & (PRECISERR | BFARVALID) == 0, hex(cfsr)
    assert cfsr == IMPRECISERR, hex(cfsr)
    assert swd.read_reg(15) == STORE + 2          # past the store, the fault not yet taken
    assert swd.read32(SHCSR) & BUSFAULTPENDED


def test_a_resume_at_the_breakpoint_runs_the_store_once(at_store):
    swd = at_store
    swd.dhcsr(C_DEBUGEN)                          # the breakpoint stays set
    swd.wait_halted(tries=200_000)
    assert swd.read32(DFSR) & DFSR_VCATCH, "halted on the BusFault's entry, not at the store"
    assert swd.read_reg(16) & 0x1FF == BUSFAULT_ENTRY_IPSR
    cfsr = swd.read32(CFSR)
    assert cfsr == IMPRECISERR, hex(cfsr)
