"""A board in one process: Unicorn's CPU, our exception model, bus and peripherals,
and the run loop that advances virtual time.

The loop reads top to bottom: fire due events → take a pending exception →
sleep (WFI/WFE) by jumping to the next event → otherwise run instructions until
the next event, and hand whatever stopped the CPU to ``sim.dispatch`` (exception
return, SVC, semihosting, fault, sleep). Around it: the host's side (load,
reset, UART input, pins, buttons, LEDs, the debugger's hooks). The parts live
beside it: ``sim.counter`` and ``sim.precharge`` (virtual time), ``sim.thumb``
(decoding), ``sim.traps`` and ``sim.unmask`` (image sites, ``sim.sites``),
``sim.core.exceptions`` (the architecture's exception model).
"""
from __future__ import annotations

import enum
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from unicorn import (
    UC_ARCH_ARM,
    UC_HOOK_INTR,
    UC_HOOK_MEM_INVALID,
    UC_MODE_MCLASS,
    UC_MODE_THUMB,
    Uc,
    UcError,
)
from unicorn import arm_const as A

from . import adc_native, mmio_cache
from .boards.spec import BoardSpec
from .bus import Bus
from .core.cpustate import NO_INTR, new_state
from .core.exceptions import ExceptionModel, Lockup
from .core.itm import SwvConsole
from .core.regfile import RegisterFile
from .core.semihosting import Semihosting
from .counter import InstructionCounter
from .dispatch import After, Dispatch
from .notes import NoteLog
from .pollskip import PollFastForward
from .precharge import Precharge
from .rampskip import RampSkip
from .signals import ClockTree, IrqLine, LineAtCycle
from .sites import SiteTable
from .soc.build import Services, build_peripherals
from .timer_native import NativeCompare
from .traps import TrapHooks
from .unmask import UnmaskWatch
from .vclock import PS_PER_S, VirtualClock

