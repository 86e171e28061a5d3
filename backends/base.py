"""The backend contract: what the scheduler hands a backend and what it gets back.

A backend runs one job at a time on one board instance. The scheduler never
knows whether the board is emulated or real; everything it needs crosses this
module's types.
"""
from __future__ import annotations

import enum
import threading
import time
from abc import ABC, abstractmethod
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

#: Receives log bytes as the board produces them.
ByteSink = Callable[[bytes], None]


class StopReason(str, enum.Enum):
    """Why a run ended. Only INFRASTRUCTURE makes the job ERROR."""

    LIMIT = "limit"
    EXIT = "exit"
    CANCEL = "cancel"
    FAULT = "fault"
    INFRASTRUCTURE = "infrastructure_error"
    #: The job process used its CPU budget: the firmware is too slow to emulate.
    CPU_LIMIT = "cpu_limit"
    #: The firmware produced more output (UART, trace) than a job may keep.
    OUTPUT_LIMIT = "output_limit"


class CancelReason(str, enum.Enum):
    """Why a run is told to stop. A backend stops the same way whatever the reason (and
    returns StopReason.CANCEL); whoever told it maps the reason to the job's end."""

    #: The job's owner or an admin canceled it: the job becomes CANCELED.
    USER = "user"
    #: The server is stopping: the job becomes ERROR, nobody canceled it.
    SHUTDOWN = "shutdown"
    #: The run's wall-clock deadline passed (a hung probe, an emulator that cannot keep up).
    DEADLINE = "deadline"
    #: The job's process used its CPU budget: the firmware is too slow to emulate.
    CPU_LIMIT = "cpu_limit"
    #: The firmware produced more output than a job may keep.
    OUTPUT_LIMIT = "output_limit"
    #: The server went away (the job's process stops on its own).
    ORPHANED = "orphaned"
    #: The job's criteria settled its verdict (fail-fast, or every expectation met).
    VERDICT = "verdict"


class CancelToken(threading.Event):
    """The one stop signal of a run, carrying why (the first reason given wins).

    A threading.Event, so code that only waits (``is_set``, ``wait``) takes it as one;
    stopping a run goes through :meth:`cancel`, which says why."""

    def __init__(self) -> None:
        super().__init__()
        self._why_lock = threading.RLock()  # re-entered by a signal handler (SIGXCPU)
        self.reason: CancelReason | None = None
        #: One line for people ("canceled by alice"); may be empty.
        self.detail = ""

    def cancel(self, reason: CancelReason, detail: str = "") -> bool:
        """Tell the run to stop; True when this was the first reason given."""
        with self._why_lock:
            first = self.reason is None
            if first:
                self.reason, self.detail = reason, detail
        super().set()
        return first

    def set(self) -> None:
        """An Event's plain ``set()``: a cancel without a reason counts as the user's."""
        self.cancel(CancelReason.USER)


Clock = Callable[[], float]


@dataclass(frozen=True)
class Deadline:
    """A moment on a monotonic clock by which a run must have ended (wall time).

    The scheduler computes it once per job, on its own (injectable) clock, and trips the
    run's :class:`CancelToken` with :attr:`CancelReason.DEADLINE` when it passes; a
    backend keeps no wall-clock guard of its own and may use :meth:`remaining` to bound
    waits of its own (connecting a probe, starting an emulator)."""

    at: float
    clock: Clock = time.monotonic

    @classmethod
    def after(cls, seconds: float, clock: Clock = time.monotonic) -> Deadline:
        return cls(clock() + seconds, clock)

    def remaining(self) -> float:
        """Seconds left, 0 once passed."""
        return max(0.0, self.at - self.clock())

    def expired(self) -> bool:
        return self.clock() >= self.at


@dataclass(frozen=True)
class ImageFile:
    """One image of a job that carries several (a bootloader and its application)."""

    path: Path
    format: str  # "elf", "hex" or "bin"
    #: Where a BIN goes; None: an ELF or HEX places itself, a BIN goes at the flash start.
    address: int | None = None
    #: The name the client gave it (for messages); may be empty.
    name: str = ""


