"""The emulated core under a debugger (ARMv7-M ARM C1.6): halting, stepping and
running, the core register transfer, reset and vector catch.

While the core is not halted it runs in the emulator's own run loop, in a thread
of its own, in short stretches of virtual time. Everything that touches the
machine holds ``lock``; a debugger access (``access()``) ends the current stretch
at the next instruction boundary, does its work, and lets the core run on. So a
halt request stops the core between two instructions, and a debugger reading
memory sees the machine as it is between two instructions.

By default the core does not run ahead of the wall clock (``realtime``): a board
behind a probe is judged in wall time, as real hardware is.
"""
from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from unicorn import UC_HOOK_CODE, UcError
from unicorn import arm_const as A

from .. import thumb
from ..core import exceptions as X
from ..core.exceptions import HARDFAULT, Lockup
from ..machine import Machine, StopCause

DBGKEY = 0xA05F
# DHCSR control bits (written with DBGKEY) and status bits (read)
C_DEBUGEN, C_HALT, C_STEP, C_MASKINTS, C_SNAPSTALL = 1, 1 << 1, 1 << 2, 1 << 3, 1 << 5
S_REGRDY, S_HALT, S_SLEEP, S_LOCKUP = 1 << 16, 1 << 17, 1 << 18, 1 << 19
S_RETIRE_ST, S_RESET_ST = 1 << 24, 1 << 25
# DFSR (in the SCB) bits
DFSR_HALTED, DFSR_BKPT, DFSR_DWTTRAP, DFSR_VCATCH, DFSR_EXTERNAL = 1, 2, 4, 8, 16
# DEMCR bits
VC_CORERESET, TRCENA = 1, 1 << 24
VC_MMERR, VC_NOCPERR, VC_CHKERR, VC_STATERR = 1 << 4, 1 << 5, 1 << 6, 1 << 7
VC_BUSERR, VC_HARDERR = 1 << 8, 1 << 10
#: UsageFault causes and the vector catch bit each falls under (ARMv7-M C1.6.5, DEMCR).
_USAGE_CATCH = ((X.CFSR_NOCP, VC_NOCPERR),
                (X.CFSR_UNDEFINSTR | X.CFSR_INVSTATE | X.CFSR_INVPC, VC_STATERR),
                (X.CFSR_UNALIGNED | X.CFSR_DIVBYZERO, VC_CHKERR))
DCRSR_REGWNR = 1 << 16
#: Semihosting operations that end the program (SYS_EXIT, SYS_EXIT_EXTENDED).
SEMIHOSTING_EXITS = (0x18, 0x20)

#: DCRSR.REGSEL → Unicorn register (CONTROL/FAULTMASK/BASEPRI/PRIMASK, 20, is packed).
CORE_REGISTERS: dict[int, int] = {
    **{n: A.UC_ARM_REG_R0 + n for n in range(13)},
    13: A.UC_ARM_REG_SP, 14: A.UC_ARM_REG_LR, 15: A.UC_ARM_REG_PC, 16: A.UC_ARM_REG_XPSR,
    17: A.UC_ARM_REG_MSP, 18: A.UC_ARM_REG_PSP, 33: A.UC_ARM_REG_FPSCR,
    **{64 + n: A.UC_ARM_REG_S0 + n for n in range(32)},
}
REGSEL_CFBP = 20
_CFBP = ((24, A.UC_ARM_REG_CONTROL), (16, A.UC_ARM_REG_FAULTMASK),
         (8, A.UC_ARM_REG_BASEPRI), (0, A.UC_ARM_REG_PRIMASK))


