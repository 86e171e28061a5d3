"""The ARMv7-M exception model, which Unicorn does not have for M-profile.

Unicorn executes instructions; everything between them that the architecture
does on its own is here: choosing the pending exception that may preempt,
stacking the (basic or FP-extended) frame on the right stack, entering handler
mode, and undoing it all when the handler branches to an EXC_RETURN value.
Unicorn quirks this has to respect: exception return arrives as interrupt 8;
the banked stack pointers only swap through IPSR writes or CONTROL writes in
privileged mode; the CPU runs in the Secure state, so CONTROL.SFPA must follow
FPCA or FPSCR is dropped; GE flags are restored through XPSR_NZCVQG.
"""
from __future__ import annotations

import struct
from collections.abc import Callable
from dataclasses import dataclass

from unicorn import Uc, UcError
from unicorn import arm_const as A

from ..notes import NoteLog
from .cpustate import NONE_CYCLE, PENDS, CpuState, get_set, new_state, put_set
from .regfile import RegisterFile

RESET, NMI, HARDFAULT, MEMMANAGE, BUSFAULT, USAGEFAULT = 1, 2, 3, 4, 5, 6
SVCALL, DEBUGMON, PENDSV, SYSTICK = 11, 12, 14, 15
IRQ_BASE = 16

NAMES = {NMI: "NMI", HARDFAULT: "HardFault", MEMMANAGE: "MemManage", BUSFAULT: "BusFault",
         USAGEFAULT: "UsageFault", SVCALL: "SVCall", DEBUGMON: "DebugMonitor",
         PENDSV: "PendSV", SYSTICK: "SysTick"}

# CFSR bits (ARMv7-M ARM DDI 0403E B3.2.15; PM0214 4.4.11). MMFSR is bits 7:0,
# BFSR 15:8, UFSR 31:16. Which of them this core can set, and why the others
# cannot, is the table in ``FAULT_BITS`` below.
CFSR_IACCVIOL = 1 << 0
CFSR_DACCVIOL = 1 << 1
CFSR_MUNSTKERR = 1 << 3
CFSR_MSTKERR = 1 << 4
CFSR_MLSPERR = 1 << 5
CFSR_MMARVALID = 1 << 7
CFSR_IBUSERR = 1 << 8
CFSR_PRECISERR = 1 << 9
CFSR_IMPRECISERR = 1 << 10
CFSR_UNSTKERR = 1 << 11
CFSR_STKERR = 1 << 12
CFSR_LSPERR = 1 << 13
CFSR_BFARVALID = 1 << 15
CFSR_UNDEFINSTR = 1 << 16
CFSR_INVSTATE = 1 << 17
CFSR_INVPC = 1 << 18
CFSR_NOCP = 1 << 19
CFSR_UNALIGNED = 1 << 24
CFSR_DIVBYZERO = 1 << 25
HFSR_DEBUGEVT = 1 << 31
HFSR_FORCED = 1 << 30
HFSR_VECTTBL = 1 << 1