#: A scripted pin level: (pin name "PA0", at virtual s, level 1/0 or None = released to
#: what the board leaves on it).
PinDrive = tuple[str, float, int | None]


@dataclass(frozen=True)
class LiveItem:
    """One input sent to a running job: console text, or a button press held
    ``hold_s`` seconds of the board's time (a press has no text)."""

    text: bytes = b""
    press: str | None = None
    hold_s: float = 0.0

    def describe(self) -> str:
        """For the job's infrastructure log: ``5 bytes b'hi\\r'`` or ``press B1 for 0.1 s``."""
        if self.press is not None:
            return f"press {self.press} for {self.hold_s:g} s"
        shown = self.text if len(self.text) <= 40 else self.text[:40] + b"..."
        return f"{len(self.text)} bytes {shown!r}"


class LiveInputClosed(RuntimeError):
    """The run that read this channel has ended; nothing more reaches the board."""


class LiveInput:
    """Input into a running job, from whoever sends it (the job's process, from the
    server) to the backend, which applies each item at the board's time when it takes it.

    Bounded: at most ``capacity`` items wait; :meth:`put` refuses more (False) instead of
    growing. Lifecycle: open while the run runs; :meth:`close` (by whoever made it, once
    the backend returned) refuses every later item with :class:`LiveInputClosed`. ``wake``
    is set whenever an item arrives, so a backend can wait on it instead of polling."""

    def __init__(self, capacity: int = 64) -> None:
        self.capacity = capacity
        self.wake = threading.Event()
        self._items: deque[LiveItem] = deque()
        self._lock = threading.Lock()
        self._closed = False
        #: Items refused because the channel was full.
        self.refused = 0

    def put(self, item: LiveItem) -> bool:
        """Queue ``item``; False when the channel is full (the item is dropped)."""
        with self._lock:
            if self._closed:
                raise LiveInputClosed("the run has ended")
            if len(self._items) >= self.capacity:
                self.refused += 1
                return False
            self._items.append(item)
        self.wake.set()
        return True

    def take(self) -> list[LiveItem]:
        """Every waiting item, oldest first (and ``wake`` cleared)."""
        with self._lock:
            self.wake.clear()
            items = list(self._items)
            self._items.clear()
        return items

    def close(self) -> list[LiveItem]:
        """End the channel; returns what was never taken (the run ended before)."""
        with self._lock:
            self._closed = True
            left = list(self._items)
            self._items.clear()
        self.wake.set()
        return left

    @property
    def closed(self) -> bool:
        return self._closed


class BoardClock:
    """The board's time as its backend tells it: virtual seconds for an emulator, wall
    seconds since the start for hardware. Log bytes are stamped with it when they
    arrive (so the verdict and a test's ``expect`` know *when* the board printed a
    line), and the job's process reports it while the board prints nothing.

    A backend either :meth:`set` s it as its run advances or :meth:`bind` s a function
    that is safe to call from another thread; 0.0 until it does either."""

    def __init__(self) -> None:
        self._seconds = 0.0
        self._read: Callable[[], float] | None = None
        #: False until the backend says the time: its output is then not stamped (a
        #: backend that cannot tell the board's time, Renode's, never claims one).
        self.known = False

    def set(self, seconds: float) -> None:
        self._seconds = seconds
        self.known = True

    def bind(self, read: Callable[[], float] | None) -> None:
        self._read = read
        self.known = self.known or read is not None

    def __call__(self) -> float:
        read = self._read
        if read is not None:
            try:
                self._seconds = float(read())
            except Exception:  # noqa: BLE001 - a clock read must never break the output path
                pass
        return self._seconds


