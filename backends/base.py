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
    #: The job process used its CPU budget: the firmware is too slow to emulate.
    CPU_LIMIT = "cpu_limit"
    #: The firmware produced more output (UART, trace) than a job may keep.
    OUTPUT_LIMIT = "output_limit"


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
    manufacturer: str = ""


class BackendError(Exception):
    """The infrastructure failed (emulator crashed, probe missing)."""


class Backend(ABC):
    """One board instance. ``run`` must release every resource before it returns."""

    #: Name used in the server config (``backend = "sim"``).
    name: ClassVar[str]
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
        self.options = dict(options or {})

    @classmethod
    def availability(cls, options: Mapping[str, Any] | None = None) -> Availability:
        return Availability(True)

    @classmethod
    def check_options(cls, options: Mapping[str, Any]) -> None:
        """Raise ``ValueError`` naming what is wrong with a board instance's options; the
        server refuses to start with them."""

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
