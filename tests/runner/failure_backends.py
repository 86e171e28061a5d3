"""Backends that fail the ways a job's process must survive, built to run INSIDE it.

The normal path runs the real ``sim`` backend; these exist because it cannot be made
to crash, hang or leak on demand.
"""
from __future__ import annotations

import os
import signal
import subprocess
import time

from hwut.backends.base import Backend, Outcome, RunRequest, StopReason


class IgnoresCancel(Backend):
    name = "ignores-cancel"

    def run(self, request: RunRequest) -> Outcome:
        request.uart(b"started\n")
        time.sleep(30)
        return Outcome(StopReason.LIMIT)


class Raises(Backend):
    name = "raises"

    def run(self, request: RunRequest) -> Outcome:
        raise RuntimeError("probe on fire in /home/lab/secret/path")


class Segfaults(Backend):
    name = "segfaults"

    def run(self, request: RunRequest) -> Outcome:
        request.uart(b"before the crash\n")
        time.sleep(0.1)  # let the flusher send it
        os.kill(os.getpid(), signal.SIGSEGV)
        return Outcome(StopReason.LIMIT)


class Hogs(Backend):
    """Allocates until the address-space limit stops it."""

    name = "hogs"

    def run(self, request: RunRequest) -> Outcome:
        blocks = []
        while True:
            blocks.append(bytearray(64 * 1024 * 1024))


class Spawns(Backend):
    """Starts a child in its own process group that would outlive it, then hangs."""

    name = "spawns"

    def run(self, request: RunRequest) -> Outcome:
        sleeper = subprocess.Popen(["sleep", "60"])
        request.uart(f"{sleeper.pid}\n".encode())
        time.sleep(30)
        return Outcome(StopReason.LIMIT)


class Floods(Backend):
    """Writes to both outputs in a loop, honouring cancel: the caps must stop it."""

    name = "floods"

    def run(self, request: RunRequest) -> Outcome:
        chunk = b"x" * 1000
        while not request.cancel.is_set():
            request.uart(chunk)
            if request.other is not None:
                request.other(b"t")
        return Outcome(StopReason.CANCEL, time_used_s=0.5)