@dataclass(frozen=True)
class RunRequest:
    executable: Path
    format: str  # "elf", "hex" or "bin" (see backends.image)
    board: str
    time_limit_s: float
    uart: ByteSink
    #: Set when the run must stop, with the reason; a backend stops within about a second.
    cancel: CancelToken
    #: Secondary trace output (ITM/SWO); None when the job keeps none.
    other: ByteSink | None = None
    #: Bytes fed to the console UART's receive side, in order, once it listens.
    uart_input: bytes = b""
    #: Scripted button presses: (button, press at s, release at s or None), virtual time.
    presses: tuple[tuple[str, float, float | None], ...] = ()
    #: The pin trace (VCD bytes, written at the end of the run); None: the job keeps none.
    #: A backend that cannot trace pins leaves it unwritten.
    trace: ByteSink | None = None
    #: Signals to trace (``LD2``, ``PA5``, ``USART2_TX``); empty: the board's LEDs, its
    #: console's TX and every pin the firmware configures as output.
    trace_signals: tuple[str, ...] = ()
    #: Largest pin trace; past it the trace is cut (the run goes on) and says so.
    trace_bytes: int = 4 * 1024 * 1024
    #: When the run must have ended, wall time; None: no bound given (a test).
    deadline: Deadline | None = None
    #: Every image of the job in the order given, programmed one after the other;
    #: empty: the one ``executable`` (``format``). See :meth:`image_files`.
    images: tuple[ImageFile, ...] = ()
    #: Scripted pin levels (``pin=PA0@0:1``), in virtual time; a backend that cannot
    #: drive pins says so in its BoardInfo (``pins`` False) and never gets any.
    pins: tuple[PinDrive, ...] = ()
    #: Input sent while the job runs (POST /jobs/{id}/input); None: the job takes none.
    #: A backend that feeds it applies each item at the board's time it takes it and
    #: notes it, with that time, in the infrastructure log.
    live: LiveInput | None = None
    #: Where the backend publishes the board's time (see BoardClock).
    clock: BoardClock = field(default_factory=BoardClock)
    #: Never run the board's time ahead of the wall clock (an interactive job: a person
    #: or a test talks to the board while it runs). Hardware always runs so.
    realtime: bool = False

    def image_files(self) -> tuple[ImageFile, ...]:
        """What to program, in order: ``images``, or the one ``executable``."""
        return self.images or (ImageFile(self.executable, self.format, None,
                                         self.executable.name),)


@dataclass
class Outcome:
    reason: StopReason
    exit_code: int | None = None
    time_used_s: float = 0.0
    instructions: int | None = None
    #: Emulator or probe messages, kept apart from the UART log.
    infra_log: str = ""
    #: One line a user can act on ("HardFault at 0x08000123", "renode not found").
    detail: str = ""


@dataclass(frozen=True)
class Availability:
    ok: bool
    detail: str = ""


#: A stretch of the address space: (base address, size in bytes).
Region = tuple[int, int]


@dataclass(frozen=True)
class MemoryMap:
    """Where an executable may go on one board, as the image check and loaders need it."""

    #: Every region an image may load into: flash, its boot alias at 0, the RAMs.
    regions: tuple[Region, ...]
    #: Where the stack may live (the initial SP must point into one of these).
    ram: tuple[Region, ...]
    #: Where a raw BIN image is placed (the start of flash).
    bin_base: int


#: The ARMv7-M architecture's own map (ARM DDI 0403, B3.1): code 0x0-0x1FFFFFFF, SRAM
#: 0x20000000-0x3FFFFFFF. All the image check can hold a board to when its backend
#: says nothing about the board.
ARMV7M = MemoryMap(regions=((0x0000_0000, 0x4000_0000),),
                   ram=((0x1000_0000, 0x3000_0000),), bin_base=0x0000_0000)


#: How datasheets name memories, for descriptions.
_LABELS = {"sram": "SRAM", "ccmram": "CCM SRAM"}


@dataclass(frozen=True)
class MemoryRegion:
    name: str
    base: int
    size: int


@dataclass(frozen=True)
class Microcontroller:
    """The chip on a board, as the targets API shows it."""

    name: str
    manufacturer: str
    core: str
    flash: MemoryRegion
    #: SRAM first, then other RAMs (CCM SRAM ...).
    ram: tuple[MemoryRegion, ...]
    max_clock_hz: int

    @property
    def description(self) -> str:
        rams = " + ".join(f"{r.size // 1024} KiB {_LABELS.get(r.name, r.name.upper())}"
                          for r in self.ram)
        return f"{self.name.upper()}: {self.core}, {self.flash.size // 1024} KiB flash, {rams}"

    def record(self) -> dict[str, Any]:
        """The targets API's microcontroller record (``flash_bytes``, ``ram_bytes`` ...)."""
        return {"name": self.name, "manufacturer": self.manufacturer, "core": self.core,
                "flash_bytes": self.flash.size,
                "ram_bytes": self.ram[0].size if self.ram else 0,
                "memory": [{"name": r.name, "base": r.base, "size": r.size}
                           for r in (self.flash, *self.ram)],
                "max_clock_hz": self.max_clock_hz, "description": self.description}


