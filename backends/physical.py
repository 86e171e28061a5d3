"""The lab backend: a real board through pyOCD (programming, reset, run control) and
pyserial (its console, the ST-LINK's virtual COM port).

Per job: open the serial port FIRST (opening a port discards bytes already waiting)
→ open the pyOCD session on the probe (never pyOCD's blocking wait for a probe) →
reset and halt (the flash algorithm must not run amid the last firmware's interrupts)
→ program the image with pyOCD's FileProgrammer (sector erase; a BIN goes to
0x08000000) → reset and run (the job's console input typed in once the firmware is
up: ``_Typist``) → stream every console byte into the job's log as it
arrives → stop at the wall-clock limit, on cancel, or when the firmware ends through
semihosting → halt, reset-halt or leave running (option ``after``) → close the
session and the port, on every path.

While the firmware runs, the core's state is read every ``POLL_S`` seconds: this
notices a probe that vanished or a target that stopped answering mid-run, and a core
that halted on a semihosting ``BKPT 0xAB``. Semihosting is served by pyOCD's own
agent (output goes to the job's log, as on the ``sim`` backend), and SYS_EXIT /
SYS_EXIT_EXTENDED end the job with stop reason ``exit`` and the firmware's code. A
board whose firmware never halts costs one debug-register read per poll. Firmware
that halts once tends to halt again soon (a semihosting printf is one call per line
or character, faults come in runs): after a halt the next poll comes after
``POLL_AFTER_HALT_S``, the wait doubling back to ``POLL_S`` while the core runs.

Faults: the core halts on entering a fault handler (vector catch on HardFault,
MemManage, BusFault and the UsageFault causes); the fault status is noted and the
core resumed at once, so a fault the firmware handles and clears is still seen. A run
that reaches its limit after a fault ends as ``fault`` (the first one in the detail),
as on the ``sim`` backend. The cost: a faulting core waits up to ``POLL_S`` in its
handler's first instruction per fault, less in a run of them (its timing changes,
its output does not).

Every failure of the bench (probe, target, flash, serial port) is an
infrastructure error whose detail says what to check; the scheduler retries such a
job and takes an instance that keeps failing offline (``hwut.scheduler``).

pyOCD and pyserial are the ``physical`` extra: imported inside functions, guarded.
"""
from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

from . import simboards
from .base import (
    Availability,
    Backend,
    BoardInfo,
    ImageFile,
    LiveItem,
    OptionError,
    OptionInfo,
    Outcome,
    RunRequest,
    StopReason,
    check_options,
)
from .extras import ExtraMissing

BIN_BASE = 0x0800_0000
#: How often the core's state is read while the firmware runs (probe health, semihosting).
POLL_S = 0.2
#: The first poll after a halt was served (see the module's docstring).
POLL_AFTER_HALT_S = 0.005
#: Longest wait for console bytes in one read (the console thread's stop) and between two
#: looks at the clock and the cancel signal.
READ_S = 0.05

#: Console input given at submit is typed into the port once the firmware is up: when
#: it has printed and then been quiet this long, or this long after reset at the latest
#: (firmware that reads before it prints anything).
INPUT_QUIET_S = 0.02
INPUT_AT_MOST_S = 0.5
#: Between two typed bytes: a burst at the line rate would overrun a receiver that the
#: firmware reads between other work (a polled UART without FIFO holds one byte).
INPUT_GAP_S = 0.002

# ARM semihosting (ARM IHI 0098): operations that end the program, the "normal" reason
SYS_EXIT, SYS_EXIT_EXTENDED, ADP_STOPPED_APPLICATION_EXIT = 0x18, 0x20, 0x20026
BKPT_SEMIHOSTING = 0xBEAB
DFSR, DFSR_BKPT, DFSR_VCATCH = 0xE000_ED30, 1 << 1, 1 << 3
#: Fault handlers the core halts on entering (vector catch), so that a fault the
#: firmware handles and clears is still seen: the job ends as ``fault``, as on the sim.
FAULT_HANDLERS = {3: "HardFault", 4: "MemManage", 5: "BusFault", 6: "UsageFault"}
#: Caught faults written to the job's infrastructure log (the rest are counted).
MAX_FAULT_NOTES = 10


