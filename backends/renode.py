"""Run jobs in Renode where it is installed (``backend = "renode"``).

Renode is driven through its documented command line and monitor language
only: each job gets a private directory holding a one-shot ``.resc`` script
(create the machine, load our platform file and the firmware, set VTOR to 0
and register the ``reset`` macro that SYSRESETREQ runs, connect the console
UART and the semihosting UART to fresh files, run for the job's limit in
virtual time, quit). Renode runs headless in its own process group; the
backend streams both files into the job log while they grow and keeps
Renode's own output apart, as the infrastructure log. Cancel (the run's token:
a user's cancel, the server stopping, or the scheduler's deadline, which
includes this backend's allowance, see ``extra_wall_s``) or a monitor error
end the process group (SIGTERM, then SIGKILL), so a
hung Renode never outlives ``run``.

Console input and scripted button presses: a job that has them runs its
virtual time in slices from a small generated Python script (Renode's monitor
runs ``.py`` files): presses and releases happen at their virtual times
(``Button.Press``/``Release``), scripted pin levels too (``pin=``: the GPIO
port's ``OnGPIO(pin, level)``, which sets what IDR reads; a release sets the
level the board leaves on the pin, since Renode's port models no pulls), and
the input is written into the console
UART (``WriteChar``) once the firmware has enabled its receiver (Renode drops
characters the receiver does not take), checked every ``input_slice_s`` of
virtual time until then.

Semihosting exit: no Renode release reports SYS_EXIT (its ARM semihosting
handles only the console calls). With ``semihosting_exit`` on, the script sets
a CPU hook at every ``BKPT 0xAB`` of the image; the hook logs the exit code
of SYS_EXIT / SYS_EXIT_EXTENDED, and the backend ends Renode and reports EXIT.
A newer Renode's own "Program exited with reason ..." line is honoured too.
Without either the job runs to its limit and the detail says why.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import tempfile
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import IO, Any, ClassVar

from . import simboards
from .base import (
    Availability,
    Backend,
    BoardInfo,
    OptionInfo,
    Outcome,
    RunRequest,
    StopReason,
    check_options,
)
from .image import InvalidFirmware, load_images

#: Board name -> platform file in sim/renode/ (the board file ``using`` the SoC file).
PLATFORMS: dict[str, str] = {"nucleo-f303re": "nucleo_f303re.repl"}
#: Where the board file names its console (a comment line Renode ignores).
_CONSOLE_MARK = re.compile(r"^//\s*hwut-console:\s*(\S+)\s*$", re.MULTILINE)
#: A button of the board file: ``B1: Miscellaneous.Button @ gpioPortC 13``.
_BUTTON = re.compile(r"^(?P<name>\w+):\s*Miscellaneous\.Button\s*@\s*(?P<port>\w+)\b",
                     re.MULTILINE)
#: Where BIN images go when the board's data says nothing else (the STM32 flash).
FLASH_BASE = 0x0800_0000
#: The semihosting UART of the SoC file (``semihosting: UART.SemihostingUart @ cpu``).
SEMIHOSTING_UART = "sysbus.cpu.semihosting"
#: At most this many BKPT 0xAB sites get an exit hook (a job script stays small).
MAX_EXIT_HOOKS = 64


#: The board-instance options of the ``renode`` backend (server config), checked when
#: the server starts.
OPTIONS: tuple[OptionInfo, ...] = (
    OptionInfo("renode_path", str, None,
               "the Renode launcher; not set: `renode` on PATH, else renode-run's copy"),
    OptionInfo("wall_factor", float, 300.0,
               "wall seconds a job may take per virtual second of its limit (measured: about "
               "200-300 for firmware polling SysTick at 72 MHz); with startup_allowance_s, "
               "added to the scheduler's wall and CPU budget", minimum=0),
    OptionInfo("startup_allowance_s", float, 60.0,
               "wall seconds for Renode's start-up (Mono, the platform, the ELF)", minimum=0),
    OptionInfo("term_grace_s", float, 3.0, "seconds from SIGTERM to SIGKILL when Renode "
                                           "is ended", minimum=0),
    OptionInfo("poll_interval_s", float, 0.05, "how often the UART files and Renode's log "
                                               "are read, in seconds", minimum=0.001),
    OptionInfo("version_timeout_s", float, 20.0, "how long `renode --version` may take when "
                                                 "the server starts", minimum=0),
    OptionInfo("performance_mips", int, 8, "the CPU's PerformanceInMips at reset (the F303 on "
                                           "its 8 MHz HSI; the platform's RCC then follows the "
                                           "clock set-up); 0: Renode's default", minimum=0),
    OptionInfo("extra_commands", tuple, (), "monitor lines run after loading the firmware"),
    OptionInfo("work_dir", str, None, "parent of the per-job directories; not set: the "
                                      "system's temporary directory"),
    OptionInfo("monitor_on_console", bool, True, "run the monitor on Renode's console, so "
                                                 "monitor errors reach the infrastructure log"),
    OptionInfo("input_slice_s", float, 0.001, "virtual seconds between checks whether the "
                                              "console receiver is on (jobs with input)",
               minimum=0.000001),
    OptionInfo("semihosting_exit", bool, True, "hooks at the image's BKPT 0xAB report "
                                               "semihosting exit codes"),
)


@dataclass(frozen=True)
class RenodeOptions:
    """The checked options as typed attributes (names, defaults and help: ``OPTIONS``)."""

    renode_path: str | None
    wall_factor: float
    startup_allowance_s: float
    term_grace_s: float
    poll_interval_s: float
    version_timeout_s: float
    performance_mips: int
    extra_commands: tuple[str, ...]
    work_dir: str | None
    monitor_on_console: bool
    input_slice_s: float
    semihosting_exit: bool

    @classmethod
    def from_mapping(cls, options: Mapping[str, Any] | None) -> RenodeOptions:
        """Checked conversion of a board's options; OptionError names what is wrong."""
        values = check_options(OPTIONS, options or {}, "backend renode")
        values["extra_commands"] = tuple(values["extra_commands"])
        return cls(**values)


