"""Test-only backends and firmware: every outcome and failure mode on demand.

The mode comes from the board instance's options, so one config can offer a
board that prints, one that raises, one that hangs and so on.
"""
from __future__ import annotations

import struct
import threading
import time

from backends.base import Backend, Outcome, RunRequest, StopReason


def tiny_bin(extra: bytes = b"") -> bytes:
    """The smallest image the validator accepts: SP in RAM, Thumb reset handler in flash."""
    return struct.pack("<II", 0x2000_1000, 0x0800_0009) + b"\x00" * 8 + extra


class FakeBackend(Backend):
    name = "fake"

    def run(self, request: RunRequest) -> Outcome:
        mode = self.options.get("mode", "print")
        #: wall seconds per second of time limit (emulators are faster than real time here)
        scale = float(self.options.get("scale", 0.02))
        request.uart(b"HWUT fake start\n")
        if mode == "raise":
            raise RuntimeError("probe on fire")
        if mode == "hang":
            while True:  # ignores cancel, never returns
                time.sleep(0.05)
        if mode == "infra":
            return Outcome(StopReason.INFRASTRUCTURE, detail="emulator crashed")
        if mode == "exit":
            request.uart(b"bye\n")
            return Outcome(StopReason.EXIT, exit_code=int(self.options.get("code", 3)),
                           time_used_s=0.1)
        if mode == "fault":
            return Outcome(StopReason.FAULT, time_used_s=0.1, detail="HardFault at 0x08000123",
                           infra_log="core locked up\n")
        if mode == "trace" and request.other is not None:
            request.other(b"\x01\x02ITM")
        deadline = time.monotonic() + request.time_limit_s * scale
        while time.monotonic() < deadline:
            if request.cancel.wait(0.01):
                return Outcome(StopReason.CANCEL, time_used_s=0.05)
            request.uart(b".")
        request.uart(b"\nHWUT done\n")
        return Outcome(StopReason.LIMIT, time_used_s=request.time_limit_s)


class SlowBackend(FakeBackend):
    """Runs for the full time limit in wall time; used by the crash test."""

    name = "slow"

    def __init__(self, board, options=None):
        super().__init__(board, {**(options or {}), "scale": 1.0})


class BlockingBackend(FakeBackend):
    """Runs until canceled or released by the test (``release`` event)."""

    name = "blocking"
    release = threading.Event()

    def run(self, request: RunRequest) -> Outcome:
        request.uart(b"running\n")
        while not self.release.is_set():
            if request.cancel.wait(0.01):
                return Outcome(StopReason.CANCEL, time_used_s=0.01)
        return Outcome(StopReason.LIMIT, time_used_s=request.time_limit_s)