#: The board-instance options of the ``physical`` backend (server config), checked when
#: the server starts.
OPTIONS: tuple[OptionInfo, ...] = (
    OptionInfo("probe", str, None, "the probe's unique id, as `pyocd list` shows it (a "
                                   "remote probe: remote:HOST:PORT)", required=True),
    OptionInfo("serial", str, None, "the console: a device path (/dev/serial/by-id/...) or "
                                    "any pyserial URL", required=True),
    OptionInfo("baud", int, 115200, "the console's baud rate", minimum=1),
    OptionInfo("target", str, "stm32f303retx", "pyOCD target type (HWUT ships "
                                               "stm32f303retx)"),
    OptionInfo("pack", tuple, (), "CMSIS-pack file(s) for the target: a path or a list; a "
                                  "pack's target replaces HWUT's of the same name"),
    OptionInfo("frequency", int, 4_000_000, "SWD clock in Hz", minimum=1),
    OptionInfo("reset_type", str, "sw", "how the board is reset: sw (SYSRESETREQ) or hw "
                                        "(nRST)", choices=("sw", "hw")),
    OptionInfo("after", str, "halt", "the core after the job: halt, reset-halt or run",
               choices=("halt", "reset-halt", "run")),
)


def _normalized(options: Mapping[str, Any]) -> dict[str, Any]:
    """``pack`` may be one path: as a list of one."""
    given = dict(options)
    if isinstance(given.get("pack"), str):
        given["pack"] = [given["pack"]]
    return given


@dataclass(frozen=True)
class PhysicalOptions:
    """The checked options as typed attributes (names, defaults and help: ``OPTIONS``)."""

    probe: str
    serial: str
    baud: int
    target: str
    pack: tuple[str, ...]
    frequency: int
    reset_type: str
    after: str

    @classmethod
    def describe(cls) -> str:
        """Every option with its default and help, for docs and error messages."""
        return "\n".join(f"{o.name} ({'required' if o.required else f'default {o.default!r}'}): "
                         f"{o.help}" for o in OPTIONS)

    @classmethod
    def from_mapping(cls, options: Mapping[str, Any]) -> PhysicalOptions:
        """The options with defaults filled in; ``OptionError`` names what is wrong."""
        values = check_options(OPTIONS, _normalized(options), "backend physical")
        values["pack"] = tuple(values["pack"])
        return cls(**values)


def parse_options(options: Mapping[str, Any]) -> PhysicalOptions:
    return PhysicalOptions.from_mapping(options)


@dataclass(frozen=True)
class _Lib:
    """pyOCD and pyserial, the ``physical`` extra: imported when a job needs them."""

    serial: Any
    exceptions: Any
    ConnectHelper: Any
    FileProgrammer: Any
    Target: Any


def _lib() -> _Lib:
    try:
        import serial
        from pyocd.core import exceptions
        from pyocd.core.helpers import ConnectHelper
        from pyocd.core.target import Target
        from pyocd.flash.file_programmer import FileProgrammer
    except ImportError as exc:
        raise ExtraMissing("the physical backend", exc) from exc
    return _Lib(serial, exceptions, ConnectHelper, FileProgrammer, Target)


class Infrastructure(Exception):
    """The bench failed; the message says what an operator should look at."""


def _present_probes() -> str:
    try:
        probes = _lib().ConnectHelper.get_all_connected_probes(blocking=False,
                                                        print_wait_message=False)
    except Exception as exc:  # listing must not hide the first failure
        return f"(listing probes failed: {exc})"
    return ", ".join(f"{p.unique_id} ({p.description})" for p in probes) or "none"