#: Monitor error lines start like this (after the prompt); Renode then stops the
#: script but keeps running, so the backend must end it.
_ERROR_PREFIXES = ("Could not find", "Error", "Invalid", "Failed", "Unknown",
                   "Parameters did not match", "There was an error", "Could not")
#: Lines kept from a monitor error: Renode prints what failed, then why.
_ERROR_CONTEXT_LINES = 3
#: How long Renode may go on printing after its first error line.
_ERROR_SETTLE_S = 0.25
_PROMPT = re.compile(r"^(?:\([^)]*\)\s*)+")
#: A newer Renode's own semihosting exit line.
_EXIT_LINE = re.compile(r"Program exited with reason\b(?P<rest>.*)")
_EXIT_CODE = re.compile(r"(?:code|status)\D{0,3}(-?\d+)|\b(-?\d+)\s*$", re.IGNORECASE)
#: Renode's output kept for the infrastructure log: its start and its end.
_LOG_HEAD_CHARS = 64 * 1024
_LOG_TAIL_CHARS = 192 * 1024
#: Renode's output file may grow to this; past it the job ends (a firmware that floods
#: Renode's log with unmodelled accesses would otherwise fill the disk until the guard).
MAX_RENODE_OUTPUT_BYTES = 64 * 1024 * 1024
#: What our exit hook logs (see ``exit_hook``).
_HOOK_EXIT = re.compile(r"hwut-semihosting-exit code=(?P<code>-?\d+) at=(?P<at>[\d.]+)")


class RenodeNotFound(LookupError):
    """No usable Renode executable; the message says where we looked."""


def renode_run_locations(home: Path | None = None) -> list[Path]:
    """Renode copies downloaded by ``renode-run`` (default one first).

    renode-run keeps its downloads under ``~/.config/renode/renode-run.download/``
    and records them in ``~/.config/renode/renode-run.json`` (``default``: the
    package directory in use; ``installations``: every package directory).
    Each package directory holds the ``renode`` launcher.
    """
    base = (home or Path.home()) / ".config" / "renode"
    dirs: list[Path] = []
    try:
        config = json.loads((base / "renode-run.json").read_text())
    except (OSError, ValueError):
        config = {}
    if isinstance(config, dict):
        default = config.get("default")
        if isinstance(default, dict):  # older configs: one default per variant
            dirs.extend(Path(v) for v in default.values() if isinstance(v, str))
        elif isinstance(default, str):
            dirs.append(Path(default))
        installs = config.get("installations")
        if isinstance(installs, dict):
            dirs.extend(Path(k) for k in installs)
    download = base / "renode-run.download"
    if download.is_dir():
        dirs.extend(sorted((p for p in download.iterdir() if p.is_dir()), reverse=True))
    seen: list[Path] = []
    for d in dirs:
        exe = d / "renode"
        if exe not in seen:
            seen.append(exe)
    return seen


