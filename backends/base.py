"""The backend contract: what the scheduler hands a backend and what it gets back.

A backend runs one job at a time on one board instance. The scheduler never
knows whether the board is emulated or real; everything it needs crosses this
module's types.
"""
from __future__ import annotations

import enum
import threading
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from dataclasses import dataclass
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


@dataclass(frozen=True)
class RunRequest:
    executable: Path
    format: str  # "elf", "hex" or "bin" (see backends.image)
    board: str
    time_limit_s: float
    uart: ByteSink
    cancel: threading.Event
    #: Secondary trace output (ITM/SWO); None when the job keeps none.
    other: ByteSink | None = None
    #: Bytes fed to the console UART's receive side, in order, once it listens.
    uart_input: bytes = b""
    #: Scripted button presses: (button, press at s, release at s or None), virtual time.
    presses: tuple[tuple[str, float, float | None], ...] = ()


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


class BackendError(Exception):
    """The infrastructure failed (emulator crashed, probe missing)."""


class Backend(ABC):
    """One board instance. ``run`` must release every resource before it returns."""

    #: Name used in the server config (``backend = "sim"``).
    name: ClassVar[str]

    def __init__(self, board: str, options: Mapping[str, Any] | None = None) -> None:
        self.board = board
        self.options = dict(options or {})

    @classmethod
    def availability(cls, options: Mapping[str, Any] | None = None) -> Availability:
        return Availability(True)

    @classmethod
    def boards(cls) -> tuple[str, ...]:
        """Board names this backend can run; empty means any the config names."""
        return ()

    @abstractmethod
    def run(self, request: RunRequest) -> Outcome:
        """Run the firmware until its limit, exit, fault or cancellation."""

    def close(self) -> None:
        """Release what the instance holds between jobs (probe sessions, caches)."""
