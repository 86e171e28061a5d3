"""What a job's process is told: the backend to build, the run, and the bounds.

Plain JSON (bytes as base64) because it crosses a process boundary now and a host
boundary later; nothing in it refers to the server's objects.
"""
from __future__ import annotations

import base64
from dataclasses import asdict, dataclass, field
from typing import Any

MiB = 1024 * 1024


@dataclass(frozen=True)
class Limits:
    """Bounds on one job's process and on what its firmware may produce."""

    #: CPU seconds the process may use: the emulation-speed guard (not wall time,
    #: which depends on what else the machine does).
    cpu_seconds: float = 60.0
    uart_bytes: int = 16 * MiB
    other_bytes: int = 16 * MiB
    infra_bytes: int = 1 * MiB
    #: The pin trace (VCD); past it the trace is cut, the run goes on.
    trace_bytes: int = 4 * MiB
    #: Address space of the process (Unicorn reserves a large code cache).
    memory_bytes: int = 4096 * MiB
    open_files: int = 256
    #: Largest file the process (and what it starts, e.g. Renode) may write.
    file_bytes: int = 1024 * MiB


@dataclass(frozen=True)
class JobSpec:
    job_id: int
    #: The backend class as "module:qualname", importable in the job's process.
    backend: str
    board: str
    options: dict[str, Any]
    executable: str
    format: str
    time_limit_s: float
    uart_input: bytes = b""
    presses: tuple[tuple[str, float, float | None], ...] = ()
    limits: Limits = field(default_factory=Limits)
    #: Signals of the pin trace (empty: the board's default); None: no pin trace.
    trace_signals: tuple[str, ...] | None = ()
    #: Wall seconds the run has from its start (the scheduler's deadline, as a span so
    #: that it means the same on another host's clock); None: no bound.
    wall_budget_s: float | None = None
    #: Every image of a job that carries several: (path, format, BIN address or None,
    #: the client's name), in order; empty: the one ``executable``.
    images: tuple[tuple[str, str, int | None, str], ...] = ()
    #: Scripted pin levels: (pin, at virtual s, 1/0 or None = released).
    pins: tuple[tuple[str, float, int | None], ...] = ()
    #: Keep the board's time from running ahead of the wall clock (an interactive job).
    realtime: bool = False

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["uart_input"] = base64.b64encode(self.uart_input).decode()
        data["presses"] = [list(p) for p in self.presses]
        data["trace_signals"] = None if self.trace_signals is None else list(self.trace_signals)
        data["images"] = [list(i) for i in self.images]
        data["pins"] = [list(p) for p in self.pins]
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> JobSpec:
        data = dict(data)
        data["uart_input"] = base64.b64decode(data.get("uart_input", ""))
        data["presses"] = tuple((str(b), float(at), None if rel is None else float(rel))
                                for b, at, rel in data.get("presses", ()))
        signals = data.get("trace_signals", ())
        data["trace_signals"] = None if signals is None else tuple(str(s) for s in signals)
        data["limits"] = Limits(**data.get("limits", {}))
        data["images"] = tuple((str(path), str(fmt), None if at is None else int(at), str(name))
                               for path, fmt, at, name in data.get("images", ()))
        data["pins"] = tuple((str(pin), float(at), None if level is None else int(level))
                             for pin, at, level in data.get("pins", ()))
        return cls(**data)