class _Console(threading.Thread):
    """Reads the console into the job's log as bytes arrive, whatever the probe is doing:
    a VCP holds only so much (a pty about 20 KiB, an ST-LINK less), so reading must never
    wait for a slow debug transfer. A read error is kept for the job to raise."""

    def __init__(self, port: Any, sink: Callable[[bytes], None],
                 note: Callable[[str], None]) -> None:
        super().__init__(name="hwut-physical-console", daemon=True)
        self.port, self.sink, self.note = port, sink, note
        self.error: BaseException | None = None
        self.last_data = 0.0
        self.reset_at = time.monotonic()
        self._quit = threading.Event()

    def run(self) -> None:
        first = True
        try:
            while not self._quit.is_set():
                data = self.port.read(max(1, self.port.in_waiting))
                if data:
                    self.last_data = time.monotonic()
                    if first:
                        self.note(f"first console byte {self.last_data - self.reset_at:.3f} s "
                                  f"after reset")
                        first = False
                    self.sink(data)
        except Exception as exc:  # the port went away (unplugged): the job says so
            self.error = exc

    def drain(self, quiet_s: float = 0.2, at_most_s: float = 2.0) -> None:
        """Wait until no byte came for ``quiet_s`` (what the UART sent before the firmware
        stopped is still on its way: the wire, the probe's USB buffers)."""
        deadline = time.monotonic() + at_most_s
        while self.error is None and time.monotonic() < deadline:
            if time.monotonic() - max(self.last_data, self.reset_at) >= quiet_s:
                return
            time.sleep(0.02)

    def stop(self) -> None:
        self._quit.set()
        if self.is_alive():
            self.join()


def write_console_input(port: Any, data: bytes, *, gap_s: float = INPUT_GAP_S,
                        stop: threading.Event | None = None) -> int:
    """Type ``data`` into a board's console (an open pyserial port, the ST-LINK's VCP):
    one byte at a time, ``gap_s`` apart and flushed, so that firmware polling its UART
    reads every byte. Returns how many bytes went out (fewer once ``stop`` is set).
    Serial errors propagate: the caller's job says the port failed. The one place that
    writes to a physical board's console: submit-time input (``_Typist``) and input
    sent to a running job both go through it."""
    written = 0
    for byte in data:
        if stop is not None and stop.is_set():
            break
        port.write(bytes((byte,)))
        port.flush()
        written += 1
        if stop is not None:
            stop.wait(gap_s)
        else:
            time.sleep(gap_s)
    return written


class _Typist(threading.Thread):
    """The one writer of a job's console. First the input given at submit (``input=``),
    typed after reset once the firmware is up (``INPUT_QUIET_S``, ``INPUT_AT_MOST_S``):
    on a board, bytes sent before the firmware enables its receiver are lost, and the
    sim backend, feeding them in virtual time, delivers them only once the receiver
    listens. Then the input sent to the running job (:meth:`send`), in the order it
    came: paced as the first, and never interleaved with it."""

    def __init__(self, port: Any, data: bytes, console: _Console,
                 note: Callable[[str], None], clock: Callable[[], float]) -> None:
        super().__init__(name="hwut-physical-input", daemon=True)
        self.port, self.data, self.console, self.note = port, data, console, note
        self.clock = clock
        self.error: BaseException | None = None
        self._quit = threading.Event()
        self._live: queue.SimpleQueue[LiveItem] = queue.SimpleQueue()

    def send(self, item: LiveItem) -> None:
        """Text for the running job: typed after what is already queued."""
        self._live.put(item)

    def run(self) -> None:
        try:
            if self.data:
                self._type_submitted()
            while not self._quit.is_set():
                try:
                    item = self._live.get(timeout=READ_S)
                except queue.Empty:
                    continue
                at = self.clock()
                written = write_console_input(self.port, item.text, stop=self._quit)
                short = "" if written == len(item.text) else \
                    f" ({written} typed before the run ended)"
                self.note(f"live input at {at:.3f} s: {item.describe()}{short}")
        except Exception as exc:  # the port went away: the job says so
            self.error = exc

    def _type_submitted(self) -> None:
        console = self.console
        latest = console.reset_at + INPUT_AT_MOST_S
        while not self._quit.is_set() and time.monotonic() < latest:
            if console.last_data and time.monotonic() - console.last_data >= INPUT_QUIET_S:
                break
            self._quit.wait(0.005)
        began = time.monotonic() - console.reset_at
        written = write_console_input(self.port, self.data, stop=self._quit)
        self.note(f"console input: {written} of {len(self.data)} bytes typed from "
                  f"{began:.3f} s after reset")

    def stop(self) -> None:
        self._quit.set()
        if self.is_alive():
            self.join()


