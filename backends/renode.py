"""Run jobs in Renode where it is installed (``backend = "renode"``).

Renode is driven through its documented command line and monitor language
only: each job gets a private directory holding a one-shot ``.resc`` script
(create the machine, load our platform file and the firmware, connect the
console UART to a fresh file, run for the job's limit in virtual time, quit).
Renode runs headless in its own process group; the backend streams the UART
file into the job log while it grows and keeps Renode's own output apart, as
the infrastructure log. Cancel (the run's token: a user's cancel, the server
stopping, or the scheduler's deadline) or a monitor error end the process group
(SIGTERM, then SIGKILL), so a hung Renode never outlives ``run``.

Semihosting exit: Renode's newer semihosting handler logs "Program exited with
reason ..." and halts the CPU but keeps running; the backend watches the log
for that line, ends Renode and reports EXIT (with the code when the line
carries one). Renode without that handler gives no exit: the job runs to its
limit.
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
from collections.abc import Callable, Mapping
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

#: Board name -> platform file in sim/renode/ (the board file ``using`` the SoC file).
PLATFORMS: dict[str, str] = {"nucleo-f303re": "nucleo_f303re.repl"}
#: Where the board file names its console (a comment line Renode ignores).
_CONSOLE_MARK = re.compile(r"^//\s*hwut-console:\s*(\S+)\s*$", re.MULTILINE)
#: Where BIN images go when the board's data says nothing else (the STM32 flash).
FLASH_BASE = 0x0800_0000

#: The board-instance options of the ``renode`` backend (server config).
OPTIONS: tuple[OptionInfo, ...] = (
    OptionInfo("renode_path", str, None,
               "the Renode executable; not set: `renode` on PATH, else renode-run's copy"),
    OptionInfo("term_grace_s", float, 3.0, "seconds from SIGTERM to SIGKILL when Renode "
                                           "is ended", minimum=0),
    OptionInfo("poll_interval_s", float, 0.05, "how often the UART file and Renode's log "
                                               "are read, in seconds", minimum=0.001),
    OptionInfo("version_timeout_s", float, 20.0, "how long `renode --version` may take when "
                                                 "the server starts", minimum=0),
    OptionInfo("performance_mips", int, 72, "the CPU's PerformanceInMips (the F303 at 72 MHz "
                                            "runs about 1 instruction per cycle); 0: Renode's "
                                            "default", minimum=0),
    OptionInfo("extra_commands", tuple, (), "monitor lines run after loading the firmware "
                                            "(e.g. a semihosting block)"),
    OptionInfo("work_dir", str, None, "parent of the per-job directories; not set: the "
                                      "system's temporary directory"),
    OptionInfo("monitor_on_console", bool, True, "run the monitor on Renode's console, so "
                                                 "monitor errors reach the infrastructure log"),
)
#: The options' defaults.
DEFAULTS: dict[str, Any] = {o.name: o.default for o in OPTIONS}

#: Monitor error lines start like this (after the prompt); Renode then stops the
#: script but keeps running, so the backend must end it.
_ERROR_PREFIXES = ("Could not find", "Error", "Invalid", "Failed", "Unknown",
                   "Parameters did not match", "There was an error", "Could not")
#: Lines kept from a monitor error: Renode prints what failed, then why.
_ERROR_CONTEXT_LINES = 3
#: How long Renode may go on printing after its first error line.
_ERROR_SETTLE_S = 0.25
_PROMPT = re.compile(r"^(?:\([^)]*\)\s*)+")
_EXIT_LINE = re.compile(r"Program exited with reason\b(?P<rest>.*)")
_EXIT_CODE = re.compile(r"(?:code|status)\D{0,3}(-?\d+)|\b(-?\d+)\s*$", re.IGNORECASE)


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
    if any(c.isspace() for c in text) or '"' in text or ";" in text:
        raise ValueError(f"Renode cannot take a path with spaces, quotes or ';': {text!r}")
    return "@" + text


def build_script(*, platform: Path, console: str, firmware: Path, fmt: str, uart_file: Path,
                 limit_s: float, mips: int | None = 72,
                 extra: tuple[str, ...] | list[str] = (), flash_base: int = FLASH_BASE) -> str:
    """The one-shot monitor script of one job (the exact lines Renode runs).

    Peripherals are named in full (``sysbus.cpu``, ``sysbus.usart2``): the
    script does not rely on ``using sysbus``. HEX images get the vector table
    offset too, since Renode guesses VTOR only from ELF sections.
    """
    load = {
        "elf": [f"sysbus LoadELF {_monitor_path(firmware)}"],
        "bin": [f"sysbus LoadBinary {_monitor_path(firmware)} 0x{flash_base:08X}",
                f"sysbus.cpu VectorTableOffset 0x{flash_base:08X}"],
        "hex": [f"sysbus LoadHEX {_monitor_path(firmware)}",
                f"sysbus.cpu VectorTableOffset 0x{flash_base:08X}"],
    }
    if fmt not in load:
        raise ValueError(f"unknown executable format {fmt!r}")
    lines = [
        'mach create "hwut"',
        f"machine LoadPlatformDescription {_monitor_path(platform)}",
        *load[fmt],
        *([f"sysbus.cpu PerformanceInMips {int(mips)}"] if mips else []),
        *extra,
        f"{console} CreateFileBackend {_monitor_path(uart_file)} true",
        "emulation SetGlobalAdvanceImmediately true",
        f'emulation RunFor "{renode_time(limit_s)}"',
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
    """Renode's own output: kept whole for the infrastructure log, scanned line by line."""

    text: list[str] = field(default_factory=list)
    partial: str = ""
    error_lines: list[str] = field(default_factory=list)
    exit_line: str | None = None
    exit_code: int | None = None

    def feed(self, data: bytes) -> None:
        chunk = data.decode("utf-8", "replace")
        self.text.append(chunk)
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
        found = _EXIT_LINE.search(line)
        if found and self.exit_line is None:
            self.exit_line = line.strip()
            code = _EXIT_CODE.search(found.group("rest"))
            if code:
                self.exit_code = int(code.group(1) or code.group(2))

    @property
    def log(self) -> str:
        return "".join(self.text)


