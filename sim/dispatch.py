"""What stopped the CPU inside Unicorn, and what the architecture does about it.

A slice of instructions ends at its limit, or early: an interrupt number from
the engine (exception return, SVC, BKPT, a data abort), an engine error (an
undefined instruction, WFE, a fetch or access outside memory, a store into
flash), or a WFI that Unicorn runs as a no-op. Each becomes a call into the
exception model (a fault pended with its status bits, SVCall pended, an
exception return), a semihosting call, a FLASH-interface write, or an answer
for the run loop (``After``): sleep, exit, halt.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from unicorn import (
    UC_ERR_FETCH_PROT,
    UC_ERR_FETCH_UNMAPPED,
    UC_ERR_INSN_INVALID,
    UC_ERR_READ_PROT,
    UC_ERR_READ_UNMAPPED,
    UC_ERR_WRITE_PROT,
    UC_ERR_WRITE_UNMAPPED,
    Uc,
    UcError,
)
from unicorn import arm_const as A

from . import thumb
from .bus import Bus
from .core import exceptions as X
from .core.exceptions import ExceptionModel
from .core.semihosting import Semihosting, SemihostingExit
from .counter import INTR_EXC_EXIT, InstructionCounter
from .precharge import Precharge

#: Interrupt numbers of Unicorn's (QEMU's) ARM CPU.
INTR_SVC, INTR_BKPT = 2, 7
#: QEMU's data abort: in Unicorn's M profile only an exclusive access (LDREX/STREX)
#: that is not aligned to its size raises it (unmapped memory is a UcError).
INTR_DATA_ABORT = 4
#: QEMU's prefetch abort: an instruction fetch from an MMIO window (a peripheral, the
#: system space), which the engine cannot execute from; unmapped memory is a UcError.
INTR_PREFETCH_ABORT = 3
#: How often a buffered store's completion is tried again when another thread's stop
#: request (``InstructionCounter.stop_soon``) stopped it before it ran: a request comes
#: once per debugger access or cancel, so a second try is all it ever takes.
STORE_TRIES = 4

#: The default memory map's Execute Never regions (ARMv7-M ARM B3.1, table B3-1):
#: Peripheral 0x40000000-0x5FFFFFFF, Device 0xA0000000-0xDFFFFFFF and System
#: 0xE0000000-0xFFFFFFFF. A fetch there is a MemManage fault (MMFSR.IACCVIOL) even
#: with no MPU (PM0214 table 19, note 1), whether or not anything answers there; a
#: fetch that fails elsewhere is a bus error (BFSR.IBUSERR).
EXECUTE_NEVER = ((0x4000_0000, 0x6000_0000), (0xA000_0000, 0x1_0000_0000))


def execute_never(address: int) -> bool:
    """Is ``address`` in an Execute Never region of the default memory map?"""
    return any(lo <= address < hi for lo, hi in EXECUTE_NEVER)


@dataclass(frozen=True)
class After:
    """What the run loop does once a stop was handled (nothing, by default)."""

    #: "wfi" or "wfe": the core sleeps until something wakes it.
    sleep: str | None = None
    #: Semihosting exit: the run ends with this code.
    exit_code: int | None = None
    #: A debugger halted the core at a BKPT.
    halt: bool = False


RESUME = After()


class Dispatch:
    """Turns what stopped the CPU into what the architecture does."""

    def __init__(self, uc: Uc, exc: ExceptionModel, bus: Bus, precharge: Precharge,
                 counter: InstructionCounter, *, semihosting: Semihosting,
                 flash_interface: Callable[[], Any],
                 halts_at_breakpoint: Callable[[int], bool],
                 debugger_semihosting: Callable[[], bool] = lambda: False,
                 write_buffer: Callable[[], bool] = lambda: True,
                 note: Callable[[str], None]) -> None:
        self._uc = uc
        #: Stores go through the write buffer (ACTLR.DISDEFWBUF clear): see ``_buffered_store``.
        self._write_buffer = write_buffer
        self._exc = exc
        self._bus = bus
        self._precharge = precharge
        self._counter = counter
        #: The store ``_buffered_store`` completes (canonical address), while it runs it:
        #: it already passed what acts before an instruction runs (a breakpoint), once.
        self.completing: int | None = None
        self._semihosting = semihosting
        #: The FLASH interface model (None on a SoC without one), looked up when needed.
        self._flash_interface = flash_interface
        self._halts_at_breakpoint = halts_at_breakpoint
        #: True: a debugger serves semihosting (BKPT 0xAB halts the core, as on the chip).
        self._debugger_semihosting = debugger_semihosting
        self._note = note

    def _halfword(self, address: int) -> int:
        try:
            return int.from_bytes(self._uc.mem_read(address, 2), "little")
        except UcError:
            return 0

    def _sleep_hint_before(self, pc: int) -> str | None:
        """Is the instruction that ends at ``pc`` WFI or WFE (``thumb.sleep_hint``)?"""
        try:
            before = int.from_bytes(self._uc.mem_read(pc - 4, 4), "little")
        except UcError:  # one of the two half-words may still be there
            return thumb.sleep_hint(self._halfword(pc - 4), self._halfword(pc - 2))
        return thumb.sleep_hint(before & 0xFFFF, before >> 16)

    def ended_early(self) -> After:
        """The slice ended before its limit with nothing to say why: a WFI ran (Unicorn
        runs it as a no-op and stops), or a model stopped the CPU."""
        if self._sleep_hint_before(self._uc.reg_read(A.UC_ARM_REG_PC)) == "wfi":
            return After(sleep="wfi")
        return RESUME

    def interrupt(self, intno: int) -> After:
        uc, exc = self._uc, self._exc
        pc = self._precharge.canonical(uc.reg_read(A.UC_ARM_REG_PC))
        if intno == INTR_EXC_EXIT and not exc.cpu_ipsr():
            # Thread mode: no return (B1.5.8), a branch into the System region
            self._fetch_fault(pc & ~1)
        elif intno == INTR_EXC_EXIT:
            exc.exit(pc | 1 if pc >= 0xFFFF_FF00 else uc.reg_read(A.UC_ARM_REG_PC))
        elif intno == INTR_SVC:
            exc.supervisor_call(pc)
        elif intno == INTR_BKPT:
            semihosting = self._halfword(pc) == thumb.BKPT_SEMIHOSTING
            if semihosting and not self._debugger_semihosting():
                return self._semihosting_call(pc)
            if self._halts_at_breakpoint(pc):
                return After(halt=True)  # a debugger halts the core at the BKPT
            if semihosting:  # no debugger attached after all: served here
                return self._semihosting_call(pc)
            exc.breakpoint_without_debugger(pc)
        elif intno == INTR_DATA_ABORT:
            exc.raise_fault(X.USAGEFAULT, X.CFSR_UNALIGNED,
                            why=f"unaligned exclusive access at 0x{pc:08x}")
        elif intno == INTR_PREFETCH_ABORT:
            self._fetch_fault(pc)
        else:
            exc.raise_fault(X.USAGEFAULT, X.CFSR_UNDEFINSTR,
                            why=f"CPU exception {intno} at 0x{pc:08x}")
        return RESUME

    def _fetch_fault(self, pc: int) -> None:
        """The instruction at ``pc`` could not be fetched: MemManage IACCVIOL in an
        Execute Never region, else BusFault IBUSERR; neither fault address register
        is valid (MMARVALID, BFARVALID stay clear: B3.2.15). The stacked PC is ``pc``."""
        if execute_never(pc):
            self._exc.raise_fault(X.MEMMANAGE, X.CFSR_IACCVIOL,
                                  why=f"instruction fetch from 0x{pc:08x} (execute never)")
            self._note(f"memory management fault: instruction fetch from 0x{pc:08x}, "
                       "an execute-never region")
        else:
            self._exc.raise_fault(X.BUSFAULT, X.CFSR_IBUSERR,
                                  why=f"instruction fetch from 0x{pc:08x}")
            self._note(f"bus fault: instruction fetch from unmapped 0x{pc:08x}")

    def _buffered_store(self, address: int) -> bool:
        """A store the bus refused at ``address``, completed as the Cortex-M4's write
        buffer completes it: the instruction retires (its base writeback, the other
        words of an STM are done), the data is lost, and the bus error comes back
        later as an imprecise BusFault (BFSR.IMPRECISERR, BFAR not written: PM0214
        4.4.11), taken at the next instruction boundary its priority allows; its
        stacked PC is past the store. The write buffer takes the stores of the
        default memory map except to the Strongly-ordered PPB (0xE0000000-0xE00FFFFF),
        unless ACTLR.DISDEFWBUF is set, which makes every BusFault precise (Cortex-M4
        TRM 4.3.1). Done by mapping scratch pages where the store goes, for the
        one instruction. False: the store stays a precise fault."""
        if not self._write_buffer() or 0xE000_0000 <= address < 0xE010_0000:
            return False
        uc = self._uc
        page = 1024   # Unicorn's ARM page; an STM writes at most 64 bytes
        regions = list(uc.mem_regions())
        scratch = []
        for at in range(address & ~(page - 1), (address + 64 + page - 1) & ~(page - 1), page):
            if at < 0x1_0000_0000 and not any(lo <= at + page - 1 and at <= hi for lo, hi, _ in regions):
                uc.mem_map(at, page)
                scratch.append(at)
        pc = uc.reg_read(A.UC_ARM_REG_PC)
        try:
            done = self._complete_store(pc)
        except UcError:
            done = False
        finally:
            for at in scratch:
                uc.mem_unmap(at, page)
        return done

    def _complete_store(self, pc: int) -> bool:
        """Run the store at ``pc`` once more, now that the scratch pages take it: one
        instruction, which nothing may hold back, so that what the write buffer does
        never depends on the host. The store already passed, when it first ran, the
        checks made before an instruction: the counter's limit (the brake that ends a
        slice), SysTick's wrap or a line due (which the native hook takes), a
        breakpoint. Run again, it would meet them again: a slice that ends right after
        it (a run's limit, a clock event, a debugger's step or quantum), a stop asked
        meanwhile from another thread (a debugger's access, a cancel: they lower the
        limit) or an exception due at the next cycle stopped it before it ran, and the
        store was then reported precise (PRECISERR, BFARVALID), a fault no host access
        makes on the chip. So the limit lets exactly this instruction through, the
        native exception checks wait for the next slice (they come at the boundary
        after the store), a breakpoint sees ``completing``, and a stop that another
        thread asked during it is run past, then kept: the engine stops after it.
        The store is counted again as it was before (its second cycle)."""
        uc, counter, canonical = self._uc, self._counter, self._precharge.canonical
        state = counter.state
        limit, fast = counter.limit, state.fast
        stop_asked = False
        state.fast = 0
        self.completing = canonical(pc & ~1)
        try:
            for _ in range(STORE_TRIES):
                allowed = counter.count + 1
                counter.limit = allowed
                uc.emu_start(pc | 1, 0xFFFF_FFFF_FFFF, count=1)
                if canonical(uc.reg_read(A.UC_ARM_REG_PC)) != canonical(pc):
                    return True
                if counter.limit == allowed:
                    return False   # nothing of the host's stopped it: the store failed
                stop_asked = True
            return False
        finally:
            self.completing = None
            state.fast = fast
            counter.limit = min(limit, counter.count) if stop_asked else limit

    def _semihosting_call(self, pc: int) -> After:
        uc = self._uc
        op, arg = uc.reg_read(A.UC_ARM_REG_R0), uc.reg_read(A.UC_ARM_REG_R1)
        try:
            result = self._semihosting.call(op, arg)
        except SemihostingExit as ex:
            uc.reg_write(A.UC_ARM_REG_PC, (pc + 2) | 1)
            return After(exit_code=ex.code)
        except UcError as err:
            self._note(f"semihosting call 0x{op:x} pointed at unmapped memory: {err}")
            result = 0xFFFF_FFFF
        uc.reg_write(A.UC_ARM_REG_R0, result)
        uc.reg_write(A.UC_ARM_REG_PC, (pc + 2) | 1)
        return RESUME

    def _flash_write(self, pc: int, access: tuple[int, int, int, int]) -> bool:
        """A store into flash goes to the FLASH interface, as on the chip: it programs
        half-words while PG is set and flags PGERR otherwise. The store is then done."""
        _, address, size, value = access
        flash = self._flash_interface()
        mem = self._bus.memory_at(address)
        if flash is None or mem is None or mem.name != "flash":
            return False
        if size == 4:
            flash.program_halfword(address, value & 0xFFFF)
            flash.program_halfword(address + 2, value >> 16)
        elif size == 2:
            flash.program_halfword(address, value)
        else:
            flash.program_halfword(address | 1, value)  # byte writes are refused (PGERR)
        self._uc.reg_write(A.UC_ARM_REG_PC, (pc + thumb.size(self._halfword(pc))) | 1)
        return True

    def error(self, err: UcError, bad_access: tuple[int, int, int, int] | None) -> After:
        """The engine stopped with ``err``; ``bad_access`` is the (access, address, size,
        value) of a refused memory access, if the invalid-memory hook saw one."""
        uc, exc = self._uc, self._exc
        # EPSR.T clear (read before a rewind, whose PC write sets it again)
        arm_state = err.errno == UC_ERR_INSN_INVALID and not uc.reg_read(A.UC_ARM_REG_XPSR) >> 24 & 1
        if self._precharge.rewind() and not arm_state:
            return RESUME
        pc = self._precharge.canonical(uc.reg_read(A.UC_ARM_REG_PC))
        bad = bad_access
        if err.errno == UC_ERR_INSN_INVALID:
            if arm_state:
                # EPSR.T clear: an interworking branch (BX, BLX, POP/LDR into PC) to an
                # even address. The next instruction faults, whatever it is (A2.3.1).
                exc.raise_fault(X.USAGEFAULT, X.CFSR_INVSTATE,
                                why=f"execution in ARM state (EPSR.T clear) at 0x{pc:08x}")
                return RESUME
            if self._sleep_hint_before(pc) == "wfe":
                return RESUME if exc.consume_event() else After(sleep="wfe")
            exc.raise_fault(X.USAGEFAULT, X.CFSR_UNDEFINSTR,
                            why=f"undefined instruction at 0x{pc:08x}")
        elif err.errno in (UC_ERR_FETCH_UNMAPPED, UC_ERR_FETCH_PROT):
            # Also at an EXC_RETURN value: the engine reports every return (a BX, POP or
            # LDR into PC in Handler mode) as an interrupt; a fetch from there is none
            # (a vector pointing there, say), so it is what the System region gives.
            self._fetch_fault(pc)
        elif err.errno == UC_ERR_WRITE_PROT and bad and self._flash_write(pc, bad):
            return RESUME
        elif err.errno in (UC_ERR_READ_UNMAPPED, UC_ERR_WRITE_UNMAPPED, UC_ERR_READ_PROT,
                           UC_ERR_WRITE_PROT):
            address = bad[1] if bad else 0
            what = "write to" if err.errno in (UC_ERR_WRITE_UNMAPPED, UC_ERR_WRITE_PROT) else "read of"
            if err.errno == UC_ERR_WRITE_UNMAPPED and bad and self._buffered_store(address):
                self._note(f"bus fault: {what} 0x{address:08x} at PC 0x{pc:08x} (imprecise)")
                exc.raise_async_fault(X.BUSFAULT, X.CFSR_IMPRECISERR,
                                      why=f"{what} 0x{address:08x} at PC 0x{pc:08x}, imprecise")
                return RESUME
            self._note(f"bus fault: {what} 0x{address:08x} at PC 0x{pc:08x}")
            exc.raise_fault(X.BUSFAULT, X.CFSR_PRECISERR | X.CFSR_BFARVALID, bfar=address,
                            why=f"{what} 0x{address:08x} at PC 0x{pc:08x}")
        else:
            self._note(f"CPU stopped with {err} at PC 0x{pc:08x}")
            exc.raise_fault(X.USAGEFAULT, X.CFSR_UNDEFINSTR, why=f"{err} at 0x{pc:08x}")
        return RESUME