class _Run:
    """One job on the bench: what it opened, so that ``close`` releases all of it."""

    def __init__(self, opts: PhysicalOptions, request: RunRequest,
                 infra: Callable[[str], None]) -> None:
        self.opts = opts
        self.request = request
        self.note = infra
        self.port: Any = None
        self.session: Any = None
        self.agent: Any = None
        self.console: _Console | None = None
        self.typist: _Typist | None = None
        #: Faults seen through the vector catch: the first one's text, and how many.
        self.first_fault: str | None = None
        self.faults_caught = 0

    def open_port(self) -> None:
        serial = _lib().serial
        try:
            self.port = serial.serial_for_url(self.opts.serial, baudrate=self.opts.baud,
                                              timeout=READ_S)
        except (serial.SerialException, OSError, ValueError) as exc:
            raise Infrastructure(f"serial port {self.opts.serial} cannot be opened ({exc}); "
                                 f"is the board plugged in, and is the path its "
                                 f"/dev/serial/by-id link?") from exc

    def open_session(self) -> None:
        from .pyocd_targets import register

        lib = _lib()
        exceptions, ConnectHelper = lib.exceptions, lib.ConnectHelper
        register()
        options: dict[str, Any] = {"frequency": self.opts.frequency,
                                   "reset_type": self.opts.reset_type, "connect_mode": "halt",
                                   "resume_on_disconnect": self.opts.after == "run"}
        if self.opts.pack:
            options["pack"] = list(self.opts.pack)
        try:
            self.session = ConnectHelper.session_with_chosen_probe(
                unique_id=self.opts.probe, target_override=self.opts.target, blocking=False,
                auto_open=False, options=options)
        except (exceptions.Error, OSError) as exc:
            raise Infrastructure(f"probe {self.opts.probe} cannot be reached ({exc}); probes "
                                 f"present: {_present_probes()}") from exc
        if self.session is None:
            raise Infrastructure(f"probe {self.opts.probe} not found; probes present: "
                                 f"{_present_probes()}")
        try:
            self.session.open()
        except OSError as exc:  # a remote probe (remote:HOST:PORT) whose server is gone
            raise Infrastructure(f"probe {self.opts.probe} cannot be reached ({exc}); probes "
                                 f"present: {_present_probes()}") from exc
        except exceptions.Error as exc:
            raise Infrastructure(f"target on probe {self.opts.probe} is not responding "
                                 f"({type(exc).__name__}: {exc}); is the board powered, the "
                                 f"SWD cable seated, the target type {self.opts.target} "
                                 f"right?") from exc

    def program(self) -> None:
        """Program every image of the job in order, each as its own file (pyOCD keeps
        what a sector erase would lose of an earlier image: option keep_unwritten)."""
        for image in self.request.image_files():
            self._program_one(image)

    def _program_one(self, image: ImageFile) -> None:
        lib = _lib()
        exceptions, FileProgrammer = lib.exceptions, lib.FileProgrammer
        fmt = image.format if image.format in ("elf", "hex", "bin") else None
        base = BIN_BASE if image.address is None else image.address
        started = time.monotonic()
        try:
            # From reset, not from wherever the last firmware stopped: pyOCD's flash
            # algorithm would otherwise run with that firmware's interrupts live (their
            # handlers in the flash being erased), its clocks and its CCR traps.
            self.session.target.reset_and_halt()
            FileProgrammer(self.session, progress=lambda _done: None, chip_erase="sector"
                           ).program(str(image.path), file_format=fmt,
                                     base_address=base if fmt == "bin" else None)
        except exceptions.FlashEraseFailure as exc:
            raise Infrastructure(f"flash erase failed: {exc}; the flash may be "
                                 f"write-protected (option bytes) or worn") from exc
        except exceptions.FlashProgramFailure as exc:
            raise Infrastructure(f"flash programming failed: {exc}; the flash may be "
                                 f"write-protected (option bytes) or worn") from exc
        except exceptions.FlashFailure as exc:
            raise Infrastructure(f"flash programming failed (erase, program or verify): "
                                 f"{exc}") from exc
        self.note(f"programmed {image.name or image.path.name} ({image.format}) in "
                  f"{time.monotonic() - started:.3f} s")

    def start(self) -> None:
        try:  # a class to derive from (mypy: not a variable of _Lib)
            from pyocd.debug.semihost import SemihostAgent, SemihostIOHandler
        except ImportError as exc:
            raise ExtraMissing("the physical backend", exc) from exc
        sink = self.request.uart
        target = self.session.target

        class _ConsoleIO(SemihostIOHandler):
            """Semihosting console output goes to the job's log, as on the sim; ":tt" is
            the console, no other file opens (a lab host's files are not the firmware's)."""

            def open(self, fnptr: int, fnlen: int, mode: str) -> int:
                fd, _name = self._std_open(fnptr, fnlen, mode)
                return fd if isinstance(fd, int) else -1

            def close(self, fd: int) -> int:
                return 0

            def istty(self, fd: int) -> int:
                return 1

            def write(self, fd: int, ptr: int, length: int) -> int:
                sink(bytes(target.read_memory_block8(ptr, length)))
                return 0

        console = _ConsoleIO()
        self.agent = SemihostAgent(target.get_target_context(), io_handler=console,
                                   console=console)
        vc = _lib().Target.VectorCatch
        target.set_vector_catch(vc.HARD_FAULT | vc.BUS_FAULT | vc.MEM_FAULT | vc.CHECK_ERR
                                | vc.STATE_ERR | vc.COPROCESSOR_ERR | vc.INTERRUPT_ERR)
        self.port.reset_input_buffer()  # what the old firmware said is not this job's
        self.console = _Console(self.port, self.request.uart, self.note)
        self.console.start()
        target.reset()
        if self.request.uart_input or self.request.live is not None:
            self.typist = _Typist(self.port, self.request.uart_input, self.console, self.note,
                                  self.request.clock)
            self.typist.start()

    def semihosting_exit(self) -> int | None:
        """The core halted: serve a semihosting call (None: the firmware goes on), or
        return the exit code the firmware ended with; a halt for another reason raises."""
        target = self.session.target
        ctx = target.get_target_context()
        pc = ctx.read_core_register("pc")
        dfsr = ctx.read32(DFSR)
        if dfsr & DFSR_VCATCH:
            self.fault_caught(ctx, pc)
            ctx.write32(DFSR, DFSR_VCATCH)  # write 1 to clear
            target.resume()
            return None
        if dfsr & DFSR_BKPT and ctx.read16(pc) == BKPT_SEMIHOSTING:
            op, arg = ctx.read_core_register("r0"), ctx.read_core_register("r1")
            if op == SYS_EXIT:  # AArch32: the reason itself in r1
                return 0 if arg == ADP_STOPPED_APPLICATION_EXIT else 1
            if op == SYS_EXIT_EXTENDED:
                reason, code = ctx.read32(arg), ctx.read32(arg + 4)
                if reason != ADP_STOPPED_APPLICATION_EXIT:
                    code = code or 1
                return code - (1 << 32) if code >= 0x8000_0000 else code
        if self.agent is not None and self.agent.check_and_handle_semihost_request():
            target.resume()
            return None
        raise _Halted(f"the core halted at 0x{pc:08x} (not a semihosting call)")

    def fault_caught(self, ctx: Any, pc: int) -> None:
        """The core halted entering a fault handler: what the fault status says now (the
        handler has not run, so it has not cleared it yet)."""
        handler = FAULT_HANDLERS.get(ctx.read_core_register("xpsr") & 0x1FF, "a fault handler")
        text = (f"{handler} entered at 0x{pc:08x}: "
                f"{_fault_registers(ctx) or 'no fault status bits set'}")
        self.faults_caught += 1
        if self.first_fault is None:
            self.first_fault = text
        if self.faults_caught <= MAX_FAULT_NOTES:
            self.note(f"fault (vector catch): {text}")
        elif self.faults_caught == MAX_FAULT_NOTES + 1:
            self.note(f"more faults: only the first {MAX_FAULT_NOTES} are written, all counted")

    def close(self) -> None:
        if self.typist is not None:
            self.typist.stop()
        if self.console is not None:
            self.console.stop()  # reads time out every READ_S: it ends at once
        if self.agent is not None:
            self.agent.cleanup()
        if self.session is not None:
            try:
                self.session.close()
            except Exception as exc:  # closing must not hide the outcome
                self.note(f"closing the pyOCD session: {type(exc).__name__}: {exc}")
        if self.port is not None:
            self.port.close()


