"""A board in one process: Unicorn's CPU, our exception model, bus and peripherals,
and the run loop that advances virtual time.

The loop reads top to bottom: fire due events → take a pending exception →
sleep (WFI/WFE) by jumping to the next event → otherwise run instructions until
the next event, and handle whatever stopped the CPU (exception return, SVC,
semihosting, fault, sleep).
"""
from __future__ import annotations

import ctypes
import enum
import importlib
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from unicorn import (
    UC_ARCH_ARM,
    UC_ERR_FETCH_PROT,
    UC_ERR_FETCH_UNMAPPED,
    UC_ERR_INSN_INVALID,
    UC_ERR_READ_PROT,
    UC_ERR_READ_UNMAPPED,
    UC_ERR_WRITE_PROT,
    UC_ERR_WRITE_UNMAPPED,
    UC_HOOK_CODE,
    UC_HOOK_INTR,
    UC_HOOK_MEM_INVALID,
    UC_MODE_MCLASS,
    UC_MODE_THUMB,
    Uc,
    UcError,
)
from unicorn import arm_const as A

from . import mmio_cache, traps
from .boards.spec import BoardSpec
from .bus import Bus
from .core import exceptions as X
from .core.cpustate import MAX_DENY, NO_INTR, new_state
from .core.exceptions import ExceptionModel, Lockup
from .core.itm import SwvConsole
from .core.semihosting import Semihosting, SemihostingExit
from .counter import InstructionCounter, thumb_instructions
from .notes import NoteLog
from .peripherals.irq import IrqOr
from .pollskip import PollFastForward
from .regs import Peripheral
from .signals import ClockTree, IrqLine
from .vclock import PS_PER_S, VirtualClock

#: Longest stretch run without looking at cancel and the wall clock (instructions).
SLICE = 4_000_000
_INTR_SVC, _INTR_BKPT, _INTR_EXC_EXIT = 2, 7, 8
#: QEMU's data abort: in Unicorn's M profile only an exclusive access (LDREX/STREX)
#: that is not aligned to its size raises it (unmapped memory is a UcError).
_INTR_DATA_ABORT = 4
_BKPT_SEMIHOSTING = 0xBEAB


class StopCause(str, enum.Enum):
    LIMIT = "limit"
    EXIT = "exit"
    CANCEL = "cancel"
    LOCKUP = "lockup"
    WALL_CLOCK = "wall_clock"
    #: A debugger halted the core (``Machine.on_breakpoint``, ``Machine.halt_soon``).
    HALT = "halt"


@dataclass
class RunResult:
    cause: StopCause
    exit_code: int | None
    seconds: float
    #: Instructions executed since reset (a polling loop fast-forwarded counts its turns).
    instructions: int
    faults: list[str] = field(default_factory=list)
    detail: str = ""
    #: Core cycles spent asleep in WFI/WFE since reset: virtual time, no instructions.
    slept_cycles: int = 0


class _FlashArray:
    """The flash contents as the FLASH interface programs them; code translated
    from a changed page is dropped so the CPU sees the new bytes."""

    def __init__(self, memory: Any, uc: Uc, code_changed: Callable[[], None]) -> None:
        self._memory = memory
        self._uc = uc
        self._code_changed = code_changed

    def read(self, address: int, size: int) -> bytes:
        return self._memory.read(address, size)

    def write(self, address: int, data: bytes) -> None:
        self._memory.write(address, data)
        off = self._memory.offset(address)
        for start in (self._memory.base, *self._memory.aliases):
            self._uc.ctl_remove_cache(start + off, start + off + len(data))
        self._code_changed()