#: Every fault status bit of the ARMv7-M ARM (B3.2.15 CFSR, B3.2.16 HFSR): the
#: register, whether this core can set it, and what sets it or why nothing can.
#: The fixture fault_bits provokes each modelled bit (tests/sim/test_fault_bits.py).
FAULT_BITS: dict[str, tuple[str, bool, str]] = {
    "IACCVIOL": ("MMFSR", True, "an instruction fetch from an Execute Never region of the "
                 "default memory map (0x40000000-0x5FFFFFFF, 0xA0000000-0xFFFFFFFF; a branch "
                 "to an EXC_RETURN value in Thread mode); MMFAR not written"),
    "DACCVIOL": ("MMFSR", False, "only an MPU region denies a data access, and no MPU is "
                 "modelled (the default map lets privileged and unprivileged code access "
                 "memory; unprivileged access to the PPB is a BusFault)"),
    "MUNSTKERR": ("MMFSR", False, "an MPU violation on unstacking: no MPU"),
    "MSTKERR": ("MMFSR", False, "an MPU violation on stacking: no MPU"),
    "MLSPERR": ("MMFSR", False, "an MPU violation during lazy FP state preservation: no "
                "MPU, and lazy preservation is not modelled (the FP frame is written at "
                "entry)"),
    "MMARVALID": ("MMFSR", False, "set only with DACCVIOL and the MPU-derived faults"),
    "IBUSERR": ("BFSR", True, "an instruction fetch from unmapped memory outside the Execute "
                "Never regions (0x60000000, past the end of flash or SRAM); BFAR not written"),
    "PRECISERR": ("BFSR", True, "a load from unmapped memory; a store there with "
                  "ACTLR.DISDEFWBUF set (no write buffer); a store to read-only memory other "
                  "than flash. BFAR = the address, BFARVALID set"),
    "IMPRECISERR": ("BFSR", True, "a store to unmapped memory through the write buffer "
                    "(ACTLR.DISDEFWBUF clear, any region but the Strongly-ordered PPB): the "
                    "store retires, the fault pends and is taken at the next instruction "
                    "boundary its priority allows (not escalated for priority: asynchronous); "
                    "BFAR not written"),
    "UNSTKERR": ("BFSR", True, "the frame of an exception return cannot be read; tail-chained "
                 "with the frame in place (SP not adjusted), BFAR not written"),
    "STKERR": ("BFSR", True, "the frame of an exception entry cannot be written; SP adjusted, "
               "the fault arrives late on the same frame, BFAR not written"),
    "LSPERR": ("BFSR", False, "a bus error during lazy FP state preservation: lazy "
               "preservation is not modelled (the FP frame is written at entry; a failure "
               "there is STKERR)"),
    "BFARVALID": ("BFSR", True, "with PRECISERR: BFAR holds the address"),
    "UNDEFINSTR": ("UFSR", True, "an undefined instruction (UDF, an unallocated encoding)"),
    "INVSTATE": ("UFSR", True, "an instruction with EPSR.T clear: an interworking branch "
                 "(BX, BLX, POP or LDR into PC) to an even address"),
    "INVPC": ("UFSR", True, "an exception return with an EXC_RETURN whose bits 3:0 name no "
              "return, or from an exception that is not active; tail-chained"),
    "NOCP": ("UFSR", True, "a floating-point instruction while CPACR.CP10 denies access (0b00, "
             "or 0b01 in unprivileged code)"),
    "UNALIGNED": ("UFSR", True, "an unaligned LDR/STR/LDRH/STRH with CCR.UNALIGN_TRP; an "
                  "unaligned LDREX/STREX always, LDRD/STRD/LDM/STM/VLDR/VSTR once "
                  "UNALIGN_TRP was set (always with Machine(strict_alignment=True))"),
    "DIVBYZERO": ("UFSR", True, "SDIV/UDIV by zero with CCR.DIV_0_TRP"),
    "VECTTBL": ("HFSR", True, "a bus error on the vector table read of an exception entry"),
    "FORCED": ("HFSR", True, "a configurable fault disabled in SHCSR, or that cannot preempt "
               "the execution priority, escalated to HardFault"),
    "DEBUGEVT": ("HFSR", True, "a BKPT with no debugger to halt the core"),
}

CONTROL_NPRIV, CONTROL_SPSEL, CONTROL_FPCA, CONTROL_SFPA = 1, 2, 4, 8
_BASIC = (A.UC_ARM_REG_R0, A.UC_ARM_REG_R1, A.UC_ARM_REG_R2, A.UC_ARM_REG_R3,
          A.UC_ARM_REG_R12, A.UC_ARM_REG_LR)
_FP = tuple(A.UC_ARM_REG_S0 + i for i in range(16))


def name_of(exc: int) -> str:
    return NAMES.get(exc, f"IRQ{exc - IRQ_BASE}")


class Lockup(Exception):
    """A fault the core cannot take (fault in HardFault, bad vector): the chip stops."""


@dataclass
class FaultStatus:
    """SCB fault status registers, owned here because faults are raised here."""

    cfsr: int = 0
    hfsr: int = 0
    mmfar: int = 0
    bfar: int = 0