# ARMv7-M fault status (ARM DDI 0403, B3.2.15-18) and DHCSR.S_LOCKUP
CFSR, HFSR, MMFAR, BFAR, DHCSR = 0xE000_ED28, 0xE000_ED2C, 0xE000_ED34, 0xE000_ED38, 0xE000_EDF0
HFSR_FAULTS, S_LOCKUP, MMARVALID, BFARVALID = 0x4000_0002, 1 << 19, 1 << 7, 1 << 15


def _fault_status(target: Any) -> str | None:
    """What the core's fault status registers say happened, None if nothing did: a
    board's firmware that faulted and sits in its handler looks busy to the console."""
    if target.read32(DHCSR) & S_LOCKUP:
        return "core lockup (DHCSR.S_LOCKUP): a fault inside a fault handler stopped the core"
    registers = _fault_registers(target)
    if registers is None:
        return None
    kind = "HardFault" if target.read32(HFSR) & HFSR_FAULTS else "fault"
    return f"{kind}: {registers} (the core's fault status registers)"


def _fault_registers(target: Any) -> str | None:
    """"CFSR=... HFSR=..." (with the fault address when valid); None when both are 0."""
    cfsr, hfsr = target.read32(CFSR), target.read32(HFSR)
    if not cfsr and not hfsr & HFSR_FAULTS:
        return None
    parts = [f"CFSR=0x{cfsr:08x}", f"HFSR=0x{hfsr:08x}"]
    if cfsr & MMARVALID:
        parts.append(f"MMFAR=0x{target.read32(MMFAR):08x}")
    if cfsr & BFARVALID:
        parts.append(f"BFAR=0x{target.read32(BFAR):08x}")
    return " ".join(parts)


