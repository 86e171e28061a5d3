"""Server configuration: one typed options registry plus the board and target data.

Priority of an option's value: command line > environment (``HWUT_*``) > config
file > built-in default. Boards, their backend and instance count, and the
microcontroller data come from the TOML file only (they are structured data).
"""
from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hwut.backends.base import Backend
from hwut.backends.base import OptionInfo as BaseOptionInfo

DEFAULT_CONFIG_PATH = Path(__file__).with_name("default_config.toml")


class ConfigError(ValueError):
    """The configuration is wrong; the message names the option or table."""


@dataclass(frozen=True)
class OptionInfo(BaseOptionInfo):
    """A server option: the backends' typed option with where the environment sets it."""

    @property
    def env(self) -> str:
        return "HWUT_" + self.name.upper().replace(".", "_")


def _default_data_dir() -> str:
    base = os.environ.get("XDG_DATA_HOME") or os.path.join(os.path.expanduser("~"), ".local",
                                                            "share")
    return os.path.join(base, "hwut")


OPTIONS: dict[str, OptionInfo] = {o.name: o for o in (
    OptionInfo("data_dir", str, _default_data_dir(),
               "Directory for the job database, executables and logs."),
    OptionInfo("server.host", str, "127.0.0.1", "Address `hwut serve` listens on."),
    OptionInfo("server.port", int, 5000, "TCP port `hwut serve` listens on (0: any free port)."),
    OptionInfo("server.threads", int, 8, "waitress worker threads serving HTTP requests."),
    OptionInfo("server.max_streams", int, 4,
               "Job files (logs, traces) sent at once; more readers get 503 and retry, so "
               "slow readers never hold every HTTP thread."),
    OptionInfo("server.channel_timeout_seconds", int, 30,
               "waitress closes a connection idle this long (a client that stopped reading "
               "or never finished its headers)."),
    OptionInfo("server.connection_limit", int, 100, "waitress's limit on open connections."),
    OptionInfo("limits.max_executable_bytes", int, 5 * 1024 * 1024,
               "Largest executable accepted by PUT /jobs/submit, in bytes."),
    OptionInfo("limits.min_duration_seconds", int, 1, "Smallest duration_limit_seconds."),
    OptionInfo("limits.max_duration_seconds", int, 300, "Largest duration_limit_seconds."),
    OptionInfo("limits.default_duration_seconds", int, 60,
               "duration_limit_seconds when the client gives none."),
    OptionInfo("scheduler.hang_grace_seconds", float, 30.0,
               "Wall time a job may take beyond its time limit and its CPU allowance "
               "before it counts as hung (its process is killed, the job becomes ERROR)."),
    OptionInfo("scheduler.hang_factor", float, 2.0,
               "Wall seconds a job may take per second of its CPU budget (a loaded machine "
               "runs it slower): a run may last time limit + CPU budget x hang_factor + "
               "hang_grace_seconds of wall time."),
    OptionInfo("scheduler.cancel_grace_seconds", float, 5.0,
               "How long a backend may take to stop after a cancel before it counts as hung."),
    OptionInfo("scheduler.poll_seconds", float, 0.5,
               "Longest time an idle worker sleeps before looking for work again."),
    OptionInfo("jobs.cpu_seconds_per_virtual_second", float, 10.0,
               "CPU seconds a job's process may use per second of its time limit; a job "
               "that needs more stops with stop reason cpu_limit (too slow to emulate)."),
    OptionInfo("jobs.min_cpu_seconds", float, 30.0, "The smallest CPU budget of a job."),
    OptionInfo("jobs.max_cpu_seconds", float, 600.0, "The largest CPU budget of a job."),
    OptionInfo("jobs.max_uart_bytes", int, 16 * 1024 * 1024,
               "Largest UART log a job keeps; a firmware that prints more is stopped there "
               "(stop reason output_limit)."),
    OptionInfo("jobs.max_other_bytes", int, 16 * 1024 * 1024,
               "Largest trace (ITM, the job's 'other' file) a job keeps; stopped likewise."),
    OptionInfo("jobs.max_trace_bytes", int, 4 * 1024 * 1024,
               "Largest pin trace (VCD) a job keeps; past it the trace is cut where it "
               "reached the limit and says so, and the run goes on."),
    OptionInfo("jobs.max_infra_bytes", int, 1024 * 1024,
               "Largest infrastructure log a job keeps (its head and tail are kept)."),
    OptionInfo("jobs.max_memory_bytes", int, 4 * 1024 * 1024 * 1024,
               "Address space of a job's process (the emulator reserves about 1 GiB)."),
    OptionInfo("quota.max_waiting_jobs", int, 100,
               "WAITING jobs one user may have, all boards together; a submit past it "
               "answers 429 with Retry-After (0: no limit). Admins are exempt while "
               "quota.admins_exempt is true."),
    OptionInfo("quota.max_running_per_user", int, 0,
               "Instances of one board one user's jobs may hold at once (QUEUED or "
               "RUNNING); the user's further jobs stay WAITING while others' run "
               "(0: all instances of the board). Admins included."),
    OptionInfo("quota.admins_exempt", bool, True,
               "Admins may queue past quota.max_waiting_jobs (maintenance and regression "
               "batches); the running limit and the round-robin still apply to them."),
)}