class ExceptionModel:
    """Pending/active/enabled state and entry/return for one core."""

    def __init__(self, cpu: Uc, *, irq_count: int, priority_bits: int = 4,
                 read_word: Callable[[int], int],
                 on_change: Callable[[], None], state: CpuState | None = None,
                 on_systick: Callable[[int], None] | None = None) -> None:
        self.cpu = cpu
        self.irq_count = irq_count
        #: Shared with the native hook: pending/active/enabled/levels, priorities,
        #: VTOR, PRIGROUP, the event register and SysTick's next wrap live here.
        self.s = (state if state is not None else new_state()).exc
        self.s.n_exc = IRQ_BASE + irq_count
        self.s.priority_mask = (0xFF << (8 - priority_bits)) & 0xFF
        self.priority_mask = self.s.priority_mask
        self._read_word = read_word
        #: Called whenever something may now be taken (the run loop stops the slice).
        self._on_change = on_change
        #: Told of the cycle of SysTick's next wrap when it changes.
        self._on_systick = on_systick or (lambda cycle: None)
        self.faults = FaultStatus()
        #: Slots of ``raise_line_at`` handed out (``claim_line_slot``); kept over resets.
        self._line_slots = 0
        #: What faulted, bounded: a fault loop is counted, not listed (``sim.notes``).
        self.fault_log = NoteLog(what="fault")
        regs = RegisterFile(cpu)
        self._write_regs = regs.write
        self._read_masks = regs.reader((A.UC_ARM_REG_BASEPRI, A.UC_ARM_REG_PRIMASK,
                                        A.UC_ARM_REG_FAULTMASK))
        self._read_entry = regs.reader((A.UC_ARM_REG_CONTROL, A.UC_ARM_REG_XPSR,
                                        A.UC_ARM_REG_SP) + _BASIC)
        self._read_fp = regs.reader(_FP + (A.UC_ARM_REG_FPSCR,))
        self._read_exit = regs.reader((A.UC_ARM_REG_IPSR, A.UC_ARM_REG_CONTROL,
                                       A.UC_ARM_REG_MSP, A.UC_ARM_REG_PSP))
        self.reset()

    # The state, as Python sees it (bit sets as ints).
    pending = property(lambda self: get_set(self.s.pending),
                       lambda self, v: put_set(self.s.pending, v))
    active = property(lambda self: get_set(self.s.active),
                      lambda self, v: put_set(self.s.active, v))
    enabled = property(lambda self: get_set(self.s.enabled),
                       lambda self, v: put_set(self.s.enabled, v))
    levels = property(lambda self: get_set(self.s.levels),
                      lambda self, v: put_set(self.s.levels, v))
    prio = property(lambda self: self.s.prio)
    vtor = property(lambda self: self.s.vtor, lambda self, v: setattr(self.s, "vtor", v))
    prigroup = property(lambda self: self.s.prigroup,
                        lambda self, v: setattr(self.s, "prigroup", v))
    shcsr_enables = property(lambda self: self.s.shcsr_enables,
                             lambda self, v: setattr(self.s, "shcsr_enables", v))
    sevonpend = property(lambda self: bool(self.s.sevonpend),
                         lambda self, v: setattr(self.s, "sevonpend", int(bool(v))))
    event_register = property(lambda self: bool(self.s.event_register),
                              lambda self, v: setattr(self.s, "event_register", int(bool(v))))

    def reset(self) -> None:
        """The exception state at reset: nothing pending or active, priorities 0."""
        s = self.s
        for name in ("pending", "active", "enabled", "levels"):
            put_set(getattr(s, name), 0)
        for i in range(len(s.prio)):
            s.prio[i] = 0
        s.prio[RESET], s.prio[NMI], s.prio[HARDFAULT] = -3, -2, -1
        s.vtor = s.prigroup = s.shcsr_enables = 0
        s.systick_next, s.systick_period = NONE_CYCLE, 0
        for i in range(PENDS):
            s.pend_at[i] = NONE_CYCLE
        s.pend_next = s.due = NONE_CYCLE
        self.faults = FaultStatus()

    def reset_core(self, sp: int, pc: int) -> None:
        """The core registers at reset (TakeReset, ARMv7-M B1.5.5): R0-R12 zero, thread
        mode on MSP, privileged, no mask, LR unknown (all ones), SP and PC from the
        vector table's first two words."""
        cpu = self.cpu
        for r in range(A.UC_ARM_REG_R0, A.UC_ARM_REG_R12 + 1):
            cpu.reg_write(r, 0)
        # CONTROL first, from Handler mode: the engine ignores a CONTROL write in
        # unprivileged Thread mode, which is where IPSR = 0 would put the core if a
        # handler that interrupted unprivileged code (CONTROL.nPRIV set) requested
        # the reset.
        cpu.reg_write(A.UC_ARM_REG_XPSR, 1 << 24 | RESET)
        cpu.reg_write(A.UC_ARM_REG_CONTROL, 0)
        cpu.reg_write(A.UC_ARM_REG_XPSR, 1 << 24)
        cpu.reg_write(A.UC_ARM_REG_PRIMASK, 0)
        cpu.reg_write(A.UC_ARM_REG_BASEPRI, 0)
        cpu.reg_write(A.UC_ARM_REG_FAULTMASK, 0)
        cpu.reg_write(A.UC_ARM_REG_LR, 0xFFFF_FFFF)
        cpu.reg_write(A.UC_ARM_REG_PSP, 0)
        cpu.reg_write(A.UC_ARM_REG_MSP, sp & ~3)
        cpu.reg_write(A.UC_ARM_REG_PC, pc | 1)
        self._refresh_privilege()

    def _refresh_privilege(self) -> None:
        """Have the engine recompute its cached execution state from the registers just
        written. It caches privilege (from IPSR and CONTROL.nPRIV) for the code it
        translates, and refreshes the cache on an instruction's MSR or CPS but not on a
        register write from outside: after entering a handler from unprivileged code,
        or a reset from there, CPS and MSR would stay ignored as if unprivileged.
        Rewriting CPSR with its own value refreshes it and changes nothing else."""
        self.cpu.reg_write(A.UC_ARM_REG_CPSR, self.cpu.reg_read(A.UC_ARM_REG_CPSR))

    # -- the event register (SEV, WFE) ----------------------------------------------
    def send_event(self) -> None:
        """SEV, or an event from outside the core (EXTI): the next WFE does not sleep."""
        self.s.event_register = 1

    def consume_event(self) -> bool:
        """WFE: was an event registered? It is cleared either way."""
        was = bool(self.s.event_register)
        self.s.event_register = 0
        return was

    # -- SysTick's wraps, kept here so the native hook can take them too ------------
    def set_systick(self, next_cycle: int | None, period: int) -> None:
        """SysTick pends at ``next_cycle`` and every ``period`` cycles after (0: once)."""
        self.s.systick_next = NONE_CYCLE if next_cycle is None else next_cycle
        self.s.systick_period = period
        self._refresh_due()
        if next_cycle is not None:
            self._on_systick(next_cycle)

    @property
    def systick_next(self) -> int | None:
        nxt = self.s.systick_next
        return None if nxt == NONE_CYCLE else nxt

    def systick_catch_up(self, now: int) -> None:
        """Pend SysTick for wraps due by ``now`` (what the native hook does inline)."""
        s = self.s
        if now >= s.systick_next:
            while now >= s.systick_next:
                s.systick_next = (s.systick_next + s.systick_period if s.systick_period
                                  else NONE_CYCLE)
            self._refresh_due()
            self.set_pending(SYSTICK)

    # -- interrupt lines raised at a known cycle, so the native hook can raise them ---
    # A model whose next event would only raise its interrupt line (a timer's compare
    # match with CCxIE and nothing else wanted) has the line raised at that cycle here
    # instead of by a clock event: the native hook raises it between two instructions
    # and takes the interrupt without the engine stopping (``lines_due`` in
    # sim/native/counter.c). The model brings its own flags up to date lazily, at its
    # next access (sim/signals.py ``LineAtCycle``). ``pends_catch_up`` is the rule in
    # Python (the run loop, between runs of the engine) and the reference for C's.
    def claim_line_slot(self) -> int | None:
        """A slot for ``raise_line_at``, or None when all are taken."""
        for i in range(PENDS):
            if not self._line_slots >> i & 1:
                self._line_slots |= 1 << i
                return i
        return None

    def raise_line_at(self, slot: int, irq: int, cycle: int) -> None:
        """Raise interrupt line ``irq`` at ``cycle`` (as ``set_irq_level(irq, True)``)."""
        s = self.s
        s.pend_exc[slot] = IRQ_BASE + irq
        s.pend_at[slot] = cycle
        if cycle < s.pend_next:
            s.pend_next = cycle
            self._refresh_due()

    def cancel_line(self, slot: int) -> None:
        """Forget the raise of ``slot`` (fired or not)."""
        s = self.s
        if s.pend_at[slot] == NONE_CYCLE:
            return
        s.pend_at[slot] = NONE_CYCLE
        s.pend_next = min(s.pend_at)
        self._refresh_due()

    def line_due(self, slot: int) -> bool:
        """Whether ``slot`` still waits for its cycle."""
        return self.s.pend_at[slot] != NONE_CYCLE

    @property
    def next_line(self) -> int | None:
        """The cycle of the next line raised by ``raise_line_at``."""
        nxt = self.s.pend_next
        return None if nxt == NONE_CYCLE else nxt

    def pends_catch_up(self, now: int) -> None:
        """Raise the lines due by ``now`` (what the native hook does inline): a line
        already up changes nothing, as ``IrqLine.set``."""
        s = self.s
        if now < s.pend_next:
            return
        for i in range(PENDS):
            if s.pend_at[i] <= now:
                s.pend_at[i] = NONE_CYCLE
                s.pends_fired += 1
                exc = s.pend_exc[i]
                if not self.levels >> exc & 1:
                    self.set_irq_level(exc - IRQ_BASE, True)
        s.pend_next = min(s.pend_at)
        self._refresh_due()

    def _refresh_due(self) -> None:
        """The earlier of SysTick's next wrap and the next line raised (the native
        hook's one check per instruction)."""
        s = self.s
        s.due = min(s.systick_next, s.pend_next)

    def cpu_ipsr(self) -> int:
        return self.cpu.reg_read(A.UC_ARM_REG_IPSR) & 0x1FF

    def is_enabled(self, exc: int) -> bool:
        return bool(self.enabled >> exc & 1)

    def is_pending(self, exc: int) -> bool:
        return bool(self.pending >> exc & 1)

    def is_active(self, exc: int) -> bool:
        return bool(self.active >> exc & 1)

    def any_irq_pending(self) -> bool:
        return bool(self.pending >> IRQ_BASE)

    def active_count(self) -> int:
        return bin(self.active).count("1")

    def set_enabled(self, exc: int, on: bool) -> None:
        if on:
            self.enabled |= 1 << exc
            if self.pending >> exc & 1:
                self._on_change()
        else:
            self.enabled &= ~(1 << exc)

    def set_pending(self, exc: int) -> None:
        if not self.pending >> exc & 1:
            self.pending |= 1 << exc
            if self.sevonpend:
                self.event_register = True
        self._on_change()

    def clear_pending(self, exc: int) -> None:
        self.pending &= ~(1 << exc)
        if exc >= IRQ_BASE and self.levels >> exc & 1 and not self.active >> exc & 1:
            self.pending |= 1 << exc  # a level still asserted pends again at once

    def set_irq_level(self, irq: int, level: bool) -> None:
        exc = IRQ_BASE + irq
        if level:
            self.levels |= 1 << exc
            self.set_pending(exc)
        else:
            self.levels &= ~(1 << exc)

    def set_priority(self, exc: int, value: int) -> None:
        if exc > HARDFAULT:
            self.prio[exc] = value & self.priority_mask
            self._on_change()

    def priority_byte(self, exc: int) -> int:
        return self.prio[exc] & 0xFF if exc > HARDFAULT else 0

    def group(self, prio: int) -> int:
        """The group priority: what decides preemption (AIRCR.PRIGROUP)."""
        if prio < 0:
            return prio
        return prio & (0xFF << (self.prigroup + 1)) & 0xFF

    # -- arbitration --------------------------------------------------------
    def _usable_mask(self) -> int:
        # system exceptions other than the three configurable faults are always usable
        fixed = ((1 << IRQ_BASE) - 1) & ~((1 << MEMMANAGE) | (1 << BUSFAULT) | (1 << USAGEFAULT))
        faults = (self.shcsr_enables >> 16 & 7) << MEMMANAGE
        return fixed | faults | (self.enabled & ~((1 << IRQ_BASE) - 1))

    def highest_pending(self) -> int | None:
        """The pending, usable exception with the best priority (lowest number wins ties)."""
        bits = self.pending & self._usable_mask()
        if not bits:
            return None
        best, best_prio = None, 1 << 16
        prio = self.prio
        while bits:
            low = bits & -bits
            exc = low.bit_length() - 1
            if prio[exc] < best_prio:
                best, best_prio = exc, prio[exc]
            bits ^= low
        return best

    def active_priority(self) -> int:
        """Execution priority from active exceptions only (256 = thread, nothing active)."""
        best = 256
        bits = self.active
        while bits:
            low = bits & -bits
            best = min(best, self.group(self.prio[low.bit_length() - 1]))
            bits ^= low
        return best

    def execution_priority(self) -> int:
        best = self.active_priority()
        basepri, primask, faultmask = self._read_masks()
        basepri &= self.priority_mask
        if basepri:
            best = min(best, self.group(basepri))
        if primask & 1:
            best = min(best, 0)
        if faultmask & 1:
            best = min(best, -1)
        return best

    def next_to_take(self) -> tuple[int | None, bool]:
        """(exception to take now, whether one waits only behind PRIMASK/BASEPRI/FAULTMASK)."""
        exc = self.highest_pending()
        if exc is None:
            return None, False
        g = self.group(self.prio[exc])
        if g < self.execution_priority():
            return exc, False
        return None, g < self.active_priority()

    def wakes_from_sleep(self) -> bool:
        """WFI wakes on any pending enabled interrupt whose priority beats the active ones,
        even if PRIMASK keeps it from being taken."""
        exc = self.highest_pending()
        return exc is not None and self.group(self.prio[exc]) < self.active_priority()

    def _usable(self, exc: int) -> bool:
        return bool(self._usable_mask() >> exc & 1)

    # -- faults ---------------------------------------------------------------
    def raise_fault(self, kind: int, cfsr_bits: int, *, hfsr_bits: int = 0,
                    bfar: int | None = None, mmfar: int | None = None, why: str = "") -> int:
        """Record a synchronous fault with its status bits and pend the handler that
        takes it: ``kind``, or HardFault (HFSR.FORCED) when ``kind`` is disabled or may
        not preempt now; a fault that HardFault itself cannot take locks the core up.
        Returns the exception pended."""
        f = self.faults
        f.cfsr |= cfsr_bits
        f.hfsr |= hfsr_bits
        if bfar is not None:
            f.bfar = bfar
        if mmfar is not None:
            f.mmfar = mmfar
        target = self._escalated(kind, why)
        self.fault_log.add(f"{name_of(target)}: {why}")
        self.pending |= 1 << target
        return target

    def raise_async_fault(self, kind: int, cfsr_bits: int, *, why: str = "") -> int:
        """Record an asynchronous fault (an imprecise BusFault) and pend its handler.
        Unlike a synchronous one it is not escalated for want of priority: it waits,
        pending, until the execution priority lets it in (PM0214 4.4.11, IMPRECISERR);
        only a handler disabled in SHCSR sends it to HardFault (HFSR.FORCED), which
        then waits too. Returns the exception pended."""
        self.faults.cfsr |= cfsr_bits
        target = kind
        if not self._usable(kind):
            target = HARDFAULT
            self.faults.hfsr |= HFSR_FORCED
        self.fault_log.add(f"{name_of(target)}: {why}")
        self.pending |= 1 << target
        self._on_change()
        return target

    def _escalated(self, kind: int, why: str) -> int:
        """The handler that takes a fault of ``kind`` now (B1.5.14): ``kind`` if it is
        enabled and its group priority beats the execution priority, else HardFault
        with HFSR.FORCED; at an execution priority of -1 or below nothing can take
        it and the core locks up (B1.5.15)."""
        target = kind
        if not self._usable(kind) or self.group(self.prio[kind]) >= self.execution_priority():
            target = HARDFAULT
            self.faults.hfsr |= HFSR_FORCED
        if target == HARDFAULT and self.execution_priority() <= -1:
            raise Lockup(why or "fault while HardFault or NMI was active")
        return target

    def supervisor_call(self, pc: int) -> None:
        """SVC executed (``pc`` after it): SVCall pends, to be taken before the next
        instruction, or, when it could not preempt now (masked, or a handler of higher
        priority runs), the SVC escalates to HardFault (B1.5.14)."""
        if self.group(self.prio[SVCALL]) < self.execution_priority():
            self.pending |= 1 << SVCALL
        else:
            self.raise_fault(HARDFAULT, 0, why=f"SVC at 0x{pc - 2:08x} while masked")

    def breakpoint_without_debugger(self, pc: int) -> None:
        """BKPT with no debugger to halt the core: a HardFault with HFSR.DEBUGEVT."""
        self.raise_fault(HARDFAULT, 0, hfsr_bits=HFSR_DEBUGEVT,
                         why=f"BKPT at 0x{pc:08x} with no debugger")

    # -- entry and return -------------------------------------------------------
    def _fp_active(self) -> bool:
        return bool(self.cpu.reg_read(A.UC_ARM_REG_CONTROL) & CONTROL_FPCA)

    def enter(self, exc: int, return_address: int) -> None:
        """Stack the frame and start the handler of ``exc``."""
        vector = self._read_vector(exc)
        if vector is None:
            return  # HardFault pended in its place
        cpu = self.cpu
        control, xpsr, sp, *basic = self._read_entry()
        handler_mode = (xpsr & 0x1FF) != 0
        on_psp = not handler_mode and bool(control & CONTROL_SPSEL)
        extended = bool(control & CONTROL_FPCA)
        size = 0x68 if extended else 0x20
        frame = (sp - size) & ~7
        realigned = (sp - size) & 4
        data = struct.pack("<8I", *basic, return_address & ~1,
                           (xpsr & ~(1 << 9)) | ((1 << 9) if realigned else 0))
        if extended:
            data += struct.pack("<17I", *self._read_fp()) + b"\0\0\0\0"
        try:
            cpu.mem_write(frame, data)
        except UcError:
            exc, vector = self._stacking_failed(exc, vector, frame)
        exc_return = 0xFFFF_FFE1 if extended else 0xFFFF_FFF1
        if not handler_mode:
            exc_return |= 0x8
            if on_psp:
                exc_return |= 0x4
        # In order: IPSR first (handler mode: SP is MSP, CONTROL may be written).
        self._write_regs((
            (A.UC_ARM_REG_XPSR, (xpsr & 0xF80F_0000) | (1 << 24) | exc),
            (A.UC_ARM_REG_PSP if on_psp else A.UC_ARM_REG_SP, frame),
            (A.UC_ARM_REG_CONTROL, control & CONTROL_NPRIV),
            (A.UC_ARM_REG_LR, exc_return),
            (A.UC_ARM_REG_PC, vector | 1),
        ))
        self._refresh_privilege()
        self.pending &= ~(1 << exc)
        self.active |= 1 << exc
        self.event_register = True
        self._check_thumb_vector(exc, vector)

    def _check_thumb_vector(self, exc: int, vector: int) -> None:
        """ExceptionTaken (B1.5.6) sets EPSR.T from bit 0 of the vector: a handler
        address without it runs its first instruction with T clear, a UsageFault
        with UFSR.INVSTATE at the handler's priority (escalated, and for HardFault's
        own vector a lockup, as any fault there). Its stacked PC is the vector."""
        if not vector & 1:
            self.raise_fault(USAGEFAULT, CFSR_INVSTATE,
                             why=f"vector of {name_of(exc)} (0x{vector:08x}) is not a Thumb "
                                 "address")

    def _stacking_failed(self, exc: int, vector: int, frame: int) -> tuple[int, int]:
        """The frame for ``exc`` could not be written at ``frame``: a BusFault with
        BFSR.STKERR (BFAR not valid), derived from the entry (B1.5.14, PM0214 4.4.11:
        "the SP is still adjusted but the values in the context area on the stack
        might be incorrect"). It is judged against the priority the entry started
        from, and arrives late: if it beats ``exc`` its handler is entered in its
        place, on the same frame, and ``exc`` stays pending; else ``exc`` is entered
        and the fault waits. Returns the exception entered and its vector."""
        why = f"stacking for {name_of(exc)} failed: frame at 0x{frame:08x} is not in RAM"
        self.faults.cfsr |= CFSR_STKERR
        target = self._escalated(BUSFAULT, why)
        self.fault_log.add(f"{name_of(target)}: {why}")
        self.pending |= 1 << target
        if self.group(self.prio[target]) >= self.group(self.prio[exc]):
            return exc, vector
        late = self._read_vector(target)
        if late is None:
            raise Lockup(why)
        return target, late

    def _read_vector(self, exc: int) -> int | None:
        """The handler address of ``exc`` from the table at VTOR, or None when the read
        fails and a HardFault was pended instead.

        ARMv7-M ARM (DDI 0403E.b) B1.5.14 "Fault behavior", the fault table: a BusFault
        on the vector table read during exception entry is always escalated to
        HardFault, with HFSR.VECTTBL set (B3.2.16); the exception being entered stays
        pending. B1.5.15 "Unrecoverable exception cases": the same fault while
        entering HardFault or NMI, or at an execution priority of -1 or below
        (HardFault active, FAULTMASK set), cannot be taken: the core locks up.
        (The native hook leaves a failed vector read to this code.)
        """
        address = (self.vtor & ~0x7F) + 4 * exc
        try:
            return self._read_word(address)
        except LookupError:
            pass
        self.faults.hfsr |= HFSR_VECTTBL
        why = (f"vector table read for {name_of(exc)} at 0x{address:08x} failed "
               f"(VTOR 0x{self.vtor:08x})")
        if exc in (HARDFAULT, NMI) or self.execution_priority() <= -1:
            raise Lockup(why)
        self.fault_log.add(f"{name_of(HARDFAULT)}: {why}")
        self.pending |= 1 << HARDFAULT
        self._on_change()
        return None

    def exit(self, exc_return: int) -> None:
        """Undo ``enter`` for the handler that branched to ``exc_return``.

        ExceptionReturn (B1.5.8): an EXC_RETURN whose low bits name no return
        (only 0x1, 0x9 and 0xD do), or a return from an exception that is not
        active, is a UsageFault with UFSR.INVPC; a frame that cannot be read is a
        BusFault with BFSR.UNSTKERR (BFAR not valid). Both are tail-chained
        (``_chain_fault``): nothing is unstacked, SP stays where it was. Not
        modelled: the INVPC of a return to Thread mode while other handlers are
        active (CCR.NONBASETHRDENA clear) and of a stacked IPSR that does not
        match the mode returned to; the return goes through."""
        cpu = self.cpu
        ipsr, control, frame_msp, frame_psp = self._read_exit()
        ipsr &= 0x1FF
        if ipsr == 0:   # Thread mode: not a return (dispatch never sends one here)
            self.raise_fault(USAGEFAULT, CFSR_INVPC,
                             why=f"exception return 0x{exc_return:08x} in Thread mode")
            return
        if (exc_return & 0xF) not in (0x1, 0x9, 0xD) or not self.active >> ipsr & 1:
            self._chain_fault(ipsr, exc_return, USAGEFAULT, CFSR_INVPC,
                              f"bad exception return 0x{exc_return:08x} from {name_of(ipsr)}")
            return
        to_thread = bool(exc_return & 0x8)
        use_psp = bool(exc_return & 0x4)
        extended = not exc_return & 0x10
        frame = frame_psp if use_psp else frame_msp
        size = 0x68 if extended else 0x20
        try:
            raw = bytes(cpu.mem_read(frame, size))
        except UcError:
            self._chain_fault(ipsr, exc_return, BUSFAULT, CFSR_UNSTKERR,
                              f"unstacking for the return from {name_of(ipsr)} failed: "
                              f"{'PSP' if use_psp else 'MSP'} 0x{frame:08x} is not in RAM")
            return
        self.active &= ~(1 << ipsr)
        if ipsr >= IRQ_BASE and self.levels >> ipsr & 1:
            self.pending |= 1 << ipsr
        words = struct.unpack_from("<8I", raw)
        pc, xpsr = words[6], words[7]
        sp = frame + size + (4 if xpsr & (1 << 9) else 0)
        control &= CONTROL_NPRIV
        if to_thread and use_psp:
            control |= CONTROL_SPSEL
        if extended:
            control |= CONTROL_FPCA | CONTROL_SFPA
        stacked_ipsr = 0 if to_thread else xpsr & 0x1FF
        writes = list(zip(_BASIC, words[:6]))
        if extended:
            writes += list(zip(_FP, struct.unpack_from("<16I", raw, 0x20)))
        writes.append((A.UC_ARM_REG_CONTROL, control))   # still privileged here
        if extended:
            writes.append((A.UC_ARM_REG_FPSCR, struct.unpack_from("<I", raw, 0x60)[0]))
        writes += [
            (A.UC_ARM_REG_PSP if use_psp else A.UC_ARM_REG_MSP, sp),
            # NZCVQG first: that write also zeroes IPSR, which the full write then sets
            (A.UC_ARM_REG_XPSR_NZCVQG, xpsr & 0xF80F_0000),
            (A.UC_ARM_REG_XPSR, (xpsr & 0xFE0F_FC00 & ~(1 << 9)) | stacked_ipsr | (1 << 24)),
            (A.UC_ARM_REG_PC, pc | 1),
        ]
        self._write_regs(writes)
        self._refresh_privilege()
        self.event_register = True

    def _chain_fault(self, returning: int, exc_return: int, kind: int, cfsr_bits: int,
                     why: str) -> None:
        """A fault found by the return from ``returning``: that handler is deactivated,
        and the fault's (escalated as ever) is entered tail-chained, in Handler mode
        on the stack as it is, with LR = 0xF0000000 | EXC_RETURN[27:0] (ExceptionReturn,
        B1.5.8); its handler finds the frame of the return that failed."""
        self.active &= ~(1 << returning)
        if returning >= IRQ_BASE and self.levels >> returning & 1:
            self.pending |= 1 << returning
        self.faults.cfsr |= cfsr_bits
        target = self._escalated(kind, why)
        self.fault_log.add(f"{name_of(target)}: {why}")
        vector = self._read_vector(target)
        if vector is None:
            raise Lockup(why)
        xpsr = self.cpu.reg_read(A.UC_ARM_REG_XPSR)
        self._write_regs((
            (A.UC_ARM_REG_XPSR, (xpsr & 0xF80F_0000) | (1 << 24) | target),
            (A.UC_ARM_REG_LR, 0xF000_0000 | (exc_return & 0x0FFF_FFFF)),
            (A.UC_ARM_REG_PC, vector | 1),
        ))
        self._refresh_privilege()
        self.pending &= ~(1 << target)
        self.active |= 1 << target
        self.event_register = True
        self._check_thumb_vector(target, vector)
