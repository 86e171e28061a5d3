"""Running firmware on the simulator, for the simulator's own tests."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pytest

from hwut.backends.image import load
from hwut.sim import precharge
from hwut.sim.boards import board
from hwut.sim.machine import Machine, RunResult

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True)
def precharge_from_the_start(request, monkeypatch):
    """The simulator's tests precharge from the first instruction (not after
    ``precharge.START_COUNTED``): their runs are short, and what they compare is
    precharged code against counted code. ``test_precharge_start.py`` holds the start."""
    if "start_counted" not in request.keywords:
        monkeypatch.setattr(precharge, "START_COUNTED", 0)
BUILD = ROOT / "fixtures" / "build"
EXPECTED = ROOT / "fixtures" / "expected"


@dataclass
class Run:
    machine: Machine
    result: RunResult
    uart: bytes
    semihosting: bytes
    #: (virtual seconds, byte) for every console byte, in order
    timeline: list[tuple[float, int]] = field(default_factory=list)

    @property
    def output(self) -> bytes:
        return self.uart + self.semihosting


def run_firmware(name_or_path: str | Path, limit_s: float, *, board_name: str = "nucleo-f303re",
                 uart_input: bytes = b"", input_at_s: float | None = None,
                 presses: tuple[tuple[str, float, float | None], ...] = (),
                 **machine_args) -> Run:
    path = Path(name_or_path)
    if not path.suffix:
        path = BUILD / f"{name_or_path}.elf"
    spec = board(board_name)
    uart, semi, timeline = bytearray(), bytearray(), []
    holder: dict[str, Machine] = {}

    def on_uart(name: str, data: bytes) -> None:
        if name == spec.console:
            uart.extend(data)
            t = holder["m"].clock.seconds()
            timeline.extend((t, b) for b in data)

    machine = Machine(spec, uart_out=on_uart, semihosting_out=semi.extend, **machine_args)
    holder["m"] = machine
    image = load(path)
    machine.load([(s.address, s.data) for s in image.segments])
    for button, at, release in presses:
        machine.press(button, at, release)
    if uart_input:
        machine.uart_receive(spec.console, uart_input, input_at_s)
    result = machine.run(limit_s, wall_limit_s=120)
    return Run(machine, result, bytes(uart), bytes(semi), timeline)


def expected(name: str) -> bytes:
    return (EXPECTED / f"{name}.txt").read_bytes()


@pytest.fixture
def run():
    return run_firmware