#: Authentication: failed logins are throttled (429 with Retry-After, no argon2 run)
#: per user name and per client address, over a sliding window.
OPTIONS.update({o.name: o for o in (
    OptionInfo("auth.max_failures_per_user", int, 10,
               "Failed logins for one user name within auth.failure_window_seconds (from "
               "any address) after which password logins for it answer 429 until the "
               "window frees (0: no limit). API tokens of that user keep working."),
    OptionInfo("auth.max_failures_per_address", int, 30,
               "Failed logins or token checks from one client address within "
               "auth.failure_window_seconds after which its attempts answer 429 (0: no "
               "limit)."),
    OptionInfo("auth.failure_window_seconds", float, 60.0,
               "The sliding window over which failed logins are counted."),
    OptionInfo("auth.max_tracked_keys", int, 10000,
               "User names and addresses whose failures are remembered at once; past it "
               "the least recently failed are forgotten (bounds memory under a flood)."),
)})


def _convert(info: OptionInfo, value: Any, source: str) -> Any:
    try:
        if info.type is bool and isinstance(value, str):
            return value.strip().lower() in ("1", "true", "yes", "on")
        if info.type is int and isinstance(value, bool):
            raise TypeError
        return info.type(value)
    except (TypeError, ValueError):
        raise ConfigError(f"option {info.name} from {source}: {value!r} is not a "
                          f"{info.type.__name__}") from None


@dataclass(frozen=True)
class BoardConfig:
    name: str
    backend: str
    instances: int = 1
    options: Mapping[str, Any] = field(default_factory=dict)
    microcontroller: str | None = None
    description: str | None = None
    #: Runs of a job again after an infrastructure error, and the errors in a row that
    #: take an instance offline (0: never); None: the backend's defaults.
    retries: int | None = None
    offline_after: int | None = None

    def target_record(self) -> dict[str, Any]:
        record: dict[str, Any] = {"name": self.name}
        if self.microcontroller:
            record["microcontroller"] = self.microcontroller
        if self.description:
            record["description"] = self.description
        return record


@dataclass(frozen=True)
class Config:
    values: Mapping[str, Any]
    boards: tuple[BoardConfig, ...]
    microcontrollers: tuple[dict[str, Any], ...]
    source: str = "<defaults>"
    #: The config file's ``[broker]`` table (jobs go to remote workers: hwut.broker), or
    #: None: the embedded default, jobs run on this server's own instances.
    broker: Mapping[str, Any] | None = None

    def __getitem__(self, name: str) -> Any:
        return self.values[name]

    @property
    def data_dir(self) -> Path:
        return Path(os.path.expanduser(str(self.values["data_dir"])))

    def board(self, name: str) -> BoardConfig | None:
        return next((b for b in self.boards if b.name == name), None)

    def with_values(self, **overrides: Any) -> Config:
        """A copy with options replaced (keys use '_' for '.', e.g. server_port)."""
        values = dict(self.values)
        for key, value in overrides.items():
            name = key if key in OPTIONS else key.replace("_", ".", 1)
            if name not in OPTIONS:
                raise ConfigError(f"unknown option {key}")
            values[name] = _convert(OPTIONS[name], value, "override")
        return Config(values, self.boards, self.microcontrollers, self.source, self.broker)