def find_renode(options: Mapping[str, Any] | None = None, *,
                which: Callable[[str], str | None] = shutil.which,
                home: Path | None = None) -> Path:
    """The Renode executable: ``renode_path``, then ``renode`` on PATH, then renode-run's copy."""
    opts = dict(options or {})
    configured = opts.get("renode_path")
    if configured:
        path = Path(str(configured)).expanduser()
        if not path.is_file():
            raise RenodeNotFound(f"renode_path {str(path)!r} does not exist")
        if not os.access(path, os.X_OK):
            raise RenodeNotFound(f"renode_path {str(path)!r} is not executable")
        return path.absolute()
    on_path = which("renode")
    if on_path:
        return Path(on_path).absolute()
    candidates = renode_run_locations(home)
    for exe in candidates:
        if exe.is_file() and os.access(exe, os.X_OK):
            return exe
    return _not_found(candidates)


def _not_found(candidates: list[Path]) -> Path:
    where = "renode_path is not set, no 'renode' on PATH"
    where += (", and renode-run has no usable copy (" + ", ".join(map(str, candidates)) + ")"
              if candidates else ", and renode-run has downloaded none (~/.config/renode)")
    raise RenodeNotFound(f"Renode not found: {where}")


def platform_dir() -> Path:
    """Our platform files, shipped as package data of ``hwut.sim``."""
    candidate = Path(str(resources.files("hwut.sim") / "renode"))
    if candidate.is_dir():
        return candidate
    raise FileNotFoundError("hwut.sim's renode/ folder (the Renode platform files) is not installed")


def console_of(board_file: Path) -> str:
    """The monitor name of the console UART, as the board file declares it."""
    match = _CONSOLE_MARK.search(board_file.read_text())
    if match is None:
        raise ValueError(f"{board_file} names no console ('// hwut-console: sysbus.usartN')")
    return match.group(1)


def buttons_of(board_file: Path) -> dict[str, str]:
    """Button name -> its monitor name (``B1`` -> ``sysbus.gpioPortC.B1``)."""
    return {m["name"]: f"sysbus.{m['port']}.{m['name']}"
            for m in _BUTTON.finditer(board_file.read_text())}


def renode_time(seconds: float) -> str:
    """Virtual time in Renode's interval format, ``hh:mm:ss.ffffff``."""
    micros = max(0, round(seconds * 1_000_000))
    whole, frac = divmod(micros, 1_000_000)
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours:02d}:{minutes:02d}:{secs:02d}.{frac:06d}"


def _monitor_path(path: Path) -> str:
    """A path argument for the monitor (``@/abs/path``); Renode has no quoting for them."""
    text = str(path.resolve())
    if any(c.isspace() for c in text) or '"' in text or ";" in text or "'" in text:
        raise ValueError(f"Renode cannot take a path with spaces, quotes or ';': {text!r}")
    return "@" + text


def semihosting_sites(segments: list[tuple[int, bytes]], limit: int = MAX_EXIT_HOOKS
                      ) -> list[int]:
    """Addresses of ``BKPT 0xAB`` (0xBEAB, Thumb) in the image, at most ``limit``.

    Data that happens to hold 0xBEAB gets a hook too; a hook only runs if the
    CPU executes that address, so it costs nothing there.
    """
    found: list[int] = []
    for address, data in segments:
        start = address & 1  # halfword-aligned addresses only
        for offset in range(start, len(data) - 1, 2):
            if data[offset] == 0xAB and data[offset + 1] == 0xBE:
                found.append(address + offset)
                if len(found) >= limit:
                    return found
    return found


def exit_hook(address: int) -> str:
    """``cpu AddHook`` at a BKPT 0xAB: logs the code of SYS_EXIT (0x18) and
    SYS_EXIT_EXTENDED (0x20) as our simulator reads them, with the virtual time.

    One Python expression line in single quotes (the monitor's other string form),
    so it holds no single quote itself.
    """
    code = ("op = cpu.GetRegister(0).RawValue; a = cpu.GetRegister(1).RawValue; "
            "bus = machine.SystemBus; "
            "c = (0 if a == 0x20026 else 1) if op == 0x18 else "
            "((bus.ReadDoubleWord(a + 4) if bus.ReadDoubleWord(a) == 0x20026 "
            "else (bus.ReadDoubleWord(a + 4) or 1)) if op == 0x20 else None); "
            "c = c - 0x100000000 if c is not None and c >= 0x80000000 else c; "
            "cpu.Log(LogLevel.Info, \"hwut-semihosting-exit code=%d at=%.6f\" % "
            "(c, machine.ElapsedVirtualTime.TimeElapsed.TotalSeconds)) if c is not None else None")
    return f"sysbus.cpu AddHook 0x{address:08X} '{code}'"


