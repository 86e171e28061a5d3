"""What a test may leave behind: nothing. Threads that are ending get a moment to end
(a daemon thread that was told to stop may still be returning when ``close`` returns)."""
from __future__ import annotations

import os
import threading
import time


def snapshot() -> tuple[set[threading.Thread], set[str]]:
    """The threads and file descriptors of this process now."""
    return set(threading.enumerate()), set(os.listdir("/proc/self/fd"))


def assert_nothing_left(before: tuple[set[threading.Thread], set[str]],
                        within_s: float = 3.0, ignore: tuple[str, ...] = ()) -> None:
    """``ignore``: name prefixes of threads that are not the code under test's (an
    emulated board that keeps running starts a short-lived thread per run slice)."""
    threads, fds = before
    deadline = time.monotonic() + within_s
    while True:
        extra_threads = {t for t in set(threading.enumerate()) - threads
                         if not t.name.startswith(ignore or ("\0",))}
        extra_fds = set(os.listdir("/proc/self/fd")) - fds
        if not extra_threads and not extra_fds:
            return
        if time.monotonic() > deadline:
            break
        time.sleep(0.05)
    assert not extra_threads, f"threads left running: {sorted(t.name for t in extra_threads)}"
    links = {fd: _target(fd) for fd in extra_fds}
    assert not extra_fds, f"file descriptors left open: {links}"


def _target(fd: str) -> str:
    try:
        return os.readlink(f"/proc/self/fd/{fd}")
    except OSError:
        return "?"