def load_config(path: Path | None = None, environ: Mapping[str, str] | None = None,
                cli: Mapping[str, Any] | None = None) -> Config:
    """Read ``path`` (or the shipped default) and apply environment and command-line values."""
    environ = os.environ if environ is None else environ
    path = Path(path) if path is not None else DEFAULT_CONFIG_PATH
    try:
        with open(path, "rb") as fh:
            data = tomllib.load(fh)
    except FileNotFoundError:
        raise ConfigError(f"config file {path} does not exist") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"config file {path}: {exc}") from None

    values = {name: info.default for name, info in OPTIONS.items()}
    file_options = data.get("options", {})
    for name, value in file_options.items():
        if name not in OPTIONS:
            raise ConfigError(f"{path}: unknown option {name!r}; known: {', '.join(OPTIONS)}")
        values[name] = _convert(OPTIONS[name], value, str(path))
    for name, info in OPTIONS.items():
        if info.env in environ and environ[info.env] != "":
            values[name] = _convert(info, environ[info.env], info.env)
    for name, value in (cli or {}).items():
        if value is not None:
            values[name] = _convert(OPTIONS[name], value, "command line")

    boards = []
    for entry in data.get("boards", []):
        try:
            board = BoardConfig(name=str(entry["name"]), backend=str(entry["backend"]),
                                instances=int(entry.get("instances", 1)),
                                options=dict(entry.get("options", {})),
                                microcontroller=entry.get("microcontroller"),
                                description=entry.get("description"),
                                retries=_count(entry, "retries"),
                                offline_after=_count(entry, "offline_after"))
        except (KeyError, TypeError, ValueError) as exc:
            raise ConfigError(f"{path}: [[boards]] entry {entry!r} is incomplete: {exc}") from None
        if board.instances < 0:
            raise ConfigError(f"{path}: board {board.name}: instances must be >= 0")
        boards.append(board)
    mcus = tuple(dict(m) for m in data.get("microcontrollers", []))
    for mcu in mcus:
        if "name" not in mcu:
            raise ConfigError(f"{path}: a [[microcontrollers]] entry has no name")
    _check_limits(values)
    broker = data.get("broker")
    if broker is not None and not isinstance(broker, dict):
        raise ConfigError(f"{path}: [broker] must be a table")
    return Config(values, tuple(boards), mcus, str(path), broker)


def _count(entry: Mapping[str, Any], key: str) -> int | None:
    """A board's ``retries`` / ``offline_after``: None when absent, else an int >= 0."""
    value = entry.get(key)
    if value is None:
        return None
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= 100:
        raise ValueError(f"{key} must be an integer from 0 to 100, not {value!r}")
    return value


def _check_limits(values: Mapping[str, Any]) -> None:
    low, high = values["limits.min_duration_seconds"], values["limits.max_duration_seconds"]
    default = values["limits.default_duration_seconds"]
    if not 1 <= low <= default <= high:
        raise ConfigError("limits: need 1 <= min_duration_seconds <= default_duration_seconds"
                          " <= max_duration_seconds")
    for name in ("quota.max_waiting_jobs", "quota.max_running_per_user"):
        if values[name] < 0:
            raise ConfigError(f"option {name}: must be >= 0 (0: no limit), not {values[name]}")


def describe_options() -> str:
    """Every option with its environment variable and default, for --help texts."""
    return "\n".join(f"{o.name} ({o.env}, default {o.default!r}): {o.help}"
                     for o in OPTIONS.values())


def describe_board_options(backends: Mapping[str, type[Backend]]) -> str:
    """The board options each backend declares (a board's ``[boards.options]`` table),
    for ``hwut options``; a backend that declares none says so."""
    parts = []
    for name, cls in sorted(backends.items()):
        infos = cls.option_infos
        if infos is None:
            parts.append(f"backend {name}: declares no options (its table is passed on "
                         "unchecked)")
        else:
            lines = "\n".join(f"  {o.describe()}" for o in infos) or "  (no options)"
            parts.append(f"backend {name} ([boards.options] of a board with backend = "
                         f"{name!r}):\n{lines}")
    return "\n".join(parts)