class _Halted(Exception):
    """The core stopped by itself (a BKPT that is not semihosting)."""


__all__ = ["OPTIONS", "OptionError", "PhysicalBackend", "parse_options",
           "write_console_input"]


class PhysicalBackend(Backend):
    name: ClassVar[str] = "physical"
    option_infos: ClassVar[tuple[OptionInfo, ...] | None] = OPTIONS
    #: Bench failures are often transient (a probe re-enumerating): retry a job once, and
    #: take an instance offline after 3 failed attempts in a row (see hwut.scheduler).
    default_retries: ClassVar[int] = 1
    default_offline_after: ClassVar[int] = 3
    #: pyOCD takes about a second to import: the fork server does it once for all jobs
    preload: ClassVar[tuple[str, ...]] = (
        "serial", "pyocd.core.helpers", "pyocd.flash.file_programmer",
        "pyocd.debug.semihost", "hwut.backends.pyocd_targets")

    @classmethod
    def availability(cls, options: Mapping[str, Any] | None = None) -> Availability:
        try:
            import pyocd  # noqa: F401
            import serial  # noqa: F401
        except ImportError as exc:
            return Availability(False, str(ExtraMissing("the physical backend", exc)))
        try:
            opts = parse_options(dict(options or {}))
        except OptionError as exc:
            return Availability(False, str(exc))
        return Availability(True, f"pyOCD probe {opts.probe}, console {opts.serial}")

    @classmethod
    def board_info(cls, board: str, options: Mapping[str, Any] | None = None
                   ) -> BoardInfo | None:
        """A board HWUT models (nucleo-f303re) is described from the same data as the
        emulator's. A job's console input is typed into the serial port (``_Typist``);
        button presses are refused at submit: a lab has no finger on the button."""
        spec = simboards.find(board)
        if spec is None:
            return None
        return simboards.board_info(spec, name=board, console_input=True, presses=False,
                                    live_input=True, backend=cls.name)

    @classmethod
    def check_options(cls, options: Mapping[str, Any]) -> dict[str, Any]:
        """As every backend's, with ``pack`` also taking one path."""
        return super().check_options(_normalized(options))

    def run(self, request: RunRequest) -> Outcome:
        started = time.monotonic()
        infra: list[str] = []

        def outcome(reason: StopReason, detail: str, **kw: Any) -> Outcome:
            if reason is StopReason.INFRASTRUCTURE:
                infra.append(detail)
            return Outcome(reason, time_used_s=kw.pop("used", time.monotonic() - started),
                           infra_log="\n".join(infra), detail=detail, **kw)

        try:
            _lib()
        except ExtraMissing as exc:
            return outcome(StopReason.INFRASTRUCTURE, str(exc))
        try:
            opts = parse_options(self.options)
        except OptionError as exc:
            return outcome(StopReason.INFRASTRUCTURE, str(exc))
        job = _Run(opts, request, infra.append)
        try:
            result = self._run(job, outcome)
        finally:
            job.close()
        result.infra_log = "\n".join(infra)  # with what closing said
        return result

    def _run(self, job: _Run, outcome: Callable[..., Outcome]) -> Outcome:
        lib = _lib()
        serial, exceptions = lib.serial, lib.exceptions

        opts = job.opts
        try:
            job.open_port()
            job.open_session()
            job.program()
            job.start()
            return self._watch(job, outcome)
        except Infrastructure as exc:
            return outcome(StopReason.INFRASTRUCTURE, str(exc))
        except _Halted as exc:
            return outcome(StopReason.FAULT, str(exc))
        except (serial.SerialException, OSError) as exc:
            return outcome(StopReason.INFRASTRUCTURE,
                           f"serial port {opts.serial} failed mid-run ({exc}); was the board "
                           f"unplugged?")
        except exceptions.ProbeDisconnected as exc:
            return outcome(StopReason.INFRASTRUCTURE,
                           f"probe {opts.probe} disconnected mid-run ({exc}); was it "
                           f"unplugged?")
        except exceptions.Error as exc:
            return outcome(StopReason.INFRASTRUCTURE,
                           f"target on probe {opts.probe} stopped responding "
                           f"({type(exc).__name__}: {exc}); check power and the SWD cable")

    def _watch(self, job: _Run, outcome: Callable[..., Outcome]) -> Outcome:
        """Until the limit, a cancel or the firmware's exit; the console streams meanwhile
        in its own thread (``_Console``), the core's state is read every ``POLL_S``."""
        Target = _lib().Target
        request, target, console = job.request, job.session.target, job.console
        assert console is not None
        run_started = next_poll = time.monotonic()
        poll_s = POLL_S
        # the board's time is the wall clock's since the start (stamps the log)
        request.clock.bind(lambda: time.monotonic() - run_started)
        while True:
            if console.error is not None:
                raise console.error
            if job.typist is not None and job.typist.error is not None:
                raise job.typist.error
            self._live_input(job, run_started)
            now = time.monotonic()
            if request.cancel.is_set():
                return self._end(job, outcome(StopReason.CANCEL, "", used=now - run_started))
            if now - run_started >= request.time_limit_s:
                return self._end(job, outcome(
                    StopReason.LIMIT, f"wall-clock limit of {request.time_limit_s:g} s reached",
                    used=now - run_started))
            if now >= next_poll:
                poll_s = min(poll_s * 2, POLL_S)
                if target.get_state() is Target.State.HALTED:
                    code = job.semihosting_exit()
                    if code is not None:
                        console.drain()
                        return self._end(job, outcome(
                            StopReason.EXIT, f"firmware exited with code {code}",
                            used=time.monotonic() - run_started, exit_code=code))
                    poll_s = POLL_AFTER_HALT_S
                next_poll = time.monotonic() + poll_s
            request.cancel.wait(min(READ_S, max(0.0, next_poll - time.monotonic())))

    @staticmethod
    def _live_input(job: _Run, run_started: float) -> None:
        """Console text sent while the job runs goes to the console's one writer, behind
        what it is typing (the API refuses live presses for this backend: nothing here
        presses a real button)."""
        live, typist = job.request.live, job.typist
        if live is None or typist is None or not live.wake.is_set():
            return
        for item in live.take():
            if item.press is not None or not item.text:
                at = time.monotonic() - run_started
                job.note(f"live input at {at:.3f} s refused: {item.describe()}: this backend "
                         "cannot press buttons")
                continue
            typist.send(item)

    @staticmethod
    def _end(job: _Run, result: Outcome) -> Outcome:
        """A fault seen on the way (the fault status registers are sticky), then the core
        left as option ``after`` says."""
        target = job.session.target
        if result.reason is StopReason.LIMIT:
            fault = _fault_status(target)
            if job.first_fault is not None and (fault is None or "lockup" not in fault):
                times = f" ({job.faults_caught} faults)" if job.faults_caught > 1 else ""
                fault = f"{job.first_fault}{times}"
            elif fault is not None:
                job.note(fault)
            if fault is not None:
                result.reason, result.detail = StopReason.FAULT, fault
        if job.opts.after == "halt":
            target.halt()
        elif job.opts.after == "reset-halt":
            target.reset_and_halt()
        return result
