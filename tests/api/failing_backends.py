"""Test doubles for backend FAILURE MODES only: not backends, and not for the normal path.

Every job whose subject is the normal path runs on the real ``sim`` backend with the
committed fixture firmware (``fixture_firmware``). These classes exist because the
real backend cannot be made to fail in these ways on demand, while the scheduler must
survive each of them: a backend that raises, one that hangs past its time limit
ignoring cancellation, one that returns something that is not an Outcome, and one
whose constructor fails (no probe attached). Only the scheduler's failure tests and
the boards ``board-raise`` / ``board-hang`` of ``hwut_testenv`` use them.
"""
from __future__ import annotations

import time

from hwut.backends.base import Backend, Outcome, RunRequest


class RaisingBackend(Backend):
    """``run`` raises, as a backend whose probe or emulator blows up would."""

    name = "raising"

    def run(self, request: RunRequest) -> Outcome:
        raise RuntimeError("probe on fire")


class HangingBackend(Backend):
    """``run`` ignores its limit and the cancel signal for ``hang_s`` wall seconds (10 by
    default, far past the test config's hang grace); the scheduler kills its process long
    before."""

    name = "hanging"

    def run(self, request: RunRequest) -> Outcome:
        time.sleep(float(self.options.get("hang_s", 10.0)))
        raise RuntimeError("a hung backend woke up; the scheduler gave up on it already")


class GarbageBackend(Backend):
    """``run`` returns something that is not an Outcome."""

    name = "garbage"

    def run(self, request: RunRequest) -> Outcome:
        return "done"  # type: ignore[return-value]


class UnconstructibleBackend(Backend):
    """The constructor fails, as a physical backend with no probe attached does."""

    name = "unconstructible"

    def __init__(self, board, options=None):
        raise OSError("no probe attached")

    def run(self, request: RunRequest) -> Outcome:
        raise AssertionError("never runs")