def pin_events(pins: Sequence[tuple[str, float, int | None]], released: Mapping[str, int]
               ) -> list[tuple[int, str, int, bool]]:
    """(virtual ns, GPIO port's monitor name, pin, level) of each scripted pin level, in
    time order (the later given wins at the same time); a release (None) sets the level
    ``released`` says the board leaves on the pin (Renode's port models no pulls)."""
    out = []
    for name, at, level in pins:
        text = name.strip().upper()
        if not (len(text) >= 3 and text[0] == "P" and text[2:].isdigit()):
            raise ValueError(f"not a pin: {name!r}")
        value = released.get(text, 0) if level is None else level
        out.append((round(at * 1_000_000_000), f"sysbus.gpioPort{text[1]}", int(text[2:]),
                    bool(value)))
    return sorted(out, key=lambda event: event[0])


def runner_script(*, limit_s: float, console: str, console_base: int,
                  uart_input: bytes, presses: list[tuple[str, float, float | None]],
                  buttons: Mapping[str, str], input_slice_s: float,
                  pins: Sequence[tuple[int, str, int, bool]] = ()) -> str:
    """The Python a job with input or presses runs in Renode's monitor (``include``).

    It runs the job's virtual time in slices: up to the next press or release,
    and, while console input waits, ``input_slice_s`` at a time until the
    console's CR1 has UE and RE set; then all input goes into the UART's
    receive queue at once (Renode's queue has no overrun, so this is what our
    simulator's paced input gives the firmware). Errors print a line starting
    with "Error", which the backend reports.
    """
    ns = 1_000_000_000
    events: list[tuple[int, str, str]] = []
    for button, at, release in presses:
        if button not in buttons:
            raise ValueError(f"the Renode board has no button {button!r}; it has "
                             f"{', '.join(sorted(buttons)) or 'none'}")
        events.append((round(at * ns), buttons[button], "Press"))
        if release is not None:
            events.append((round(release * ns), buttons[button], "Release"))
    events.sort()
    return f"""# HWUT job schedule (generated): virtual time in slices, input, presses
from Antmicro.Renode.Time import TimeInterval
try:
    hwut_emulation = emulationManager.CurrentEmulation
    hwut_machine = self.Machine
    hwut_bus = hwut_machine.SystemBus
    hwut_console = hwut_machine[{console!r}]
    hwut_input = {list(uart_input)!r}
    hwut_events = {[(t, name, action) for t, name, action in events]!r}
    hwut_pins = {list(pins)!r}
    hwut_limit = {round(limit_s * ns)}
    hwut_slice = {max(1000, round(input_slice_s * ns))}
    while True:
        hwut_now = hwut_emulation.MasterTimeSource.ElapsedVirtualTime.TotalNanoseconds
        if hwut_input and (hwut_bus.ReadDoubleWord(0x{console_base:08X}) & 0x5) == 0x5:
            for hwut_byte in hwut_input:
                hwut_console.WriteChar(hwut_byte)
            hwut_input = []
        while hwut_events and hwut_events[0][0] <= hwut_now:
            hwut_at, hwut_name, hwut_action = hwut_events.pop(0)
            getattr(hwut_machine[hwut_name], hwut_action)()
        while hwut_pins and hwut_pins[0][0] <= hwut_now:
            hwut_at, hwut_port, hwut_pin, hwut_level = hwut_pins.pop(0)
            hwut_machine[hwut_port].OnGPIO(hwut_pin, hwut_level)
        if hwut_now >= hwut_limit:
            break
        hwut_next = hwut_events[0][0] if hwut_events else hwut_limit
        if hwut_pins:
            hwut_next = min(hwut_next, hwut_pins[0][0])
        if hwut_input:
            hwut_next = min(hwut_next, hwut_now + hwut_slice)
        hwut_emulation.RunFor(TimeInterval.FromNanoseconds(min(hwut_next, hwut_limit) - hwut_now))
except Exception as hwut_error:
    print("Error: HWUT job schedule failed: %s" % hwut_error)
"""


@dataclass(frozen=True)
class JobFiles:
    """Where one job's script puts what Renode writes."""

    uart: Path
    semihosting: Path
    runner: Path | None = None


