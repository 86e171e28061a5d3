"""A tiny debugger for the debug-port model: what a probe's firmware does with
DP and AP transfers, without pyOCD."""
from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from hwut.backends.image import load
from hwut.sim.boards import board
from hwut.sim.debug.board import SimulatedBoard
from hwut.sim.debug.core import DBGKEY

BUILD = Path(__file__).resolve().parents[3] / "fixtures" / "build"
DHCSR, DCRSR, DCRDR, DEMCR = 0xE000EDF0, 0xE000EDF4, 0xE000EDF8, 0xE000EDFC
DFSR, AIRCR = 0xE000ED30, 0xE000ED0C


class Swd:
    def __init__(self, target: SimulatedBoard) -> None:
        self.t = target
        target.line_reset()
        self.dpidr = target.read_dp(0x0)
        target.write_dp(0x4, 0x5000_0000)       # CSYSPWRUPREQ | CDBGPWRUPREQ
        target.write_dp(0x8, 0)                 # APSEL 0, bank 0
        target.write_ap(0x0, 0x2300_0012)       # 32-bit, single increment

    def read32(self, address: int) -> int:
        self.t.write_ap(0x4, address)
        return self.t.read_ap(0xC)

    def write32(self, address: int, value: int) -> None:
        self.t.write_ap(0x4, address)
        self.t.write_ap(0xC, value)

    def write16(self, address: int, value: int) -> None:
        self.t.write_ap(0x0, 0x2300_0011)
        self.write32(address, value << (8 * (address & 2)))
        self.t.write_ap(0x0, 0x2300_0012)

    def dhcsr(self, bits: int) -> None:
        self.write32(DHCSR, DBGKEY << 16 | bits)

    def read_reg(self, regsel: int) -> int:
        self.write32(DCRSR, regsel)
        assert self.read32(DHCSR) & (1 << 16), "S_REGRDY"
        return self.read32(DCRDR)

    def write_reg(self, regsel: int, value: int) -> None:
        self.write32(DCRDR, value)
        self.write32(DCRSR, regsel | 1 << 16)

    def wait_halted(self, tries: int = 2000) -> int:
        for _ in range(tries):
            value = self.read32(DHCSR)
            if value & (1 << 17):
                return value
        raise AssertionError("the core did not halt")


def open_board(firmware: str | None = "hello", **kwargs) -> SimulatedBoard:
    segments = []
    if firmware is not None:
        segments = [(s.address, s.data) for s in load(BUILD / f"{firmware}.elf").segments]
    kwargs.setdefault("realtime", False)
    return SimulatedBoard(board("nucleo-f303re"), segments=segments, **kwargs).open()


@pytest.fixture
def hello() -> Iterator[tuple[SimulatedBoard, Swd]]:
    before = set(threading.enumerate())
    target = open_board("hello")
    try:
        yield target, Swd(target)
    finally:
        target.close()
    assert set(threading.enumerate()) <= before, "a thread outlived the board"
