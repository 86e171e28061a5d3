"""The board's console on a pseudo-terminal, as an ST-LINK's virtual COM port.

Bytes the firmware sends come out of the slave side (``path``, a /dev/pts/N that
pyserial opens like any serial port); bytes written into it reach ``on_input``.
The slave is raw (no echo, no newline translation) and this end keeps it open,
so a client may open and close it as often as it likes. Output nobody reads is
dropped, as a VCP drops it: when the terminal's buffer is full its oldest content
is discarded, so a client that opens the port late reads recent output, never
stale output, and the board never waits for the host.
"""
from __future__ import annotations

import errno
import os
import select
import termios
import threading
import tty
from collections.abc import Callable
from pathlib import Path


class VirtualComPort:
    def __init__(self, on_input: Callable[[bytes], None], *, link: Path | None = None,
                 name: str = "console") -> None:
        self._on_input = on_input
        self._master, self._slave = os.openpty()
        tty.setraw(self._slave)
        os.set_blocking(self._master, False)
        self.path = os.ttyname(self._slave)
        self._wake_r, self._wake_w = os.pipe()
        #: Bytes dropped because nobody read the terminal, and how often its buffer was
        #: emptied for newer output.
        self.dropped = 0
        self.overflows = 0
        self.link = link
        if link is not None:
            link.unlink(missing_ok=True)
            link.symlink_to(self.path)
        self._closed = False
        self._thread = threading.Thread(target=self._read_loop, name=f"hwut-vcp-{name}",
                                        daemon=True)
        self._thread.start()

    def write(self, data: bytes) -> None:
        """Firmware output towards the host."""
        if self._closed:
            return
        view = memoryview(bytes(data))
        flushed = False
        while view:
            try:
                n = os.write(self._master, view)
            except BlockingIOError:
                if flushed:
                    self.dropped += len(view)
                    return
                termios.tcflush(self._slave, termios.TCIFLUSH)  # nobody reads: drop the old
                self.overflows += 1
                flushed = True
                continue
            except OSError as exc:  # EIO: the terminal is gone
                if exc.errno == errno.EIO:
                    self.dropped += len(view)
                    return
                raise
            view = view[n:]

    def _read_loop(self) -> None:
        while True:
            ready, _, _ = select.select([self._master, self._wake_r], [], [])
            if self._wake_r in ready:
                return
            try:
                data = os.read(self._master, 4096)
            except BlockingIOError:
                continue
            except OSError:
                return
            if data:
                self._on_input(data)

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        os.write(self._wake_w, b"x")
        self._thread.join(timeout=5)
        for fd in (self._master, self._slave, self._wake_r, self._wake_w):
            os.close(fd)
        if self.link is not None and self.link.is_symlink():
            self.link.unlink()

    def __enter__(self) -> VirtualComPort:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