def build_script(*, platform: Path, console: str, firmware: Path, fmt: str, files: JobFiles,
                 limit_s: float, mips: int | None = 8,
                 extra: tuple[str, ...] | list[str] = (), flash_base: int = FLASH_BASE,
                 hooks: list[int] | tuple[int, ...] = (),
                 more: Sequence[tuple[Path, str, int | None]] = ()) -> str:
    """The one-shot monitor script of one job (the exact lines Renode runs).

    Peripherals are named in full (``sysbus.cpu``, ``sysbus.usart2``): the
    script does not rely on ``using sysbus``. VTOR is 0 after loading, as on the
    chip (Renode guesses it from the image: 0x08000000), and again in the
    ``reset`` macro, which Renode runs when the firmware requests a system reset
    (the CPU's reset forgets VTOR; memory keeps the image). With a runner
    (input or presses) the run is the runner's; else one ``emulation RunFor``.
    ``more``: the job's further images (path, format, BIN address or None), loaded
    after ``firmware`` in order, as a lab flashes a bootloader and its application.
    """
    def load(path: Path, fmt: str, address: int | None = None) -> str:
        at = flash_base if address is None else address
        lines = {
            "elf": f"sysbus LoadELF {_monitor_path(path)}",
            "bin": f"sysbus LoadBinary {_monitor_path(path)} 0x{at:08X}",
            "hex": f"sysbus LoadHEX {_monitor_path(path)}",
        }
        if fmt not in lines:
            raise ValueError(f"unknown executable format {fmt!r}")
        return lines[fmt]
    loads = [load(firmware, fmt), *(load(p, f, a) for p, f, a in more)]
    run = ([f"include {_monitor_path(files.runner)}"] if files.runner is not None
           else [f'emulation RunFor "{renode_time(limit_s)}"'])
    lines = [
        'mach create "hwut"',
        f"machine LoadPlatformDescription {_monitor_path(platform)}",
        *loads,
        "sysbus.cpu VectorTableOffset 0x0",
        *([f"sysbus.cpu PerformanceInMips {int(mips)}"] if mips else []),
        "macro reset",
        '"""',
        "    sysbus.cpu VectorTableOffset 0x0",
        '"""',
        *extra,
        f"{console} CreateFileBackend {_monitor_path(files.uart)} true",
        f"{SEMIHOSTING_UART} CreateFileBackend {_monitor_path(files.semihosting)} true",
        *(exit_hook(address) for address in hooks),
        "emulation SetGlobalAdvanceImmediately true",
        *run,
        "quit",
    ]
    return "\n".join(lines) + "\n"


def command_line(renode: Path, script: Path, pid_file: Path, *,
                 console: bool = True) -> list[str]:
    """Headless, plain output, no telnet monitor, pid file, the script as positional argument.

    ``--console`` puts the monitor on our stdin/stdout: script errors then
    reach the log we read (a hidden monitor would swallow them), and no
    telnet port is opened, so jobs run side by side. stdin stays an open pipe
    for the whole run; Renode quits on its end, so if HWUT dies, Renode follows.
    ``--port -2`` keeps any version from opening the default port 1234.
    Without ``console`` the monitor is hidden: errors in the script are then
    only noticed by the scheduler's deadline (for Renode builds whose console
    mode misbehaves on a pipe).
    """
    return [str(renode), "--disable-xwt", *(["--console"] if console else []), "--plain",
            "--port", "-2", "--pid-file", str(pid_file), str(script)]


@dataclass
class _Tail:
    """Reads what was appended to a file since the last call."""

    path: Path
    handle: IO[bytes] | None = None

    def read(self) -> bytes:
        if self.handle is None:
            try:
                self.handle = open(self.path, "rb")  # noqa: SIM115 -- closed by close()
            except FileNotFoundError:
                return b""
        return self.handle.read()

    def close(self) -> None:
        if self.handle is not None:
            self.handle.close()
            self.handle = None


@dataclass
class _LogWatch:
    """Renode's own output: scanned line by line; its start and end kept for the
    infrastructure log (bounded: a flood of warnings must not fill memory)."""

    head: str = ""
    tail: deque[str] = field(default_factory=deque)
    tail_chars: int = 0
    dropped: int = 0
    received: int = 0
    partial: str = ""
    error_lines: list[str] = field(default_factory=list)
    exit_line: str | None = None
    exit_code: int | None = None
    exit_at_s: float | None = None

    def feed(self, data: bytes) -> None:
        chunk = data.decode("utf-8", "replace")
        self.received += len(data)
        self._keep(chunk)
        lines = (self.partial + chunk).split("\n")
        self.partial = lines.pop()
        for line in lines:
            self._scan(line.rstrip("\r"))

    def finish(self) -> None:
        if self.partial:
            self._scan(self.partial)
            self.partial = ""

    @property
    def error(self) -> str | None:
        """The first monitor error and the lines after it that explain it."""
        return " ".join(self.error_lines) if self.error_lines else None

    def _scan(self, line: str) -> None:
        bare = _PROMPT.sub("", line).strip()
        if self.error_lines:
            if bare and len(self.error_lines) < _ERROR_CONTEXT_LINES:
                self.error_lines.append(bare)
        elif bare.startswith(_ERROR_PREFIXES):
            self.error_lines.append(bare)
        if self.exit_line is not None:
            return
        hooked = _HOOK_EXIT.search(line)
        if hooked:
            self.exit_line = line.strip()
            self.exit_code = int(hooked["code"])
            self.exit_at_s = float(hooked["at"])
            return
        found = _EXIT_LINE.search(line)
        if found:
            self.exit_line = line.strip()
            code = _EXIT_CODE.search(found.group("rest"))
            if code:
                self.exit_code = int(code.group(1) or code.group(2))

    def _keep(self, chunk: str) -> None:
        room = _LOG_HEAD_CHARS - len(self.head)
        if room > 0:
            self.head += chunk[:room]
            chunk = chunk[room:]
        if not chunk:
            return
        self.tail.append(chunk)
        self.tail_chars += len(chunk)
        while self.tail_chars > _LOG_TAIL_CHARS:
            first = self.tail.popleft()
            excess = self.tail_chars - _LOG_TAIL_CHARS
            if len(first) > excess:
                self.tail.appendleft(first[excess:])
                first = first[:excess]
            self.tail_chars -= len(first)
            self.dropped += len(first)

    @property
    def log(self) -> str:
        gap = (f"\n[... {self.dropped} characters of Renode output left out ...]\n"
               if self.dropped else "")
        return self.head + gap + "".join(self.tail)