#: Longest stretch run without looking at cancel and the wall clock (instructions).
SLICE = 4_000_000


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
                 strict_alignment: bool = False, native_sites: bool | None = None,
                 native_timers: bool | None = None, native_adc: bool = True) -> None:
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
        #: Parts of it the run loop looks at in every turn (ctypes makes a new object
        #: at each attribute look-up otherwise), and the PC read at each start.
        self._pre, self._idle, self._pending = self.state.pre, self.state.idle, self.state.exc.pending
        self._read_pc = RegisterFile(self.uc).single(A.UC_ARM_REG_PC)
        self.counter = InstructionCounter(self.uc, native=native, state=self.state, timing=timing)
        #: With the native hook, SysTick wraps and exception entry/return happen in C.
        self.native = self.counter.native
        #: Exact timing counted per block where nothing can tell (``sim.precharge``);
        #: ``precharge=False`` counts every instruction: the reference it must match.
        self.precharge = Precharge(self.uc, self.counter, wanted=precharge)
        #: The image's instructions that Python looks at as they run (``sim.sites``):
        #: in the native count hook's bitmap; ``native_sites=False`` gives each its own
        #: code hook instead (the reference the bitmap is tested against).
        self.sites = SiteTable(self.uc, self.counter, self.precharge,
                               lambda a: self.bus.memory_at(a), native=native_sites)
        #: The sites of the traps firmware enables in SCB_CCR (``sim.traps``).
        self.traps = TrapHooks(self.uc, self.counter, self.precharge, self.sites,
                               read_ccr=lambda: self.peripherals["SCB"].get("CCR"),
                               strict_alignment=strict_alignment)
        self.clock = VirtualClock(self.counter, soc.reset_hz)
        self.clock.exact_reads = timing == "exact"
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
        if self.counter.native:   # exception entry and return read vectors and frames
            self.counter.read_directly([(at, mem.size, mem.buffer) for mem in self.bus.memories
                                        for at in (mem.base, *mem.aliases)])
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
                                               self.counter.idle_horizon_address(),
                                               self.bus.cached_read, self.bus.cached_write)
            # idle loops are skipped in C (``idle_visit`` in counter.c): it sees reads
            # only through the cache, and must hear of those served beside it
            flash = self.bus.memory_at(soc.memory("flash").base)
            if flash is not None:
                self.counter.enable_idle_skip(flash.base, flash.size)
            self.bus.python_read = self.counter.idle_turn_unsure
        #: Loops waiting on a counting register skipped to their exit (``sim.rampskip``).
        self.ramp: RampSkip | None = None
        if cache is not None and self.state.idle.enabled:
            self.ramp = RampSkip(lambda a, n: bytes(self.uc.mem_read(a, n)), cache.address,
                                 self.state.idle.flash_base, self.state.idle.flash_size)
            self.state.idle.ramp = self.ramp.address
        self.read_cache = cache
        #: Per peripheral: the cache's quiet hits at its last write, and how many of its
        #: writes since found no hit (``_declare_quiet_writes``).
        self._quiet_use: dict[str, tuple[int, int]] = {}
        # Writes that may empty less than the whole cache: with exact timing, where the
        # timers' interrupts are raised in C and the cache holds what a write leaves
        # (block timing ends the engine's run at each timer event, which empties it all).
        if cache is not None and timing == "exact":
            for p in self.bus.peripherals.values():
                if hasattr(p, "local_effects"):
                    cache.scope_writes(p.base, p.base + p.size, self._scoped_write)
        #: Timers whose compare path C takes while they can (``sim.timer_native``); with
        #: ``native_timers=False`` every write reaches the Python model, the reference.
        self.native_timers: dict[str, NativeCompare] = {}
        if cache is not None and timing == "exact" and native_timers is not False:
            for p in self.bus.peripherals.values():
                if hasattr(p, "attach_native"):
                    p.attach_native(self._native_timer_maker(cache, p))
        #: The ADCs whose software-started conversions C takes while they hand it their
        #: state (``sim.adc_native``); ``native_adc=False`` leaves every access to the
        #: Python model (the reference the native handler is tested against).
        self.native_adcs: list[adc_native.NativeAdc] = []
        if cache is not None and timing == "exact" and native_adc:
            self.native_adcs = adc_native.attach(cache, self.bus.peripherals.values())
        self.bus.map_peripherals(cache)
        if trace is not None:  # one switch: every peripheral access by register name
            for p in self.bus.peripherals.values():
                p.trace = trace
        for alias, target, size in soc.bitband:
            self.bus.add_bitband(alias, target, size)
        self.unmask = UnmaskWatch(self.uc, self.counter, self.exc, self.precharge, self.sites)
        self.precharge.on_count_hooks = self.sites.rehook
        # sites in the native bitmap cost nothing more while precharging is suspended
        self.precharge.other_code_hooks = lambda: self.sites.code_hooks > 0
        self.sites.on_code_hooks = self.precharge.wake
        self.dispatch = Dispatch(self.uc, self.exc, self.bus, self.precharge, self.counter,
                                 semihosting=self.semihosting,
                                 flash_interface=lambda: self.peripherals.get("FLASH"),
                                 halts_at_breakpoint=self._halts_at_breakpoint,
                                 debugger_semihosting=lambda: self.debugger_semihosting,
                                 write_buffer=self._write_buffer_on,
                                 note=self.note)
        self._install_hooks()
        if fast_forward:
            self.bus.read_observer = self._observe_read
            self.bus.write_observer = self.poll.forget
        self._cause: StopCause | None = None
        self._exit_code: int | None = None
        self._sleeping = False
        self._sleep_kind = "wfi"
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
        """The SoC's peripherals, built by the SoC layer from its description with
        the services this machine lends them (``sim.soc.build``)."""
        trace_out = self._trace_out
        itm_out = (None if trace_out is None else
                   SwvConsole(trace_out, self._swv_ports) if self._swv_ports else trace_out)
        flash = self.bus.memory_at(self.board.soc.memory("flash").base)
        services = Services(
            clock=self.clock, clocks=self.clocks, exceptions=self.exc, note=self.note,
            irq_line=lambda irq: IrqLine(self.exc, irq), request_reset=self.request_reset,
            uart_out=lambda name, data: self._uart_out(name, data), itm_out=itm_out,
            swv_ports=self._swv_ports,
            flash=_FlashArray(flash, self.uc, self._code_changed),
            bus_read=self.bus.read, bus_write=self.bus.write, on_ccr=self._ccr_written,
            on_cpacr=self.traps.cpacr_written,
            on_event=lambda _line: self.exc.send_event(),
            line_at_cycle=self._line_at_cycle)
        self.peripherals: dict[str, Any] = build_peripherals(self.board, services)
        for p in self.peripherals.values():
            self.bus.add_peripheral(p)
        for base, size in self.board.soc.peripheral_space:
            self.bus.fill_unmodelled(base, size)

    def _native_timer_maker(self, cache: mmio_cache.NativeReadCache,
                            p: Any) -> Callable[[], Any]:
        """Registers ``p``'s native handler when the timer first hands C its state (the
        cache's table of handlers is short: only timers that use it take a place)."""
        def make() -> Any:
            handle = NativeCompare(cache, self.state.exc, p.base, p.size)
            if not handle.registered:
                return None
            self.native_timers[p.name] = handle
            return handle.state
        return make

    def _line_at_cycle(self, out: Any) -> LineAtCycle | None:
        """A model's interrupt output raised at a cycle by the native hook, without a
        clock event that would stop the engine (``sim.signals.LineAtCycle``): only where
        the hook takes exceptions and counts every instruction (exact timing)."""
        if not self.native or self.counter.timing != "exact" or not hasattr(out, "sole_line"):
            return None

        def line() -> IrqLine | None:
            sole = out.sole_line()
            return sole if isinstance(sole, IrqLine) else None

        return LineAtCycle(self.exc, line, self.exc.claim_line_slot)

    def _install_hooks(self) -> None:
        if self.native:
            self.state.fast = 1
            self.counter.add_native_interrupts()
        else:
            self.uc.hook_add(UC_HOOK_INTR, self._on_interrupt)
        self.uc.hook_add(UC_HOOK_MEM_INVALID, self._on_invalid_memory)

    def _code_changed(self) -> None:
        """Flash was programmed: what was learnt of its code is learnt again."""
        self.counter.forget_blocks()
        ramp = getattr(self, "ramp", None)   # flash programmed while the machine is built
        if ramp is not None:
            ramp.forget()

    def _write_buffer_on(self) -> bool:
        """Stores may complete before their bus error (ACTLR.DISDEFWBUF clear)."""
        ictr = self.peripherals.get("ICTR")
        return ictr is None or not ictr.get("ACTLR") & 2

    def _ccr_written(self, ccr: int) -> None:
        """SCB_CCR written: the traps it enables get their hooks (``sim.traps``)."""
        self.traps.ccr_written(ccr)

    @property
    def precharged_flash(self) -> Any:
        """The flash whose code runs precharged (``sim.precharge``), if any."""
        return self.precharge.flash

    # -- loading and reset --------------------------------------------------------
    def load(self, segments: list[tuple[int, bytes]]) -> None:
        """Place an image's segments in memory, as a flash programmer would."""
        for address, data in segments:
            mem = self.bus.memory_at(address)
            if mem is None or not mem.contains(address + len(data) - 1):
                raise ValueError(f"segment at 0x{address:08x} (+{len(data)}) is outside memory")
            mem.write(address, data)
        # precharging's hooks first: the count goes up before the unmask hooks look
        self.precharge.plan(self.bus.memories, self.bus.read(4, 4), self.bus.mmio_ranges())
        self.traps.load(segments)
        self.unmask.watch(segments)
        if self.ramp is not None:
            self.ramp.forget()
        self.reset()

    def watch_code(self, segments: list[tuple[int, bytes]]) -> None:
        """Code programmed into flash after ``load`` (by a debugger) gets what loaded code
        gets: its unmask and SEV sites hooked (``sim.unmask``), and its division and
        load/store sites the hooks of the traps firmware enables (``sim.traps``)."""
        self.unmask.watch(segments)
        self.traps.watch(segments)
        if self.ramp is not None:
            self.ramp.forget()

    def request_reset(self) -> None:
        self._reset_requested = True
        self.counter.stop_soon()

    def reset(self, system: bool = False) -> None:
        """Core and peripheral reset; memory keeps its content, as on the chip. A system
        reset (SYSRESETREQ) keeps what only power-on clears (RCC's backup domain).
        Virtual time runs on: the count, the cycles slept and the events are kept."""
        self.exc.reset()
        self.bus.invalidate()
        for p in self.peripherals.values():
            if system and hasattr(p, "system_reset"):
                p.system_reset("software")
            else:
                p.reset()
        hz = self.board.soc.reset_hz
        self.clocks.update(SYSCLK=hz, HCLK=hz, PCLK1=hz, PCLK2=hz, TIMCLK1=hz, TIMCLK2=hz)
        self.exc.reset_core(sp=self.bus.read(0, 4), pc=self.bus.read(4, 4))
        self._sleeping = False
        self._reset_requested = False
        if self.on_reset is not None:
            self.on_reset()

    def reset_if_requested(self) -> bool:
        """A reset requested by firmware or a debugger (AIRCR.SYSRESETREQ) happens now,
        between instructions; True if there was one."""
        if not self._reset_requested:
            return False
        self.note(f"system reset requested at {self.clock.seconds():.6f} s")
        self.reset(system=True)
        return True

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
    #: Called with the exception number once the core entered its handler (frame
    #: stacked, PC at the handler's first instruction); True halts the core there: a
    #: debugger's vector catch on faults (DEMCR.VC_HARDERR, ...).
    on_exception_entry: Callable[[int], bool] | None = None

    def _halts_at_breakpoint(self, pc: int) -> bool:
        return self.on_breakpoint is not None and self.on_breakpoint(pc)

    @property
    def sleeping(self) -> bool:
        """The core sleeps in WFI/WFE (DHCSR.S_SLEEP)."""
        return self._sleeping

    @property
    def exit_code(self) -> int | None:
        """The code of the last semihosting exit, if firmware made one."""
        return self._exit_code

    def drain(self) -> None:
        """The firmware ended while a debugger holds the core (a semihosting exit it
        serves): the peripherals run on as on the chip, so what is in flight, the last
        bytes in a UART's transmitter, still leaves (as at ``run``'s own exit)."""
        self._drain()

    def wake(self) -> None:
        """A debug halt ends sleep (ARMv7-M C1.4: a core in WFI/WFE leaves the sleep
        state to enter Debug state): resumed, it runs on after the WFI/WFE, from the
        PC the debugger left, which may be other code altogether (a flash algorithm)."""
        self._sleeping = False

    def halt_soon(self) -> None:
        """From inside ``run`` (a hook, a callback): end it before the next instruction
        with ``StopCause.HALT``."""
        self._stop(StopCause.HALT)

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
        self.exc.pends_catch_up(self.counter.count)
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
        """The next cycle at which something outside the CPU happens (events, SysTick,
        lines raised at a cycle)."""
        nxt, tick, line = self.clock.next_deadline(), self.exc.systick_next, self.exc.next_line
        for at in (tick, line):
            if at is not None and (nxt is None or at < nxt):
                nxt = at
        return nxt

    def _read_horizon(self) -> int | None:
        """The next clock event, and SysTick's next wrap but where the read cache serves
        reads with exact timing: what bounds a cached read (and a polling loop's skip,
        ``sim.pollskip``). Not the lines raised at a cycle: only the model that raises
        one changes there, and its own ``stable_until`` bounds its cached reads. With
        the cache and exact timing not SysTick's wrap either: the native hook takes it
        without Python, it changes no peripheral's word (SysTick's CSR says its own
        COUNTFLAG's rise: ``SysTick.stable_until``), and the idle and ramp skips stop
        at it by themselves (``due`` in counter.c); Mbed's TIM2 and ADC reads then
        stay cached across the RTX tick."""
        nxt = self.clock.next_deadline()
        if self.read_cache is not None and self.clock.exact_reads:
            return nxt
        tick = self.exc.systick_next
        if tick is None:
            return nxt
        return tick if nxt is None else min(nxt, tick)

    def _observe_read(self, address: int, value: int, peripheral: Any,
                      offset: int) -> int | mmio_cache.Ramp | mmio_cache.Step | None:
        """Say until when this read may be answered from the native read cache (whose
        loops C skips: ``idle_visit``, ``sim.rampskip``); without the cache, skip the
        remaining turns of a pure polling loop here (see ``sim.pollskip``)."""
        stable = peripheral.stable_until(offset)
        if stable is None:
            # the read may have changed the model (RDR pops RXNE): cached answers are stale
            self._forget_after(peripheral)
            self.poll.forget()
            if self.read_cache is not None and hasattr(peripheral, "read_backs"):
                self._fill_read_backs(peripheral, offset)
            return None
        now = self.counter.count
        nxt = self._read_horizon()
        horizon = nxt if nxt is not None else now + SLICE
        if self.read_cache is not None:
            # the cache answers the further reads, and a loop's turns are skipped in C
            # (``idle_visit``, sim.rampskip): cheaper than a Python read per turn
            ramp = peripheral.ramp(offset) if hasattr(peripheral, "ramp") else None
            if ramp is not None:  # a counting register: the cache counts (see mmio_cache.Ramp)
                return mmio_cache.Ramp(min(ramp[0], horizon), *ramp[1:])
            if stable < horizon and not offset & 3 and hasattr(peripheral, "step"):
                step = peripheral.step(offset)   # one change, known now: the word after it
                if step is not None and step[0] < horizon:
                    return mmio_cache.Step(step[0], step[1], horizon)
            return min(stable, horizon)
        until = min(stable, horizon)
        poll = self.poll
        pc = self.precharge.canonical(self._read_pc())
        repeated = poll.observe(pc, address, value)
        loop = poll.loop_at(pc)
        if loop is None:
            return None
        if repeated:
            turns = poll.turns_to_skip(loop, now, until)
            if turns > 0:
                self.counter.count = now + turns * loop.length
                poll.skipped_turns += turns
                poll.forget()
        return None  # a pure loop: its next read must reach the skipper

    def _scoped_write(self, address: int, size: int, value: int) -> None:
        """The read cache's write to a peripheral that may say what its writes change
        (``local_effects``): what the cache forgets before, the write, and the writes
        it may answer natively after (``quiet_writes``)."""
        try:
            p: Any = self.bus.find(address)   # a model, or None in a gap of a shared page
            self._forget_before_write(p, address - p.base if p is not None else 0)
            self.bus.cached_write(address, size, value)   # keeps a model's error itself
            if self.bus.failure is None and hasattr(p, "quiet_writes"):
                self._declare_quiet_writes(p)
            if self.bus.failure is None and hasattr(p, "read_backs"):
                self._fill_read_backs(p, address - p.base)
        except Exception as exc:  # noqa: BLE001 - raised once the engine returns, as the bus's
            if self.bus.failure is None:
                self.bus.failure = exc
            self.uc.emu_stop()

    def _forget_before_write(self, p: Any, offset: int) -> None:
        """A write of ``offset`` reaches ``p``: what the cache must forget first (the
        registers it may change, when the model says which: ``changed_by_write``)."""
        changed = getattr(p, "changed_by_write", None)
        offsets = None if changed is None else changed(offset)
        if offsets is None or not p.local_effects():
            self._forget_after(p)
            return
        assert self.read_cache is not None   # the only caller is the cache's write
        self.read_cache.clear_words(p.base, offsets)

    def _forget_after(self, p: Any) -> None:
        """An access changes ``p``: forget the cached answers it may make stale. Only
        ``p``'s own when ``p`` says its accesses change nothing else now
        (``local_effects``: a timer or the ADC without DMA); else all of them. Its
        interrupt line may change too: what the NVIC and SCB show of lines (ISPR,
        IABR, ICSR) is read through their models every time, never cached."""
        local = getattr(p, "local_effects", None)
        if self.read_cache is None or local is None or not local():
            self.bus.invalidate()
            return
        self.read_cache.clear_range(p.base, p.base + p.size)

    def _fill_read_backs(self, p: Any, offset: int) -> None:
        """A write of ``offset`` reached ``p``: what the model says its next reads
        answer (``read_backs``: the written CCRx, SR up to and past the next compare
        match) goes into the read cache now, so that those reads are hits, bounded
        by the next clock event or SysTick wrap as every cached read is."""
        cache = self.read_cache
        if cache is None:
            return
        nxt = self._read_horizon()
        now = self.counter.count
        for off, value, at, after, until in p.read_backs(offset):
            if nxt is not None:
                until = min(until, nxt)
            if until <= now:
                continue
            if at < until:
                cache.fill_step(p.base + off, 4, value, mmio_cache.Step(at, after, until))
            else:
                cache.fill(p.base + off, 4, value, until)
        link = getattr(p, "native_link", None)
        if link is not None:   # the access is done: C may take the next ones (sim.adc_native)
            link.offer()

    def _declare_quiet_writes(self, p: Any) -> None:
        """A write reached ``p``: the writes to it that would now change nothing
        (``quiet_writes``, the timers declare them) are answered by the read cache,
        by doing nothing, until the model or the next deadline may change it
        (``NativeReadCache.quiet``)."""
        cache = self.read_cache
        if cache is None:
            return
        # Declaring costs a model's look ahead: where nothing used the last ones (no
        # write since was answered natively), only every 8th write declares again.
        hits = cache.quiet_hits
        last, unused = self._quiet_use.get(p.name, (-1, 0))
        unused = unused + 1 if hits == last else 0
        self._quiet_use[p.name] = (hits, unused)
        if unused >= 4 and unused % 8:
            return
        until, writes = p.quiet_writes()
        nxt = self._read_horizon()
        if nxt is not None and nxt < until:
            until = nxt
        if until <= self.counter.count:
            return
        for offset, mask, expect in writes:
            cache.quiet(p.base + offset, 4, mask, expect, until)

    # -- the run loop ------------------------------------------------------------------
    def run(self, limit_s: float, *, cancel: threading.Event | None = None,
            wall_limit_s: float | None = None) -> RunResult:
        limit = self.clock.at_time(int(limit_s * PS_PER_S), lambda: self._stop(StopCause.LIMIT))
        deadline = None if wall_limit_s is None else time.monotonic() + wall_limit_s
        self._cause = None
        detail = ""
        finished = threading.Event()
        watcher: threading.Thread | None = None
        if cancel is not None:  # a cancel ends the slice in progress, not only the next one
            watcher = threading.Thread(target=self._stop_soon_on, args=(cancel, finished),
                                       daemon=True, name="hwut-sim-cancel")
            watcher.start()
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
                if self._reset_requested and self.reset_if_requested():
                    continue
                self.exc.systick_catch_up(self.counter.count)
                self.exc.pends_catch_up(self.counter.count)
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
            for name in self.native_timers:   # the models hold what C did again
                self.peripherals[name].take_back()
            for link in self.native_adcs:   # the models hold their state between runs
                link.withdraw()
            if watcher is not None:  # gone when run returns: nothing outlives a run
                watcher.join()
        seconds = self.clock.seconds()
        instructions = self.counter.instructions
        if self._cause is StopCause.EXIT:
            self._drain()
        self._notes.finish()  # "note repeated N times" for what was only counted
        fault_log = self.exc.fault_log
        fault_log.finish()
        assert self._cause is not None  # the loop above ends only once a cause is set
        return RunResult(self._cause, self._exit_code, seconds, instructions,
                         list(self.faults) + [f for f in fault_log.lines if f not in self.faults],
                         detail, self.counter.slept)

    def _stop_soon_on(self, cancel: threading.Event, finished: threading.Event) -> None:
        """Watch ``cancel`` for the length of a run: a slow slice (seconds of CPU for
        firmware that is expensive to emulate) must not delay a stop. Waits on
        ``finished``, so that the run's end ends this thread at once (run joins it)."""
        while not finished.wait(0.02):
            if cancel.is_set():
                self.counter.stop_soon()
                return

    def _drain(self, window_s: float = 0.002) -> None:
        """The core halted (semihosting exit) but peripherals run on: let what is in
        flight, the last bytes in a UART's transmitter, finish."""
        end = self.clock.cycle_at_ps(self.clock.now_ps() + int(window_s * PS_PER_S))
        while True:
            nxt, line = self.clock.next_deadline(), self.exc.next_line
            if line is not None and (nxt is None or line < nxt):
                nxt = line   # a timer's interrupt line, raised as its clock event would be
            if nxt is None or nxt > end:
                break
            self.counter.halt_until(nxt)
            self.clock.run_due()
            self.exc.pends_catch_up(self.counter.count)

    def _stop(self, cause: StopCause) -> None:
        if self._cause is None:
            self._cause = cause
        self.counter.stop_soon()

    def _take_exception(self) -> bool:
        pending = self._pending
        if not (pending[0] or pending[1] or pending[2] or pending[3]):
            # nothing pends (at nearly every turn of the loop): what next_to_take would
            # say, without its look at masks and priorities
            self.unmask.waits_behind_mask = False
            return False
        exc, self.unmask.waits_behind_mask = self.exc.next_to_take()
        if exc is None:
            return False
        self._sleeping = False
        self.exc.enter(exc, self.precharge.canonical(self._read_pc()))
        if self.on_exception_entry is not None and self.on_exception_entry(exc):
            self._stop(StopCause.HALT)
        return True

    def _sleep(self) -> None:
        """WFI wakes on an interrupt that could preempt (even one PRIMASK holds), WFE
        also on an event (consumed); else virtual time jumps to the next deadline."""
        event = self._sleep_kind == "wfe" and self.exc.consume_event()
        if event or self.exc.wakes_from_sleep():
            self._sleeping = False
            return
        nxt = self._next_deadline()
        if nxt is None:  # nothing can ever wake the core; the limit event always exists
            self._stop(StopCause.LIMIT)
            return
        self.counter.sleep_until(nxt)

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
        state = self.state
        state.last_intno = NO_INTR
        self._bad_access = None
        self._pre.quick = 0
        # the idle skip compares whole turns run inside the engine; whatever stopped it
        # (semihosting, an SVC, a fault, the host) may have done more than the turn did
        self._idle.period = 0
        self.precharge.adapt()  # what the last stop left to decide: where code is counted
        if self.traps.wanted:
            self.traps.install()
        if self.ramp is not None:   # loops the ramp skip met in the last run
            self.ramp.answer()
        pc = self._read_pc()
        try:
            self.uc.emu_start(pc | 1, 0xFFFF_FFFF_FFFF)
        except UcError as err:
            self.bus.raise_failure()
            self.precharge.expose_lr()
            self._after(self.dispatch.error(err, self._bad_access))
            return
        self.bus.raise_failure()
        self.precharge.expose_lr()
        if self.traps.raise_found(self.exc):
            return
        if self.native and state.last_intno != NO_INTR:
            self._intr = state.last_intno
        if self._intr is not None:
            self._after(self.dispatch.interrupt(self._intr))
        elif self.counter.count < self.counter.limit and self._cause is None:
            self._after(self.dispatch.ended_early())

    def _after(self, after: After) -> None:
        """What the run loop does about a stop that ``sim.dispatch`` handled."""
        if after.sleep is not None:
            self._sleeping, self._sleep_kind = True, after.sleep
        elif after.exit_code is not None:
            self._exit_code = after.exit_code
            self._stop(StopCause.EXIT)
        elif after.halt:
            self._stop(StopCause.HALT)