class RenodeBackend(Backend):
    """One board instance run by an installed Renode, one process per job."""

    name: ClassVar[str] = "renode"
    option_infos: ClassVar[tuple[OptionInfo, ...] | None] = OPTIONS

    def __init__(self, board: str, options: Mapping[str, Any] | None = None, *,
                 clock: Callable[[], float] = time.monotonic,
                 which: Callable[[str], str | None] = shutil.which) -> None:
        super().__init__(board, options)
        self._clock = clock
        self._which = which

    def option(self, name: str) -> Any:
        return self.options[name]

    @classmethod
    def boards(cls) -> tuple[str, ...]:
        return tuple(sorted(PLATFORMS))

    @classmethod
    def board_info(cls, board: str, options: Mapping[str, Any] | None = None
                   ) -> BoardInfo | None:
        """Boards with a platform file; their facts come from the sim's specs, which the
        platform files are tested against. Renode is not fed console input or presses
        (it would ignore them), so the service refuses jobs that ask for them."""
        spec = simboards.find(board) if board in PLATFORMS else None
        if spec is None:
            return None
        return simboards.board_info(spec, console_input=False, presses=False)

    @classmethod
    def availability(cls, options: Mapping[str, Any] | None = None) -> Availability:
        """Renode found and answering ``--version``: ok with the version line."""
        opts = check_options(OPTIONS, options or {}, "backend renode")
        try:
            renode = find_renode(opts)
        except RenodeNotFound as exc:
            return Availability(False, str(exc))
        timeout = float(opts["version_timeout_s"])
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

    # -- running a job -----------------------------------------------------------------
    def run(self, request: RunRequest) -> Outcome:
        try:
            renode = find_renode(self.options, which=self._which)
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
        parent = self.option("work_dir")
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
        self.renode = renode
        self.platform = platform
        self.work = work
        self.request = request
        self.clock = backend._clock
        self.uart_file = work / "uart.log"
        self.pid_file = work / "renode.pid"
        self.log_file = work / "renode.out"
        self.script = work / "job.resc"
        self.uart = _Tail(self.uart_file)
        self.log_tail = _Tail(self.log_file)
        self.watch = _LogWatch()
        self.proc: subprocess.Popen[bytes] | None = None
        self.log_handle: IO[bytes] | None = None
        self.pgid: int | None = None

    def run(self) -> Outcome:
        request, opt = self.request, self.backend.option
        try:
            script = build_script(
                platform=self.platform, console=console_of(self.platform),
                firmware=request.executable, fmt=request.format, uart_file=self.uart_file,
                limit_s=request.time_limit_s, mips=opt("performance_mips"),
                extra=tuple(opt("extra_commands") or ()), flash_base=self._flash_base())
        except (ValueError, OSError) as exc:
            return Outcome(StopReason.INFRASTRUCTURE, detail=f"cannot prepare the Renode job: {exc}")
        self.script.write_text(script)
        argv = command_line(self.renode, self.script, self.pid_file,
                            console=bool(opt("monitor_on_console")))
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
        reason, detail = self._watch(float(opt("poll_interval_s")))
        used = request.time_limit_s if reason is StopReason.LIMIT else 0.0
        infra = (f"$ {' '.join(argv)}\n--- script ---\n{script}--- renode output ---\n"
                 f"{self.watch.log}\n--- {self.clock() - started:.3f} s wall ---")
        code = self.watch.exit_code if reason is StopReason.EXIT else None
        if request.uart_input:
            infra += ("\nconsole input is not supported by the Renode backend: "
                      f"{len(request.uart_input)} bytes ignored")
        if request.presses:
            infra += ("\nscripted button presses are not supported by the Renode backend: "
                      f"{len(request.presses)} ignored")
        return Outcome(reason, exit_code=code, time_used_s=used, infra_log=infra, detail=detail)

    def _flash_base(self) -> int:
        """Where BIN images load and the vectors are: the board's flash, from the sim data."""
        info = self.backend.board_info(self.request.board, self.backend.options)
        return info.memory.bin_base if info is not None else FLASH_BASE

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
            request.cancel.wait(poll)

    def _exit_detail(self) -> str:
        code = self.watch.exit_code
        return (f"firmware exited with code {code}" if code is not None
                else f"firmware exited ({self.watch.exit_line})")

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
        data = self.uart.read()
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
            proc.wait(timeout=float(self.backend.option("term_grace_s")))
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
            self.log_tail.close()
            if self.log_handle is not None:
                self.log_handle.close()
                self.log_handle = None