class RenodeBackend(Backend):
    """One board instance run by an installed Renode, one process per job."""

    name: ClassVar[str] = "renode"
    option_infos: ClassVar[tuple[OptionInfo, ...] | None] = OPTIONS

    def __init__(self, board: str, options: Mapping[str, Any] | None = None, *,
                 clock: Callable[[], float] = time.monotonic,
                 which: Callable[[str], str | None] = shutil.which) -> None:
        super().__init__(board, options)
        #: Every option, checked once: a bad one makes the instance unavailable.
        self.settings = RenodeOptions.from_mapping(options)
        self._clock = clock
        self._which = which

    @classmethod
    def boards(cls) -> tuple[str, ...]:
        return tuple(sorted(PLATFORMS))

    @classmethod
    def board_info(cls, board: str, options: Mapping[str, Any] | None = None
                   ) -> BoardInfo | None:
        """Boards with a platform file; their facts come from the sim's specs, which the
        platform files are tested against. Console input and scripted presses are fed
        in Renode, so jobs may ask for them as on the sim backend."""
        spec = simboards.find(board) if board in PLATFORMS else None
        if spec is None:
            return None
        return simboards.board_info(spec, console_input=True, presses=True, drive_pins=True,
                                    backend=cls.name)

    @classmethod
    def availability(cls, options: Mapping[str, Any] | None = None) -> Availability:
        """Renode found and answering ``--version``: ok with the version line."""
        try:
            settings = RenodeOptions.from_mapping(options)
            renode = find_renode(options)
        except (RenodeNotFound, ValueError) as exc:
            return Availability(False, str(exc))
        timeout = settings.version_timeout_s
        try:
            done = subprocess.run([str(renode), "--version"], check=False, capture_output=True,
                                  text=True, timeout=timeout, stdin=subprocess.DEVNULL,
                                  start_new_session=True)
        except subprocess.TimeoutExpired:
            return Availability(False, f"{renode} --version did not answer within {timeout:g} s")
        except OSError as exc:
            return Availability(False, f"{renode} cannot be started: {exc}")
        text = (done.stdout.strip() or done.stderr.strip())
        first = text.splitlines()[0] if text else ""
        if done.returncode != 0:
            return Availability(False, f"{renode} --version exited with status "
                                       f"{done.returncode}: {first or 'no output'}")
        return Availability(True, f"{first or 'Renode (version not printed)'} ({renode})")

    @classmethod
    def extra_wall_s(cls, time_limit_s: float, options: Mapping[str, Any]) -> float:
        """Renode's start-up plus its allowance per virtual second (``wall_factor``):
        Renode runs firmware that polls SysTick hundreds of times slower than the board."""
        settings = RenodeOptions.from_mapping(options)
        return settings.startup_allowance_s + time_limit_s * settings.wall_factor

    # -- running a job -----------------------------------------------------------------
    def run(self, request: RunRequest) -> Outcome:
        try:
            renode = find_renode({"renode_path": self.settings.renode_path}, which=self._which)
        except RenodeNotFound as exc:
            return Outcome(StopReason.INFRASTRUCTURE, detail=str(exc))
        name = PLATFORMS.get(request.board)
        if name is None:
            return Outcome(StopReason.INFRASTRUCTURE,
                           detail=f"no Renode platform for board {request.board!r}; "
                                  f"known: {', '.join(sorted(PLATFORMS))}")
        try:
            platform = platform_dir() / name
        except FileNotFoundError as exc:
            return Outcome(StopReason.INFRASTRUCTURE, detail=str(exc))
        parent = self.settings.work_dir
        with tempfile.TemporaryDirectory(prefix="hwut-renode-",
                                         dir=str(parent) if parent else None) as work:
            job = _Job(self, renode, platform, Path(work), request)
            try:
                return job.run()
            finally:
                job.close()