class Machine:
    """One emulated board. Build, ``load`` an image, ``run``; not reusable across threads."""

    #: What stopped the CPU inside Unicorn in the current slice (set by the hooks)
    _intr: int | None
    _bad_access: tuple[int, int, int, int] | None

    def __init__(self, board: BoardSpec, *, uart_out: Callable[[str, bytes], None] | None = None,
                 semihosting_out: Callable[[bytes], None] | None = None,
                 trace_out: Callable[[int, bytes], None] | None = None,
                 note: Callable[[str], None] | None = None, native: bool | None = None,
                 trace: Callable[[str], None] | None = None, fast_forward: bool = True,
                 timing: str = "exact", precharge: bool = True, swv_ports: int = 1,
                 strict_alignment: bool = False) -> None:
        self.board = board
        #: With ``trace_out``: the stimulus ports a debugger's SWV capture enables and
        #: shows (``core.itm``); ``trace_out`` gets what its ITM console shows. 0: no
        #: debugger sets the ITM up, ``trace_out`` gets every stimulus packet raw.
        self._swv_ports = swv_ports if trace_out is not None else 0
        soc = board.soc
        self._uart_out = uart_out or (lambda name, data: None)
        self._trace_out = trace_out
        #: The infrastructure log, bounded: repeats counted, not repeated (``sim.notes``).
        self._notes = NoteLog(note)
        self.uc = Uc(UC_ARCH_ARM, UC_MODE_THUMB | UC_MODE_MCLASS)
        self.state = new_state()
        self.counter = InstructionCounter(self.uc, native=native, state=self.state, timing=timing)
        #: With the native hook, SysTick wraps and exception entry/return happen in C.
        self.native = self.counter.native
        #: Exact timing counted per block where nothing can tell (``_plan_precharge``);
        #: ``precharge=False`` counts every instruction: the reference it must match.
        self._want_precharge = precharge and self.native and timing == "exact"
        #: The flash whose code runs precharged (see ``_plan_precharge``), if any.
        self.precharged_flash: Any = None
        self.clock = VirtualClock(self.counter, soc.reset_hz)
        self.clock.deadline_listener = self.counter.stop_at
        self.clocks = ClockTree(HSI=8_000_000, HSE=board.hse_hz, LSI=40_000, LSE=32_768,
                                SYSCLK=soc.reset_hz, HCLK=soc.reset_hz, PCLK1=soc.reset_hz,
                                PCLK2=soc.reset_hz, TIMCLK1=soc.reset_hz, TIMCLK2=soc.reset_hz)
        self.clocks.subscribe(lambda: self.clock.set_hz(self.clocks["HCLK"]))
        self.bus = Bus(self.uc, self.note)
        self.exc = ExceptionModel(self.uc, irq_count=soc.irq_count,
                                  priority_bits=soc.priority_bits,
                                  read_word=lambda a: self.bus.read(a, 4),
                                  on_change=self.counter.stop_soon, state=self.state,
                                  # without the native hook a slice must end at each wrap
                                  on_systick=None if self.native else self.counter.stop_at)
        for m in soc.memories:
            mem = self.bus.add_memory(m.name, m.base, m.size, writable=m.writable,
                                      fill=m.fill, aliases=m.aliases)
            for offset, data in m.content:
                mem.write(m.base + offset, data)
        self.semihosting = Semihosting(
            read_memory=lambda a, n: bytes(self.uc.mem_read(a, n)),
            write_memory=lambda a, d: self.uc.mem_write(a, bytes(d)),
            console=semihosting_out or (lambda data: None),
            now_s=self.clock.seconds, note=self.note)
        self._reset_requested = False
        self._build_peripherals()
        self.poll = PollFastForward(lambda a, n: bytes(self.uc.mem_read(a, n)))
        cache = None
        if fast_forward and self.counter.native and mmio_cache.available():
            cache = mmio_cache.NativeReadCache(self.uc, self.counter.count_address(),
                                               self.bus.cached_read, self.bus.cached_write)
        self.read_cache = cache
        self.bus.map_peripherals(cache)
        if trace is not None:  # one switch: every peripheral access by register name
            for p in self.bus.peripherals.values():
                p.trace = trace
        for alias, target, size in soc.bitband:
            self.bus.add_bitband(alias, target, size)
        self._install_hooks()
        if fast_forward:
            self.bus.read_observer = self._observe_read
            self.bus.write_observer = self.poll.forget
        self._cause: StopCause | None = None
        self._exit_code: int | None = None
        self._sleeping = False
        self._sleep_kind = "wfi"
        self._waits_behind_mask = False
        self._unmask_sites = 0
        #: Core cycles spent asleep (WFI/WFE): time that passed with no instructions.
        self.slept_cycles = 0
        #: Cycles after the core halted (semihosting exit) while peripherals drained.
        self._halted_cycles = 0
        #: The image as loaded, for the trap hooks (``sim.traps``), installed lazily: the
        #: division hooks once firmware sets CCR.DIV_0_TRP, the alignment ones UNALIGN_TRP.
        self._segments: list[tuple[int, bytes]] = []
        self._trap_hooks: dict[str, bool] = {}  # kind → installed (False: wanted)
        #: Check LDRD/STRD/LDM/STM/VLDR/VSTR alignment from the start, as the architecture
        #: does, rather than once UNALIGN_TRP is set (a Python hook per such access).
        self._strict_alignment = strict_alignment
        self._access_sites: list[tuple[int, traps.Access]] | None = None
        #: A trap a hook found before its instruction ran: (fault, CFSR bits, why).
        self._trap: tuple[int, int, str] | None = None
        self.faults: list[str] = []

    # -- construction -----------------------------------------------------------
    def note(self, line: str) -> None:
        """Infrastructure log: what the emulator noticed (never the UART output). A
        note seen before is counted; the sink gets summaries (see ``sim.notes``)."""
        self._notes.add(line)

    @property
    def notes(self) -> list[str]:
        """The notes passed on so far, summaries included (bounded)."""
        return list(self._notes.lines)

    def _build_peripherals(self) -> None:
        self.peripherals: dict[str, Any] = {}
        common = {"clock": self.clock, "clocks": self.clocks, "exceptions": self.exc,
                  "note": self.note, "request_reset": self.request_reset,
                  "irq_count": self.board.soc.irq_count}
        shared: dict[int, IrqOr] = {}

        def line(irq: int) -> Any:
            """Lines shared by several sources (TIM1_UP_TIM16 ...) see the OR of them."""
            if irq not in shared:
                shared[irq] = IrqOr(IrqLine(self.exc, irq))
            return shared[irq].input()

        for spec in self.board.soc.peripherals:
            module_name, class_name = spec.model.split(":")
            cls = getattr(importlib.import_module(f"{__package__}.{module_name}"), class_name)
            kwargs = dict(spec.args)
            for arg, irq in spec.irqs.items():
                if isinstance(irq, int):
                    kwargs[arg] = line(irq)
                elif isinstance(irq, dict):
                    kwargs[arg] = {key: line(n) for key, n in irq.items()}
                else:
                    kwargs[arg] = {n: line(n) for n in irq}
            kwargs.update(self._wiring(spec.name, cls))
            accepted = cls.__init__.__code__.co_varnames
            kwargs.update({k: v for k, v in common.items() if k in accepted and k not in kwargs})
            p = cls(spec.name, spec.base, **kwargs)
            self.peripherals[spec.name] = p
            self.bus.add_peripheral(p)
        for connect in self.board.soc.wiring:
            connect(self.peripherals)
        for base, size in self.board.soc.peripheral_space:
            self.bus.fill_unmodelled(base, size)

    def _wiring(self, name: str, cls: type[Peripheral]) -> dict[str, Any]:
        """What the board connects to a peripheral: host channels and external parts."""
        accepted = cls.__init__.__code__.co_varnames
        wiring: dict[str, Any] = {}
        if "tx" in accepted:
            wiring["tx"] = lambda data, name=name: self._uart_out(name, data)
        if "hse_hz" in accepted:
            wiring["hse_hz"] = self.board.hse_hz
        if "external" in accepted:
            wiring["external"] = self.board.idle_levels(name)
        if "floating_level" in accepted:
            wiring["floating_level"] = self.board.floating_level
        if "out" in accepted and self._trace_out is not None:
            wiring["out"] = (SwvConsole(self._trace_out, self._swv_ports) if self._swv_ports
                             else self._trace_out)
        if "swv_ports" in accepted:
            wiring["swv_ports"] = self._swv_ports
        if "memory" in accepted:
            flash = self.bus.memory_at(self.board.soc.memory("flash").base)
            wiring["memory"] = _FlashArray(flash, self.uc, self.counter.forget_blocks)
        if "bus_read" in accepted:  # DMA masters see the bus as the CPU does
            wiring["bus_read"] = self.bus.read
            wiring["bus_write"] = self.bus.write
        if "on_ccr" in accepted:
            wiring["on_ccr"] = self._ccr_written
        if "on_event" in accepted:  # EXTI events wake WFE
            wiring["on_event"] = lambda line: setattr(self.exc, "event_register", True)
        if "channel_values" in accepted:
            wiring["channel_values"] = {ch: v for adc, ch, v in self.board.analog if adc == name}
        if "common" in accepted:
            wiring["common"] = self.peripherals.get(
                "ADC12_COMMON" if name in ("ADC1", "ADC2") else "ADC34_COMMON")
        return wiring

    def _install_hooks(self) -> None:
        if self.native:
            self.state.fast = 1
            self.counter.add_native_interrupts()
        else:
            self.uc.hook_add(UC_HOOK_INTR, self._on_interrupt)
        self.uc.hook_add(UC_HOOK_MEM_INVALID, self._on_invalid_memory)

    # -- loading and reset --------------------------------------------------------
    def _watch_unmasking(self, segments: list[tuple[int, bytes]]) -> list[int]:
        """Hook every CPSIE, MSR PRIMASK/BASEPRI/FAULTMASK and SEV in the image.

        Unicorn runs these without telling anyone; an interrupt waiting behind
        the mask must be taken right after them, so the CPU stops there, and
        SEV sets the event register that WFE consumes.
        """
        seen = 0
        marks = []
        for address, data in segments:
            for off in range(0, len(data) - 1, 2):
                hw = data[off] | data[off + 1] << 8
                hit = hw in (0xB661, 0xB662, 0xB663)
                if not hit and hw & 0xFFF0 == 0xF380 and off + 3 < len(data):
                    hw2 = data[off + 2] | data[off + 3] << 8
                    hit = hw2 & 0xFF00 == 0x8800 and 0x10 <= (hw2 & 0xFF) <= 0x13
                if hit:
                    for at in self._views(address + off):
                        self.uc.hook_add(UC_HOOK_CODE, self._after_unmask, begin=at, end=at)
                    marks.append(address + off)
                    seen += 1
                elif hw == 0xBF40:  # SEV: Unicorn runs it as a no-op
                    for at in self._views(address + off):
                        self.uc.hook_add(UC_HOOK_CODE, self._on_sev, begin=at, end=at)
        self._unmask_sites = seen
        return marks

    # -- precharging ------------------------------------------------------------
    def _plan_precharge(self) -> None:
        """Precharge when the image runs from flash at its own address: code there
        then runs counted at the alias and quickly at the canonical address (see
        ``hwut_block_exact`` in sim/native/counter.c). An image linked at the alias
        runs counted throughout, so that every address it sees stays its own."""
        flash = next((m for m in self.bus.memories if m.name == "flash" and 0 in m.aliases),
                     None)
        if (not self._want_precharge or flash is None or self.precharged_flash is not None
                or not flash.base <= self.bus.read(4, 4) & ~1 < flash.base + flash.size):
            return
        mmio = self.bus.mmio_ranges()
        if len(mmio) > MAX_DENY:
            return
        self.precharged_flash = flash
        self._marks = (ctypes.c_ubyte * (flash.size // 16))()
        self.counter.enable_precharge(flash.base, flash.size, mmio, self._marks)

    def _views(self, address: int) -> list[int]:
        """Where the instruction at ``address`` may run: flash code in both views."""
        flash = self.precharged_flash
        if flash is not None and flash.base <= address < flash.base + flash.size:
            return [address, address - flash.base]
        return [address]

    def _mark(self, address: int) -> None:
        """The instruction at ``address`` (canonical) runs counted from now on."""
        off = address - self.precharged_flash.base
        self._marks[off >> 4] |= 1 << ((off >> 1) & 7)

    def _canonical(self, address: int) -> int:
        """The address firmware would see: flash code counted at the alias is the
        same code as at the canonical address."""
        flash = self.precharged_flash
        if flash is not None and address < flash.size:
            return address + flash.base
        return address

    def _rewind_precharged(self) -> bool:
        """An error inside a precharged block (an MMIO access refused, a fault, a
        flash write): count up to the instruction, mark it, and run it again
        counted at the alias, where it does what it does with exact time. (Only
        an error can stop such a block early: traps end a block, and the core
        model raises none mid-block.)"""
        st = self.state
        if not st.quick:
            return False
        st.quick = 0
        pc = self.uc.reg_read(A.UC_ARM_REG_PC)
        if not st.quick_pc <= pc < st.quick_pc + st.quick_size:
            return False
        before = bytes(self.uc.mem_read(st.quick_pc, pc - st.quick_pc))
        st.count = st.quick_start + thumb_instructions(before)
        self._mark(pc)
        self.counter.forget_blocks()
        self.uc.reg_write(A.UC_ARM_REG_PC, (pc - self.precharged_flash.base) | 1)
        return True

    def _ccr_written(self, ccr: int) -> None:
        """A trap enabled: its hooks go in between slices (from the next instruction)."""
        wanted = (("divide",) if ccr & traps.CCR_DIV_0_TRP else ()) + \
            (("multiword", "align") if ccr & traps.CCR_UNALIGN_TRP else ())
        for kind in wanted:
            if kind not in self._trap_hooks:
                self._trap_hooks[kind] = False
                self.counter.stop_soon()

    def _hook_traps(self) -> None:
        """A code hook on every site of the wanted traps; in precharged flash those run
        counted from now on, so that a trap stops at its instruction, count exact."""
        for kind, installed in list(self._trap_hooks.items()):
            if installed:
                continue
            hook: Callable[[Uc, int, int, Any], None]  # user_data: a register or an Access
            if kind == "divide":
                sites: list[tuple[int, Any]] = list(traps.divide_sites(self._segments))
                hook = self._on_divide
            else:  # "multiword": faults always; "align": only with UNALIGN_TRP
                if self._access_sites is None:
                    self._access_sites = traps.access_sites(self._segments)
                sites = [(a, s) for a, s in self._access_sites if s.always == (kind == "multiword")]
                hook = self._on_access
            flash = self.precharged_flash
            for address, data in sites:
                for at in self._views(address):
                    self.uc.hook_add(UC_HOOK_CODE, hook, user_data=data, begin=at, end=at)
                if flash is not None and flash.contains(address):
                    self._mark(address)
            self._trap_hooks[kind] = True
        self.counter.forget_blocks()
        # mypy sees unicorn's py2 Uc (see sim.counter), which has no ctl_flush_tb
        self.uc.ctl_flush_tb()  # type: ignore[attr-defined]

    def _on_divide(self, uc: Uc, address: int, size: int, rm: int) -> None:
        if (uc.reg_read(traps.REGISTERS[rm]) == 0
                and self.peripherals["SCB"].get("CCR") & traps.CCR_DIV_0_TRP):
            pc = self._canonical(address)
            self._trap = (X.USAGEFAULT, X.CFSR_DIVBYZERO, f"division by zero at 0x{pc:08x}")
            uc.emu_stop()  # before the instruction: it writes nothing

    def _on_access(self, uc: Uc, address: int, size: int, site: traps.Access) -> None:
        if not (site.always or self.peripherals["SCB"].get("CCR") & traps.CCR_UNALIGN_TRP):
            return
        ea = site.address(uc.reg_read, address)
        if ea & site.mask:
            pc = self._canonical(address)
            self._trap = (X.USAGEFAULT, X.CFSR_UNALIGNED,
                          f"unaligned access to 0x{ea:08x} at 0x{pc:08x}")
            uc.emu_stop()

    def _on_sev(self, uc: Uc, address: int, size: int, _user: object) -> None:
        self.exc.event_register = True

    def _after_unmask(self, uc: Uc, address: int, size: int, _user: object) -> None:
        if self._waits_behind_mask:
            self.counter.stop_soon()  # stop right after this instruction

    def load(self, segments: list[tuple[int, bytes]]) -> None:
        """Place an image's segments in memory, as a flash programmer would."""
        for address, data in segments:
            mem = self.bus.memory_at(address)
            if mem is None or not mem.contains(address + len(data) - 1):
                raise ValueError(f"segment at 0x{address:08x} (+{len(data)}) is outside memory")
            mem.write(address, data)
        self._plan_precharge()  # its hooks first: the count goes up before the unmask hooks look
        self._segments = list(segments)
        self._access_sites = None
        if self._strict_alignment:
            self._trap_hooks["multiword"] = False
        flash = self.precharged_flash
        for at in self._watch_unmasking(segments):
            if flash is not None and flash.contains(at):
                self._mark(self._canonical(at))
        self.reset()

    def request_reset(self) -> None:
        self._reset_requested = True
        self.counter.stop_soon()

    def reset(self, system: bool = False) -> None:
        """Core and peripheral reset; memory keeps its content, as on the chip. A system
        reset (SYSRESETREQ) keeps what only power-on clears (RCC's backup domain)."""
        self.exc.reset()
        self.bus.invalidate()
        for p in self.peripherals.values():
            if system and hasattr(p, "system_reset"):
                p.system_reset("software")
            else:
                p.reset()
        self.clocks.update(SYSCLK=self.board.soc.reset_hz, HCLK=self.board.soc.reset_hz,
                           PCLK1=self.board.soc.reset_hz, PCLK2=self.board.soc.reset_hz,
                           TIMCLK1=self.board.soc.reset_hz, TIMCLK2=self.board.soc.reset_hz)
        uc = self.uc
        for r in range(A.UC_ARM_REG_R0, A.UC_ARM_REG_R12 + 1):
            uc.reg_write(r, 0)
        uc.reg_write(A.UC_ARM_REG_XPSR, 1 << 24)
        uc.reg_write(A.UC_ARM_REG_CONTROL, 0)
        uc.reg_write(A.UC_ARM_REG_PRIMASK, 0)
        uc.reg_write(A.UC_ARM_REG_BASEPRI, 0)
        uc.reg_write(A.UC_ARM_REG_FAULTMASK, 0)
        uc.reg_write(A.UC_ARM_REG_LR, 0xFFFF_FFFF)
        sp, pc = self.bus.read(0, 4), self.bus.read(4, 4)
        uc.reg_write(A.UC_ARM_REG_PSP, 0)
        uc.reg_write(A.UC_ARM_REG_MSP, sp & ~3)
        uc.reg_write(A.UC_ARM_REG_PC, pc | 1)
        self._sleeping = False
        self._reset_requested = False
        if self.on_reset is not None:
            self.on_reset()

    # -- host side ---------------------------------------------------------------
    def uart_receive(self, name: str, data: bytes, at_s: float | None = None,
                     paced: bool = False) -> None:
        """Bytes from the host into a serial port, now or at a virtual time; ``paced``
        sends each byte only after the firmware read the previous one."""
        port = self.peripherals[name]
        if at_s is None:
            self.bus.invalidate()
            port.receive(data, paced)
        else:
            self.clock.at_time(int(at_s * PS_PER_S), lambda: port.receive(data, paced))

    def drive_pin(self, port: str, pin: int, level: int | None, at_s: float | None = None) -> None:
        """Drive a GPIO pin from outside (1/0) or release it (None), now or at a virtual time."""
        gpio = self.peripherals[port]
        if at_s is None:
            self.bus.invalidate()
            gpio.set_input(pin, level)
        else:
            self.clock.at_time(int(at_s * PS_PER_S), lambda: gpio.set_input(pin, level))

    def drive(self, pin: str, level: int | None, at_s: float | None = None) -> None:
        """Drive a pin by name ("PA0") from outside to 1/0, or release it (None) to
        what the board leaves on it, now or at a virtual time: a job's scripted input,
        as ``press`` is for buttons. ValueError names the pins the board has."""
        port, number = self.board.pin(pin)
        self.drive_pin(port, number, level, at_s)

    def press(self, button: str, at_s: float, release_s: float | None = None) -> None:
        """Press a board button (B1 ...) at a virtual time, and release it later."""
        b = next((b for b in self.board.buttons if b.name == button), None)
        if b is None:
            raise KeyError(f"{self.board.name} has no button {button!r}; it has "
                           f"{', '.join(x.name for x in self.board.buttons) or 'none'}")
        self.drive_pin(b.port, b.pin, 1 - b.idle_level, at_s)
        if release_s is not None:
            self.drive_pin(b.port, b.pin, None, release_s)

    def watch_leds(self, callback: Callable[[str, int, float], None]) -> None:
        """``callback(led, level, seconds)`` whenever a board LED changes."""
        for led in self.board.leds:
            def changed(pin: int, level: int, led=led) -> None:
                if pin == led.pin:
                    callback(led.name, level, self.clock.seconds())
            self.peripherals[led.port].on_output(changed)

    # -- debugger support (hwut.sim.debug) -------------------------------------------------
    #: Called with the PC of a BKPT that is not semihosting's; True halts the core there
    #: (a debugger with C_DEBUGEN set), False keeps the HardFault of a core without one.
    on_breakpoint: Callable[[int], bool] | None = None
    #: A debugger serves semihosting: a BKPT 0xAB halts the core as any BKPT does (when
    #: ``on_breakpoint`` says so), as on a real core, instead of being served here.
    debugger_semihosting: bool = False
    #: Called at the end of every reset (a debugger's vector catch and S_RESET_ST).
    on_reset: Callable[[], None] | None = None

    def halt_soon(self) -> None:
        """From inside ``run`` (a hook, a callback): end it before the next instruction
        with ``StopCause.HALT``."""
        self._stop(StopCause.HALT)

    def reset_if_requested(self) -> bool:
        """A reset requested while the run loop is not running (AIRCR.SYSRESETREQ written
        by a debugger into a halted core) happens now; True if there was one."""
        if not self._reset_requested:
            return False
        self.note(f"system reset requested at {self.clock.seconds():.6f} s")
        self.reset(system=True)
        return True

    def step(self, *, take_exceptions: bool = True) -> StopCause | None:
        """One debugger single step: due events fire, then a pending exception is taken
        (the step ends on the handler's first instruction, none of it run) unless
        ``take_exceptions`` is false (C_MASKINTS), else one instruction runs. Returns
        what stopped the core besides the step (a halt, an exit), or None."""
        self._cause = None
        if self.clock.run_due():
            self.bus.invalidate()
        if self.reset_if_requested():
            return None
        self.exc.systick_catch_up(self.counter.count)
        if take_exceptions and self._take_exception():
            return self._cause
        self._sleeping = False
        start = self.counter.count
        for _ in range(4):  # a precharged block refused its MMIO access: rewound, run again
            self._run_to(self.counter.count + 1)
            if self.counter.count != start or self._cause is not None:
                break
        return self._cause

    # -- hooks (run inside Unicorn) -------------------------------------------------
    def _on_interrupt(self, uc: Uc, intno: int, _user: object) -> None:
        self._intr = intno
        uc.emu_stop()

    def _on_invalid_memory(self, uc: Uc, access: int, address: int, size: int, value: int,
                           _user: object) -> bool:
        self._bad_access = (access, address, size, value)
        return False

    def _next_deadline(self) -> int | None:
        """The next cycle at which something outside the CPU happens (events, SysTick)."""
        nxt, tick = self.clock.next_deadline(), self.exc.systick_next
        if tick is None:
            return nxt
        return tick if nxt is None else min(nxt, tick)

    def _observe_read(self, address: int, value: int, peripheral: Any, offset: int) -> int | None:
        """Skip the remaining turns of a pure polling loop (see ``sim.pollskip``), and
        say until when this read may be answered from the native read cache."""
        stable = peripheral.stable_until(offset)
        if stable is None:
            # the read may have changed the model (RDR pops RXNE): cached answers are stale
            self.bus.invalidate()
            self.poll.forget()
            return None
        now = self.counter.count
        nxt = self._next_deadline()
        until = min(stable, nxt if nxt is not None else now + SLICE)
        poll = self.poll
        pc = self._canonical(self.uc.reg_read(A.UC_ARM_REG_PC))
        repeated = poll.observe(pc, address, value)
        loop = poll.loop_at(pc)
        if loop is None:
            return until if self.read_cache is not None else None
        if repeated:
            turns = poll.turns_to_skip(loop, now, until)
            if turns > 0:
                self.counter.count = now + turns * loop.length
                poll.skipped_turns += turns
                poll.forget()
        return None  # a pure loop: its next read must reach the skipper

    # -- the run loop ------------------------------------------------------------------
    def run(self, limit_s: float, *, cancel: threading.Event | None = None,
            wall_limit_s: float | None = None) -> RunResult:
        limit = self.clock.at_time(int(limit_s * PS_PER_S), lambda: self._stop(StopCause.LIMIT))
        deadline = None if wall_limit_s is None else time.monotonic() + wall_limit_s
        self._cause = None
        detail = ""
        finished = threading.Event()
        if cancel is not None:  # a cancel ends the slice in progress, not only the next one
            threading.Thread(target=self._stop_soon_on, args=(cancel, finished), daemon=True,
                             name="hwut-sim-cancel").start()
        try:
            while self._cause is None:
                if cancel is not None and cancel.is_set():
                    self._stop(StopCause.CANCEL)
                    break
                if deadline is not None and time.monotonic() > deadline:
                    self._stop(StopCause.WALL_CLOCK)
                    break
                if self.clock.run_due():
                    self.bus.invalidate()
                if self._cause is not None:
                    break
                if self._reset_requested:
                    self.note(f"system reset requested at {self.clock.seconds():.6f} s")
                    self.reset(system=True)
                    continue
                self.exc.systick_catch_up(self.counter.count)
                if self._take_exception():
                    continue
                if self._sleeping:
                    self._sleep()
                    continue
                self._run_slice()
        except Lockup as exc:
            self._cause = StopCause.LOCKUP
            detail = f"core lockup: {exc}"
            self.faults.append(detail)
        finally:
            finished.set()
            limit.cancel()
        seconds = self.clock.seconds()
        instructions = self.counter.count - self.slept_cycles - self._halted_cycles
        if self._cause is StopCause.EXIT:
            self._drain()
        self._notes.finish()  # "note repeated N times" for what was only counted
        fault_log = self.exc.fault_log
        fault_log.finish()
        assert self._cause is not None  # the loop above ends only once a cause is set
        return RunResult(self._cause, self._exit_code, seconds, instructions,
                         list(self.faults) + [f for f in fault_log.lines if f not in self.faults],
                         detail, self.slept_cycles)

    def _stop_soon_on(self, cancel: threading.Event, finished: threading.Event) -> None:
        """Watch ``cancel`` for the length of a run: a slow slice (seconds of CPU for
        firmware that is expensive to emulate) must not delay a stop."""
        while not finished.is_set():
            if cancel.wait(0.05):
                self.counter.stop_soon()
                return

    def _drain(self, window_s: float = 0.002) -> None:
        """The core halted (semihosting exit) but peripherals run on: let what is in
        flight, the last bytes in a UART's transmitter, finish."""
        end = self.clock.cycle_at_ps(self.clock.now_ps() + int(window_s * PS_PER_S))
        while True:
            nxt = self.clock.next_deadline()
            if nxt is None or nxt > end:
                break
            if nxt > self.counter.count:
                self._halted_cycles += nxt - self.counter.count
                self.counter.count = nxt
            self.clock.run_due()

    def _stop(self, cause: StopCause) -> None:
        if self._cause is None:
            self._cause = cause
        self.counter.stop_soon()

    def _take_exception(self) -> bool:
        exc, waits_behind_mask = self.exc.next_to_take()
        self._waits_behind_mask = waits_behind_mask
        if exc is None:
            return False
        self._sleeping = False
        self.exc.enter(exc, self._canonical(self.uc.reg_read(A.UC_ARM_REG_PC)))
        return True

    def _sleep(self) -> None:
        if self.exc.wakes_from_sleep() or (self._sleep_kind == "wfe" and self.exc.event_register):
            self._sleeping = False
            if self._sleep_kind == "wfe":
                self.exc.event_register = False
            return
        nxt = self._next_deadline()
        if nxt is None:  # nothing can ever wake the core; the limit event always exists
            self._stop(StopCause.LIMIT)
            return
        now = self.counter.count
        if nxt > now:  # virtual time jumps; no instructions run
            self.slept_cycles += nxt - now
            self.counter.count = nxt

    def _run_slice(self) -> None:
        count = self.counter.count
        # With the native hook SysTick is taken inside the engine: no slice ends for it.
        nxt = self.clock.next_deadline() if self.native else self._next_deadline()
        end = count + SLICE if nxt is None else min(nxt, count + SLICE)
        self._run_to(max(end, count + 1))

    def _run_to(self, limit: int) -> None:
        """Run instructions until the count reaches ``limit`` or something stops the CPU."""
        self.counter.limit = limit
        self._intr = None
        self.state.last_intno = NO_INTR
        self._bad_access = None
        self.state.quick = 0
        if not all(self._trap_hooks.values()):
            self._hook_traps()
        pc = self.uc.reg_read(A.UC_ARM_REG_PC)
        try:
            self.uc.emu_start(pc | 1, 0xFFFF_FFFF_FFFF)
        except UcError as err:
            self._on_cpu_error(err)
            return
        if self._trap is not None:
            kind, bits, why = self._trap
            self._trap = None
            self.exc.raise_fault(kind, bits, why=why)
            return
        if self.native and self.state.last_intno != NO_INTR:
            self._intr = self.state.last_intno
        if self._intr is not None:
            self._on_cpu_interrupt(self._intr)
        elif self.counter.count < self.counter.limit and self._cause is None:
            self._check_sleep_instruction()

    # -- what stopped the CPU ---------------------------------------------------------
    def _halfword(self, address: int) -> int:
        try:
            return int.from_bytes(self.uc.mem_read(address, 2), "little")
        except UcError:
            return 0

    def _check_sleep_instruction(self) -> None:
        pc = self.uc.reg_read(A.UC_ARM_REG_PC)
        if self._halfword(pc - 2) == 0xBF30 or (self._halfword(pc - 4) == 0xF3AF
                                                and self._halfword(pc - 2) == 0x8003):
            self._sleeping, self._sleep_kind = True, "wfi"

    def _on_cpu_interrupt(self, intno: int) -> None:
        uc = self.uc
        pc = self._canonical(uc.reg_read(A.UC_ARM_REG_PC))
        if intno == _INTR_EXC_EXIT:
            self.exc.exit(pc | 1 if pc >= 0xFFFF_FF00 else uc.reg_read(A.UC_ARM_REG_PC))
        elif intno == _INTR_SVC:
            if self.exc.group(self.exc.prio[X.SVCALL]) < self.exc.execution_priority():
                self.exc.pending |= 1 << X.SVCALL
            else:
                self.exc.raise_fault(X.HARDFAULT, 0, why=f"SVC at 0x{pc - 2:08x} while masked")
        elif intno == _INTR_BKPT:
            semihosting = self._halfword(pc) == _BKPT_SEMIHOSTING
            if semihosting and not self.debugger_semihosting:
                self._semihosting_call(pc)
            elif self.on_breakpoint is not None and self.on_breakpoint(pc):
                self._stop(StopCause.HALT)  # a debugger halts the core at the BKPT
            elif semihosting:  # no debugger attached after all: served here
                self._semihosting_call(pc)
            else:
                self.exc.faults.hfsr |= 1 << 31  # DEBUGEVT
                self.exc.raise_fault(X.HARDFAULT, 0, why=f"BKPT at 0x{pc:08x} with no debugger")
        elif intno == _INTR_DATA_ABORT:
            self.exc.raise_fault(X.USAGEFAULT, X.CFSR_UNALIGNED,
                                 why=f"unaligned exclusive access at 0x{pc:08x}")
        else:
            self.exc.raise_fault(X.USAGEFAULT, X.CFSR_UNDEFINSTR,
                                 why=f"CPU exception {intno} at 0x{pc:08x}")

    def _semihosting_call(self, pc: int) -> None:
        uc = self.uc
        op, arg = uc.reg_read(A.UC_ARM_REG_R0), uc.reg_read(A.UC_ARM_REG_R1)
        try:
            result = self.semihosting.call(op, arg)
        except SemihostingExit as ex:
            self._exit_code = ex.code
            self._stop(StopCause.EXIT)
            uc.reg_write(A.UC_ARM_REG_PC, (pc + 2) | 1)
            return
        except UcError as err:
            self.note(f"semihosting call 0x{op:x} pointed at unmapped memory: {err}")
            result = 0xFFFF_FFFF
        uc.reg_write(A.UC_ARM_REG_R0, result)
        uc.reg_write(A.UC_ARM_REG_PC, (pc + 2) | 1)

    def _flash_write(self, pc: int, access: tuple[int, int, int, int]) -> bool:
        """A store into flash goes to the FLASH interface, as on the chip: it programs
        half-words while PG is set and flags PGERR otherwise. The store is then done."""
        _, address, size, value = access
        flash = self.peripherals.get("FLASH")
        mem = self.bus.memory_at(address)
        if flash is None or mem is None or mem.name != "flash":
            return False
        if size == 4:
            flash.program_halfword(address, value & 0xFFFF)
            flash.program_halfword(address + 2, value >> 16)
        elif size == 2:
            flash.program_halfword(address, value)
        else:
            flash.program_halfword(address | 1, value)  # byte writes are refused (PGERR)
        first = self._halfword(pc)
        length = 4 if first >> 11 in (0b11101, 0b11110, 0b11111) else 2
        self.uc.reg_write(A.UC_ARM_REG_PC, (pc + length) | 1)
        return True

    def _on_cpu_error(self, err: UcError) -> None:
        if self._rewind_precharged():
            return
        uc = self.uc
        pc = self._canonical(uc.reg_read(A.UC_ARM_REG_PC))
        bad = self._bad_access
        if err.errno == UC_ERR_INSN_INVALID:
            if self._halfword(pc - 2) == 0xBF20 or (self._halfword(pc - 4) == 0xF3AF
                                                    and self._halfword(pc - 2) == 0x8002):
                if self.exc.event_register:
                    self.exc.event_register = False
                else:
                    self._sleeping, self._sleep_kind = True, "wfe"
                return
            self.exc.raise_fault(X.USAGEFAULT, X.CFSR_UNDEFINSTR,
                                 why=f"undefined instruction at 0x{pc:08x}")
        elif err.errno in (UC_ERR_FETCH_UNMAPPED, UC_ERR_FETCH_PROT):
            if pc >= 0xFFFF_FF00:
                self.exc.exit(pc)
                return
            self.exc.raise_fault(X.BUSFAULT, X.CFSR_IBUSERR,
                                 why=f"instruction fetch from 0x{pc:08x}")
            self.note(f"bus fault: instruction fetch from unmapped 0x{pc:08x}")
        elif err.errno == UC_ERR_WRITE_PROT and bad and self._flash_write(pc, bad):
            return
        elif err.errno in (UC_ERR_READ_UNMAPPED, UC_ERR_WRITE_UNMAPPED, UC_ERR_READ_PROT,
                           UC_ERR_WRITE_PROT):
            address = bad[1] if bad else 0
            what = "write to" if err.errno in (UC_ERR_WRITE_UNMAPPED, UC_ERR_WRITE_PROT) else "read of"
            self.note(f"bus fault: {what} 0x{address:08x} at PC 0x{pc:08x}")
            self.exc.raise_fault(X.BUSFAULT, X.CFSR_PRECISERR | X.CFSR_BFARVALID, bfar=address,
                                 why=f"{what} 0x{address:08x} at PC 0x{pc:08x}")
        else:
            self.note(f"CPU stopped with {err} at PC 0x{pc:08x}")
            self.exc.raise_fault(X.USAGEFAULT, X.CFSR_UNDEFINSTR,
                                 why=f"{err} at 0x{pc:08x}")