@dataclass(frozen=True)
class BoardInfo:
    """What the service may know about a board without knowing how it is run.

    A backend derives it from its own data (the sim's SoC and board specs); the
    service checks submits against it and shows it in the targets API.
    """

    name: str
    microcontroller: Microcontroller
    memory: MemoryMap
    #: Button names a job may press (``press=B1@0.5``).
    buttons: tuple[str, ...] = ()
    leds: tuple[str, ...] = ()
    #: The UART whose output is the job log ("USART2").
    console: str = ""
    #: Whether this backend feeds ``input=`` to the console / runs scripted presses.
    console_input: bool = False
    presses: bool = False
    #: Whether it takes console text / button presses sent while the job runs
    #: (``POST /jobs/{id}/input``, a RunRequest's ``live`` channel).
    live_input: bool = False
    live_presses: bool = False
    #: The backend's name, for messages ("backend renode cannot ...").
    backend: str = ""
    manufacturer: str = ""
    #: Every pin a job may drive by name ("PA0"), with what it reads when nothing drives
    #: it (:class:`PinDefault`); empty: the backend says nothing about the board's pins.
    pin_defaults: tuple[PinDefault, ...] = ()
    #: Whether this backend drives pins a job scripts (``pin=PA0@0:1``).
    drive_pins: bool = False

    @property
    def pin_names(self) -> frozenset[str]:
        return frozenset(p.pin for p in self.pin_defaults)


@dataclass(frozen=True)
class PinDefault:
    """What a board pin reads while nothing drives it, and why (board data)."""

    pin: str
    #: 1 or 0 with the MCU's own pull off; "floating" pins read the model's
    #: floating level (their own pull-up/down, when configured, wins).
    level: int
    #: "board" (a pull or driver on the board), "button" (idle level of a button),
    #: "floating" (nothing connected).
    source: str
    why: str = ""

    def record(self) -> dict[str, Any]:
        return {"pin": self.pin, "level": self.level, "source": self.source, "why": self.why}


class BackendError(Exception):
    """The infrastructure failed (emulator crashed, probe missing)."""


class OptionError(ValueError):
    """A board option is wrong; the message names the option and what it allows."""


#: How option types are named to people.
_TYPE_NAMES = {str: "a string", int: "an integer", float: "a number", bool: "true or false",
               tuple: "a list of strings"}


@dataclass(frozen=True)
class OptionInfo:
    """One typed option with its documented default: the service's options and each
    backend's board-instance options are declared with it.

    ``default`` None with ``required`` False means "not set" (the backend decides);
    ``choices`` and ``minimum`` narrow what is allowed."""

    name: str
    type: type
    default: Any
    help: str
    choices: tuple[Any, ...] = ()
    required: bool = False
    minimum: float | None = None

    def allowed(self) -> str:
        """What the option takes, in words ("one of exact, block", "a number >= 0")."""
        if self.choices:
            return "one of " + ", ".join(map(str, self.choices))
        text = _TYPE_NAMES.get(self.type, self.type.__name__)
        return text if self.minimum is None else f"{text} >= {self.minimum:g}"

    def check(self, value: Any) -> Any:
        """``value`` as the option's type; :class:`OptionError` naming the option and what
        it allows when it is not (a bool is no number here, a TOML date no string)."""
        if value is None and not self.required and self.default is None:
            return None
        ok = isinstance(value, self.type) and not (
            isinstance(value, bool) and self.type is not bool)
        if self.type is float and isinstance(value, int) and not isinstance(value, bool):
            value, ok = float(value), True
        if self.type is tuple and isinstance(value, list | tuple):
            ok = all(isinstance(v, str) for v in value)
            value = tuple(value)
        if not ok:
            raise OptionError(f"option {self.name} must be {self.allowed()}, not {value!r}")
        if self.choices and value not in self.choices:
            raise OptionError(f"option {self.name} must be {self.allowed()}, not {value!r}")
        if self.minimum is not None and value < self.minimum:
            raise OptionError(f"option {self.name} must be {self.allowed()}, not {value!r}")
        return value

    def describe(self) -> str:
        """One line for people: name, what it takes, default, help."""
        default = "required" if self.required else (
            "not set" if self.default is None else f"default {self.default!r}")
        return f"{self.name} ({self.allowed()}; {default}): {self.help}"