class _Job:
    """One Renode process for one job; ``close`` releases everything it opened."""

    def __init__(self, backend: RenodeBackend, renode: Path, platform: Path, work: Path,
                 request: RunRequest) -> None:
        self.backend = backend
        self.settings = backend.settings
        self.renode = renode
        self.platform = platform
        self.work = work
        self.request = request
        self.clock = backend._clock
        needs_runner = bool(request.uart_input or request.presses or request.pins)
        self.files = JobFiles(uart=work / "uart.log", semihosting=work / "semihosting.log",
                              runner=work / "schedule.py" if needs_runner else None)
        self.pid_file = work / "renode.pid"
        self.log_file = work / "renode.out"
        self.script = work / "job.resc"
        self.uart = _Tail(self.files.uart)
        self.semihosting = _Tail(self.files.semihosting)
        self.log_tail = _Tail(self.log_file)
        self.watch = _LogWatch()
        self.proc: subprocess.Popen[bytes] | None = None
        self.log_handle: IO[bytes] | None = None
        self.pgid: int | None = None
        #: BKPT 0xAB addresses in the image; those given an exit hook.
        self.sites: list[int] = []
        self.hooks: list[int] = []

    def run(self) -> Outcome:
        request, settings = self.request, self.settings
        try:
            script = self._prepare()
        except (ValueError, OSError, InvalidFirmware) as exc:
            return Outcome(StopReason.INFRASTRUCTURE, detail=f"cannot prepare the Renode job: {exc}")
        argv = command_line(self.renode, self.script, self.pid_file,
                            console=settings.monitor_on_console)
        self.log_handle = open(self.log_file, "wb")  # noqa: SIM115 -- closed by close()
        started = self.clock()
        try:
            self.proc = subprocess.Popen(argv, cwd=self.work, stdin=subprocess.PIPE,
                                         stdout=self.log_handle, stderr=subprocess.STDOUT,
                                         start_new_session=True)
        except OSError as exc:
            return Outcome(StopReason.INFRASTRUCTURE, infra_log=script,
                           detail=f"Renode cannot be started ({self.renode}): {exc}")
        self.pgid = self.proc.pid  # start_new_session: the leader's pid is the group id
        reason, detail = self._watch(settings.poll_interval_s)
        used = request.time_limit_s if reason is StopReason.LIMIT else 0.0
        if reason is StopReason.EXIT and self.watch.exit_at_s is not None:
            used = min(request.time_limit_s, self.watch.exit_at_s)
        runner = (f"--- {self.files.runner.name} ---\n{self.files.runner.read_text()}"
                  if self.files.runner is not None else "")
        infra = (f"$ {' '.join(argv)}\n--- script ---\n{script}{runner}--- renode output ---\n"
                 f"{self.watch.log}\n--- {self.clock() - started:.3f} s wall ---")
        if reason is StopReason.LIMIT and self._exit_unreported():
            detail = ("the firmware makes semihosting calls, but Renode reports no semihosting "
                      "exit without the exit hooks (board option semihosting_exit is off): "
                      "an exit would not end the job, which ran to its limit")
        code = self.watch.exit_code if reason is StopReason.EXIT else None
        return Outcome(reason, exit_code=code, time_used_s=used, infra_log=infra, detail=detail)

    def _prepare(self) -> str:
        """Write the job's script (and runner); returns the script's text."""
        request, settings = self.request, self.settings
        info = self.backend.board_info(request.board, self.backend.options)
        flash_base = info.memory.bin_base if info is not None else FLASH_BASE
        image = load_images(request)
        self.sites = semihosting_sites([(s.address, s.data) for s in image.segments])
        self.hooks = self.sites if settings.semihosting_exit else []
        console = console_of(self.platform)
        if self.files.runner is not None:
            self.files.runner.write_text(runner_script(
                limit_s=request.time_limit_s, console=console,
                console_base=self._console_base(console), uart_input=request.uart_input,
                presses=list(request.presses), buttons=buttons_of(self.platform),
                input_slice_s=settings.input_slice_s,
                pins=pin_events(request.pins, self._released_levels())))
        first, *more = request.image_files()
        script = build_script(
            platform=self.platform, console=console, firmware=first.path,
            fmt=first.format, files=self.files, limit_s=request.time_limit_s,
            mips=settings.performance_mips, extra=settings.extra_commands,
            flash_base=flash_base if first.address is None else first.address,
            hooks=self.hooks, more=[(f.path, f.format, f.address) for f in more])
        self.script.write_text(script)
        return script

    def _released_levels(self) -> dict[str, int]:
        """Pin -> the level the board leaves on it (board data), for a released pin."""
        spec = simboards.find(self.request.board)
        return {p.pin: p.level for p in simboards.pin_defaults(spec)} if spec else {}

    def _console_base(self, console: str) -> int:
        """The console UART's base address, from the SoC data (CR1 is at offset 0)."""
        spec = simboards.find(self.request.board)
        wanted = console.rsplit(".", 1)[-1].upper()
        if spec is not None:
            for peripheral in spec.soc.peripherals:
                if peripheral.name.upper() == wanted:
                    return peripheral.base
        raise ValueError(f"no base address known for the console {console}")

    def _exit_unreported(self) -> bool:
        """The image makes semihosting calls, but no exit hook watches them."""
        return bool(self.sites) and not self.hooks and self.watch.exit_line is None

    def _watch(self, poll: float) -> tuple[StopReason, str]:
        """Stream until Renode quits, fails, the firmware exits or the run is cancelled
        (which the scheduler's deadline does too: no wall-clock guard of our own)."""
        assert self.proc is not None
        request = self.request
        error_seen: float | None = None
        while True:
            self._pump()
            if self.watch.error is not None:
                error_seen = self.clock() if error_seen is None else error_seen
                if self.clock() - error_seen >= _ERROR_SETTLE_S or self.proc.poll() is not None:
                    self._stop()
                    return StopReason.INFRASTRUCTURE, f"Renode: {self.watch.error}"
                time.sleep(poll)
                continue
            if self.watch.exit_line is not None:
                self._stop()
                return StopReason.EXIT, self._exit_detail()
            status = self.proc.poll()
            if status is not None:
                self._pump()
                self.watch.finish()
                return self._ended(status)
            if request.cancel.is_set():
                self._stop()
                return StopReason.CANCEL, "cancelled"
            if self.watch.received > MAX_RENODE_OUTPUT_BYTES:
                self._stop()
                return (StopReason.INFRASTRUCTURE,
                        f"Renode wrote more than {MAX_RENODE_OUTPUT_BYTES >> 20} MiB of log "
                        "(warnings about the firmware's accesses?); the job was ended")
            request.cancel.wait(poll)

    def _exit_detail(self) -> str:
        code = self.watch.exit_code
        return (f"firmware exited with code {code}" if code is not None
                else f"firmware exited ({self.watch.exit_line}); Renode reported no exit code")

    def _ended(self, status: int) -> tuple[StopReason, str]:
        if self.watch.error is not None:
            return StopReason.INFRASTRUCTURE, f"Renode: {self.watch.error}"
        if self.watch.exit_line is not None:
            return StopReason.EXIT, self._exit_detail()
        if status != 0:
            tail = [ln for ln in self.watch.log.strip().splitlines() if ln.strip()][-3:]
            return (StopReason.INFRASTRUCTURE,
                    f"Renode exited with status {status}: " + (" | ".join(tail) or "no output"))
        return StopReason.LIMIT, ""

    def _pump(self) -> None:
        for tail in (self.uart, self.semihosting):
            data = tail.read()
            if data:
                self.request.uart(data)
        log = self.log_tail.read()
        if log:
            self.watch.feed(log)

    def _stop(self) -> None:
        """End Renode, then hand over what it wrote before it went."""
        self._terminate()
        self._pump()
        self.watch.finish()

    def _terminate(self) -> None:
        """SIGTERM to the whole group, SIGKILL after the grace period; reaps the leader."""
        proc = self.proc
        if proc is None or proc.poll() is not None:
            return
        self._signal_group(signal.SIGTERM)
        try:
            proc.wait(timeout=self.settings.term_grace_s)
        except subprocess.TimeoutExpired:
            self._signal_group(signal.SIGKILL)
            proc.wait()

    def _signal_group(self, sig: int) -> None:
        if self.pgid is None:
            return
        try:
            os.killpg(self.pgid, sig)
        except (ProcessLookupError, PermissionError):
            pass

    def close(self) -> None:
        """Kill whatever is left of the group and close every handle; safe to call twice.

        Calls no sink: it runs on the error path too, where the sink may be what failed.
        """
        proc = self.proc
        try:
            if proc is not None:
                try:
                    self._terminate()
                finally:
                    self.proc = None
                    self._signal_group(signal.SIGKILL)  # children Renode may have left behind
                    if proc.poll() is None:
                        proc.kill()
                    proc.wait()
                    if proc.stdin is not None:
                        proc.stdin.close()
        finally:
            self.pgid = None
            self.uart.close()
            self.semihosting.close()
            self.log_tail.close()
            if self.log_handle is not None:
                self.log_handle.close()
                self.log_handle = None