class DebugCore:
    """DHCSR, DCRSR/DCRDR and the run/halt state of ``machine``'s core.

    ``demcr`` and ``dfsr`` read and change DEMCR and DFSR where the machine keeps
    them (its CoreDebug and SCB models), so firmware and debugger see one value.
    """

    def __init__(self, machine: Machine, *, realtime: bool = True, stretch_s: float = 0.001,
                 quantum_s: float = 20e-6,
                 wall_clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[threading.Condition, float], Any] | None = None) -> None:
        self.machine = machine
        self.realtime = realtime
        self.stretch_s = stretch_s
        self.quantum_s = quantum_s
        self._core_owed = False      # the core runs a quantum before the next access
        self._wall = wall_clock
        self._sleep = sleep or (lambda cv, s: cv.wait(s))
        #: Held by whoever touches the machine (the run thread, a debugger access).
        self.lock = threading.RLock()
        self._cv = threading.Condition()
        self._pause = threading.Event()
        self._waiters = 0
        self._in_run = False
        self._control = 0            # C_DEBUGEN, C_HALT, C_STEP, C_MASKINTS, C_SNAPSTALL
        self._halted = False
        self._lockup = False
        self._reset_held = False     # nRST asserted
        self._reset_st = True        # S_RESET_ST: the core was reset since DHCSR was read
        self._retire_st = False
        self._dcrdr = 0
        self._closing = False
        self._thread: threading.Thread | None = None
        self._paced_from: tuple[float, float] | None = None
        self._skip_breakpoint: int | None = None
        self._pending_reason = DFSR_HALTED
        self._bp_hooks: dict[int, list[Any]] = {}
        #: What stopped the firmware for good, if it did (semihosting exit code).
        self.exit_code: int | None = None
        #: What ended the run thread, if something other than ``close`` did.
        self.failure: Exception | None = None
        #: Host bytes on their way to the console UART (``feed``).
        self._input: deque[bytes] = deque()
        self._console: str | None = None
        scb, core_debug = machine.peripherals["SCB"], machine.peripherals["CoreDebug"]
        self._scb, self._core_debug = scb, core_debug
        flash = machine.board.soc.memory("flash")
        flash_memory = machine.bus.memory_at(flash.base)
        assert flash_memory is not None, "every board has its flash on the bus"
        self._flash_memory = flash_memory
        #: The flash as the machine last looked at its code (load, or a reset since).
        self._flash_seen = bytes(self._flash_memory.buffer)
        machine.on_breakpoint = self._on_breakpoint
        machine.on_reset = self._on_reset
        machine.on_exception_entry = self._vector_catch

    # -- lifecycle ----------------------------------------------------------------
    def start(self, console: str | None = None) -> None:
        """Start the run thread: the core runs from where it is (power-on: its reset)."""
        if self._thread is not None:
            raise RuntimeError("DebugCore.start: already started")
        self._console = console
        self._closing = False
        self._restart_pacing()
        self._thread = threading.Thread(target=self._run_thread, name="hwut-sim-core",
                                        daemon=True)
        self._thread.start()

    def close(self) -> None:
        """Stop the run thread (the core stops where it is); idempotent."""
        with self._cv:
            self._closing = True
            self._cv.notify_all()
        self._pause.set()
        self._stop_soon()
        thread, self._thread = self._thread, None
        if thread is not None:
            thread.join(timeout=10)
            if thread.is_alive():
                raise RuntimeError("DebugCore.close: the core thread did not stop")

    def feed(self, data: bytes) -> None:
        """Bytes from the host for the console UART; delivered while the core runs."""
        with self._cv:
            self._input.append(bytes(data))
            self._cv.notify_all()

    # -- debugger access ------------------------------------------------------------
    @contextmanager
    def access(self) -> Iterator[None]:
        """Hold the machine between two instructions: the running core pauses. After
        an access a running core runs ``quantum_s`` before the next access begins, so
        a debugger polling in a loop never starves it (on a chip the core runs on
        while the probe shifts its bits)."""
        with self._cv:
            while self._core_owed and self.running and not self._closing:
                self._cv.wait()
            self._waiters += 1
        self._pause.set()
        self._stop_soon()
        try:
            with self.lock:
                yield
                self._after_access()
        finally:
            with self._cv:
                self._waiters -= 1
                if self._waiters == 0:
                    self._pause.clear()
                    self._core_owed = self.running
                self._cv.notify_all()

    def _stop_soon(self) -> None:
        if self._in_run:
            self.machine.counter.stop_soon()

    def _after_access(self) -> None:
        """A debugger write may have requested a system reset (AIRCR.SYSRESETREQ)."""
        if not self._in_run and not self._reset_held:
            self.machine.reset_if_requested()

    @property
    def halted(self) -> bool:
        return self._halted

    @property
    def running(self) -> bool:
        return not (self._halted or self._lockup or self._reset_held)

    # -- DHCSR -------------------------------------------------------------------------
    def read_dhcsr(self) -> int:
        value = self._control & 0xFFFF
        if self._halted:
            value |= S_HALT | S_REGRDY
        if self._lockup:
            value |= S_LOCKUP
        if self.machine.sleeping and not self._halted:
            value |= S_SLEEP
        if self._retire_st or self.running:
            value |= S_RETIRE_ST
        if self._reset_st or self._reset_held:
            value |= S_RESET_ST
        self._retire_st = False
        self._reset_st = self._reset_held
        return value

    def write_dhcsr(self, value: int) -> None:
        if value >> 16 != DBGKEY:
            return  # writes without the key are ignored
        control = value & (C_DEBUGEN | C_HALT | C_STEP | C_MASKINTS | C_SNAPSTALL)
        if not control & C_DEBUGEN:
            control = 0  # C_HALT, C_STEP, C_MASKINTS need C_DEBUGEN
        self._control = control
        self._publish()
        if control & C_HALT:
            if not self._halted:
                self._enter_halt(DFSR_HALTED)
        elif self._halted:
            if control & C_STEP:
                self._step()
            else:
                self._leave_halt()

    def _publish(self) -> None:
        """What firmware reads in DHCSR (C_DEBUGEN tells it a debugger is attached)."""
        self._core_debug.values[0x0] = self._control & 0xFFFF

    def _enter_halt(self, reason: int) -> None:
        if self._lockup:
            # halting ends lockup; the fault that could not be taken is dropped, so the
            # debugger can run code (a flash algorithm into a blank chip) from here
            self.machine.exc.clear_pending(HARDFAULT)
        self._halted = True
        self._lockup = False
        self.machine.wake()  # a halt ends WFI/WFE: resumed, the core runs, not sleeps on
        self._control |= C_HALT
        self._publish()
        self._scb.set_bits("DFSR", reason)
        with self._cv:
            self._cv.notify_all()

    def _leave_halt(self) -> None:
        self._halted = False
        self._control &= ~C_HALT
        self._publish()
        pc = self.machine.uc.reg_read(A.UC_ARM_REG_PC)
        self._skip_breakpoint = pc & ~1
        self._restart_pacing()
        with self._cv:
            self._cv.notify_all()

    def _step(self) -> None:
        """C_STEP with C_HALT cleared: one instruction, then halted again."""
        machine = self.machine
        pc = machine.uc.reg_read(A.UC_ARM_REG_PC)
        self._skip_breakpoint = pc & ~1
        try:
            cause = machine.step(take_exceptions=not self._control & C_MASKINTS)
        except Lockup:
            self._lockup = True
            cause = None
        self._skip_breakpoint = None
        self._retire_st = True
        if cause is StopCause.EXIT:
            self.exit_code = machine.exit_code
        self._enter_halt(DFSR_HALTED)

    # -- DCRSR / DCRDR ------------------------------------------------------------------
    def read_dcrdr(self) -> int:
        return self._dcrdr

    def write_dcrdr(self, value: int) -> None:
        self._dcrdr = value & 0xFFFF_FFFF

    def write_dcrsr(self, value: int) -> None:
        """A core register transfer; done at once (S_REGRDY stays set) while halted,
        ignored while the core runs (S_REGRDY reads 0 then)."""
        if not self._halted:
            return
        regsel = value & 0x7F
        if value & DCRSR_REGWNR:
            self.write_register(regsel, self._dcrdr)
        else:
            self._dcrdr = self.read_register(regsel)

    def read_register(self, regsel: int) -> int:
        uc = self.machine.uc
        if regsel == REGSEL_CFBP:
            return sum((uc.reg_read(r) & 0xFF) << shift for shift, r in _CFBP)
        reg = CORE_REGISTERS.get(regsel)
        if reg is None:
            return 0
        value = uc.reg_read(reg) & 0xFFFF_FFFF
        if regsel == 15:
            value &= ~1
        elif regsel == 16:
            value |= 1 << 24  # the T bit: a Cortex-M is always in Thumb state
        return value

    def write_register(self, regsel: int, value: int) -> None:
        uc = self.machine.uc
        value &= 0xFFFF_FFFF
        if regsel == REGSEL_CFBP:
            for shift, r in _CFBP:
                uc.reg_write(r, (value >> shift) & (0x3 if r == A.UC_ARM_REG_CONTROL else 0xFF))
        elif regsel == 15:
            uc.reg_write(A.UC_ARM_REG_PC, value | 1)
        elif regsel in CORE_REGISTERS:
            uc.reg_write(CORE_REGISTERS[regsel], value)
        self.machine.bus.invalidate()

    # -- reset -------------------------------------------------------------------------
    def hold_reset(self, asserted: bool) -> None:
        """nRST: held, the core does nothing; released, the system resets (the debug
        registers keep their values) and the core runs, or halts on VC_CORERESET."""
        if asserted and not self._reset_held:
            self._reset_held = True
            self._halted = False
        elif not asserted and self._reset_held:
            self._reset_held = False
            self.machine.reset(system=True)
        with self._cv:
            self._cv.notify_all()

    def _watch_new_code(self) -> None:
        """Code a debugger programmed into flash gets what the machine gives code it
        loads: its CPSIE/MSR-to-mask and SEV sites hooked (``Machine.watch_code``),
        without which an interrupt waiting behind PRIMASK is not taken after CPSIE.
        Pages are compared with what was looked at before; changed ones are scanned."""
        memory = self._flash_memory
        now = bytes(memory.buffer)
        page = 2048
        # erased pages too: the hooks on the code that was there must go
        changed = [(memory.base + off, now[off:off + page]) for off in range(0, len(now), page)
                   if now[off:off + page] != self._flash_seen[off:off + page]]
        self._flash_seen = now
        if changed:
            self.machine.watch_code(changed)

    def _on_reset(self) -> None:
        """Called by the machine after every reset (in whichever thread did it)."""
        self._watch_new_code()
        self._reset_st = True
        self._lockup = False
        self._control &= ~(C_HALT | C_STEP | C_MASKINTS)
        self._publish()
        catch = self._control & C_DEBUGEN and self._core_debug.values[0xC] & VC_CORERESET
        if catch:
            self._enter_halt(DFSR_VCATCH)
            self.machine.halt_soon()
        else:
            self._halted = False
            self._restart_pacing()
        with self._cv:
            self._cv.notify_all()

    def _vector_catch(self, exc: int) -> bool:
        """A fault handler entered: with C_DEBUGEN and its DEMCR.VC_* bit set the core
        halts on the handler's first instruction (DFSR.VCATCH), as a debugger that
        wants to see faults the firmware handles asks the chip to."""
        if not self._control & C_DEBUGEN:
            return False
        demcr = self._core_debug.values[0xC]
        if exc == HARDFAULT:
            wanted = VC_HARDERR
        elif exc == X.BUSFAULT:
            wanted = VC_BUSERR
        elif exc == X.MEMMANAGE:
            wanted = VC_MMERR
        elif exc == X.USAGEFAULT:
            cfsr = self.machine.exc.faults.cfsr
            wanted = sum(bit for causes, bit in _USAGE_CATCH if cfsr & causes)
        else:
            return False
        if not demcr & wanted:
            return False
        self._pending_reason = DFSR_VCATCH
        return True

    # -- breakpoints -------------------------------------------------------------------
    def _on_breakpoint(self, pc: int) -> bool:
        """A BKPT instruction: with C_DEBUGEN it halts the core there (DFSR.BKPT)."""
        if not self._control & C_DEBUGEN:
            return False
        self._pending_reason = DFSR_BKPT
        return True

    def set_breakpoints(self, addresses: set[int]) -> None:
        """FPB comparators: the core halts before running an instruction at one of them."""
        uc = self.machine.uc
        for address in set(self._bp_hooks) - addresses:
            for handle in self._bp_hooks.pop(address):
                uc.hook_del(handle)
        for address in addresses - set(self._bp_hooks):
            self._bp_hooks[address] = [uc.hook_add(UC_HOOK_CODE, self._hit, begin=address,
                                                   end=address)]
            uc.ctl_remove_cache(address, address + 4)

    def _hit(self, uc: Any, address: int, size: int, _user: object) -> None:
        if self._skip_breakpoint == address:
            self._skip_breakpoint = None
            return
        if self.machine.dispatch.completing == address:
            return   # a buffered store run again to complete it: it passed here already
        if self._control & C_DEBUGEN and not self._halted:
            self._pending_reason = DFSR_BKPT
            self.machine.halt_soon()
            uc.emu_stop()

    # -- the run thread ------------------------------------------------------------------
    def _restart_pacing(self) -> None:
        self._paced_from = (self._wall(), self.machine.clock.seconds())

    def _runnable(self) -> bool:
        return not self._closing and self.running and self._waiters == 0

    def _run_thread(self) -> None:
        try:
            self._run_loop()
        except Exception as exc:  # a bug in a model: the core stops, the probe still answers
            self.machine.note(f"the core stopped: {exc!r}")
            with self._cv:
                self.failure = exc
                self._lockup = True
                self._cv.notify_all()

    def _run_loop(self) -> None:
        machine = self.machine
        while True:
            with self._cv:
                while not self._closing and not self._runnable():
                    self._cv.wait()
                if self._closing:
                    return
            with self.lock:
                with self._cv:
                    if not self._runnable():
                        continue
                    pending = list(self._input)
                    self._input.clear()
                    owed = self._core_owed
                if pending and self._console is not None:
                    machine.uart_receive(self._console, b"".join(pending))
                self._pending_reason = DFSR_HALTED
                now = machine.clock.seconds()
                if owed:  # not cut short by accesses
                    result = machine.run(now + self.quantum_s)
                else:
                    self._in_run = True
                    try:
                        result = machine.run(now + self.stretch_s, cancel=self._pause)
                    finally:
                        self._in_run = False
                self._after_run(result.cause, result.exit_code)
                with self._cv:
                    self._core_owed = False
                    self._cv.notify_all()
            self._pace()

    def _after_run(self, cause: StopCause, exit_code: int | None) -> None:
        self._retire_st = True
        if cause is StopCause.HALT and not self._halted:
            if self._at_semihosting_exit():
                self.machine.drain()
            self._enter_halt(self._pending_reason)
        elif cause is StopCause.EXIT:
            # the firmware ended (semihosting): the core stops as at a BKPT
            self.exit_code = exit_code
            self._enter_halt(DFSR_BKPT)
        elif cause is StopCause.LOCKUP:
            self._lockup = True

    def _at_semihosting_exit(self) -> bool:
        """The core stopped at BKPT 0xAB asking for SYS_EXIT or SYS_EXIT_EXTENDED: the
        firmware is done, the debugger ends the job, the chip's UART still sends."""
        uc = self.machine.uc
        pc = uc.reg_read(A.UC_ARM_REG_PC) & ~1
        try:
            insn = int.from_bytes(uc.mem_read(pc, 2), "little")
        except UcError:  # an unmapped PC is no BKPT
            return False
        return insn == thumb.BKPT_SEMIHOSTING and uc.reg_read(A.UC_ARM_REG_R0) in SEMIHOSTING_EXITS

    def _pace(self) -> None:
        """Do not run ahead of the wall clock (``realtime``)."""
        if not self.realtime or self._paced_from is None:
            return
        wall0, virtual0 = self._paced_from
        with self._cv:
            while self.running and not self._closing:
                ahead = (self.machine.clock.seconds() - virtual0) - (self._wall() - wall0)
                if ahead <= 0:
                    return
                self._sleep(self._cv, ahead)