def check_options(declared: tuple[OptionInfo, ...], options: Mapping[str, Any],
                  what: str = "this backend") -> dict[str, Any]:
    """Every declared option with its value from ``options`` or its default;
    :class:`OptionError` for an unknown name (a typo), a missing required option or a
    bad value, naming the option and what is allowed."""
    known = {o.name: o for o in declared}
    unknown = sorted(set(options) - set(known))
    if unknown:
        raise OptionError(f"unknown options of {what}: {', '.join(unknown)}; it takes "
                          f"{', '.join(known) or 'no options'}")
    values = {}
    for name, info in known.items():
        if name not in options and info.required:
            raise OptionError(f"option {name} is required ({what}): {info.help}")
        values[name] = info.check(options.get(name, info.default))
    return values


class Backend(ABC):
    """One board instance. ``run`` must release every resource before it returns."""

    #: Name used in the server config (``backend = "sim"``).
    name: ClassVar[str]
    #: The options a board instance takes (``[boards.options]`` in the server config),
    #: checked when the server starts; None: the backend declares none and gets the
    #: config's table unchecked (backends written before options were declared).
    option_infos: ClassVar[tuple[OptionInfo, ...] | None] = None
    #: How often the scheduler runs a job again after an infrastructure error, and after
    #: how many such errors in a row it takes the instance offline (0: never), unless the
    #: board's config says (``retries``, ``offline_after``). An emulator's errors are
    #: not transient; a lab bench's often are (see the physical backend).
    default_retries: ClassVar[int] = 0
    default_offline_after: ClassVar[int] = 0
    #: Modules the job processes' fork server imports ahead (a job then starts without
    #: importing them); one that is not installed is skipped.
    preload: ClassVar[tuple[str, ...]] = ()

    def __init__(self, board: str, options: Mapping[str, Any] | None = None) -> None:
        self.board = board
        #: The instance's options, checked and with every declared default filled in.
        self.options = self.check_options(options or {})

    @classmethod
    def check_options(cls, options: Mapping[str, Any]) -> dict[str, Any]:
        """The options with defaults filled in, or :class:`OptionError` naming the option
        that is unknown or wrong and what it allows."""
        if cls.option_infos is None:
            return dict(options)
        return check_options(cls.option_infos, options, f"backend {cls.name}")

    @classmethod
    def extra_wall_s(cls, time_limit_s: float, options: Mapping[str, Any]) -> float:
        """Wall (and CPU) seconds a run on this backend needs beyond the scheduler's
        budget for an emulated job (a slower emulator, a start-up); ``options`` checked."""
        return 0.0

    @classmethod
    def availability(cls, options: Mapping[str, Any] | None = None) -> Availability:
        return Availability(True)

    @classmethod
    def boards(cls) -> tuple[str, ...]:
        """Board names this backend can run; empty means any the config names."""
        return ()

    @classmethod
    def board_info(cls, board: str, options: Mapping[str, Any] | None = None
                   ) -> BoardInfo | None:
        """What this backend knows of ``board`` with these instance options; None: nothing
        (the service then checks images against the ARMv7-M map only and refuses console
        input and presses, which it cannot know the backend feeds)."""
        return None

    @abstractmethod
    def run(self, request: RunRequest) -> Outcome:
        """Run the firmware until its limit, exit, fault or cancellation."""

    def close(self) -> None:
        """Release what the instance holds between jobs (probe sessions, caches)."""
