"""ARM semihosting (BKPT 0xAB) for untrusted firmware.

Console output and exit work as on a debugger; the host's files never do:
only ``:tt`` and the read-only ``:semihosting-features`` pseudo-file open.
"""
from __future__ import annotations

import struct
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import ClassVar

SYS_OPEN, SYS_CLOSE, SYS_WRITEC, SYS_WRITE0, SYS_WRITE, SYS_READ = 0x01, 0x02, 0x03, 0x04, 0x05, 0x06
SYS_READC, SYS_ISERROR, SYS_ISTTY, SYS_SEEK, SYS_FLEN = 0x07, 0x08, 0x09, 0x0A, 0x0C
SYS_TMPNAM, SYS_REMOVE, SYS_RENAME, SYS_CLOCK, SYS_TIME = 0x0D, 0x0E, 0x0F, 0x10, 0x11
SYS_SYSTEM, SYS_ERRNO, SYS_GET_CMDLINE, SYS_HEAPINFO = 0x12, 0x13, 0x15, 0x16
SYS_EXIT, SYS_ELAPSED, SYS_TICKFREQ, SYS_EXIT_EXTENDED = 0x18, 0x30, 0x31, 0x20

ADP_STOPPED_APPLICATION_EXIT = 0x20026
FEATURES = b"SHFB\x03"  # magic + EXIT_EXTENDED and STDOUT_STDERR supported
EACCES, EBADF, ENOSYS = 13, 9, 88
TICKFREQ = 1_000_000  # SYS_ELAPSED ticks per second

# file handles: 1 = :tt for reading, 2 = :tt for writing, 3 = :semihosting-features
_TT_IN, _TT_OUT, _FEATURES = 1, 2, 3


class SemihostingExit(Exception):
    def __init__(self, code: int, reason: int) -> None:
        super().__init__(f"semihosting exit {code}")
        self.code = code
        self.reason = reason


@dataclass
class Semihosting:
    read_memory: Callable[[int, int], bytes]
    write_memory: Callable[[int, bytes], None]
    console: Callable[[bytes], None]
    now_s: Callable[[], float]
    stdin: bytearray = field(default_factory=bytearray)
    note: Callable[[str], None] = lambda line: None
    errno: int = 0
    _positions: dict[int, int] = field(default_factory=dict)

    def call(self, op: int, arg: int) -> int:
        """Perform operation ``op`` (r0) with parameter ``arg`` (r1); returns r0."""
        handler = self._ops.get(op)
        if handler is None:
            self.note(f"semihosting operation 0x{op:02x} is not supported; returned -1")
            self.errno = ENOSYS
            return 0xFFFF_FFFF
        return handler(self, arg) & 0xFFFF_FFFF

    # helpers ---------------------------------------------------------------
    def _words(self, arg: int, n: int) -> tuple[int, ...]:
        return struct.unpack(f"<{n}I", self.read_memory(arg, 4 * n))

    def _cstring(self, address: int, limit: int = 4096) -> bytes:
        out = bytearray()
        while len(out) < limit:
            at = address + len(out)
            chunk = self.read_memory(at, 64 - (at % 64))  # never past a page end
            end = chunk.find(b"\0")
            if end >= 0:
                out += chunk[:end]
                break
            out += chunk
        return bytes(out)

    def _fail(self, err: int) -> int:
        self.errno = err
        return 0xFFFF_FFFF

    # operations ------------------------------------------------------------
    def _open(self, arg: int) -> int:
        name_ptr, mode, length = self._words(arg, 3)
        name = self.read_memory(name_ptr, min(length, 256))
        if name == b":tt":
            return _TT_IN if mode < 4 else _TT_OUT
        if name == b":semihosting-features" and mode in (0, 1):
            self._positions[_FEATURES] = 0
            return _FEATURES
        self.note(f"semihosting SYS_OPEN of {name[:64]!r} refused: no host files")
        return self._fail(EACCES)

    def _close(self, arg: int) -> int:
        self._positions.pop(self._words(arg, 1)[0], None)
        return 0

    def _writec(self, arg: int) -> int:
        self.console(self.read_memory(arg, 1))
        return 0

    def _write0(self, arg: int) -> int:
        self.console(self._cstring(arg))
        return 0

    def _write(self, arg: int) -> int:
        handle, buf, length = self._words(arg, 3)
        if handle not in (_TT_OUT, _TT_IN):
            return length  # nothing written
        self.console(self.read_memory(buf, min(length, 1 << 16)))
        return 0

    def _read(self, arg: int) -> int:
        handle, buf, length = self._words(arg, 3)
        if handle == _FEATURES:
            pos = self._positions.get(_FEATURES, 0)
            data = FEATURES[pos:pos + length]
            self._positions[_FEATURES] = pos + len(data)
        elif handle == _TT_IN:
            data = bytes(self.stdin[:length])
            del self.stdin[:length]
        else:
            self._fail(EBADF)
            return length
        self.write_memory(buf, data)
        return length - len(data)

    def _readc(self, arg: int) -> int:
        if not self.stdin:
            return 0xFFFF_FFFF
        return self.stdin.pop(0)

    def _iserror(self, arg: int) -> int:
        value = self._words(arg, 1)[0]
        return 1 if value & 0x8000_0000 else 0

    def _istty(self, arg: int) -> int:
        return 1 if self._words(arg, 1)[0] in (_TT_IN, _TT_OUT) else 0

    def _seek(self, arg: int) -> int:
        handle, pos = self._words(arg, 2)
        if handle == _FEATURES:
            self._positions[_FEATURES] = pos
            return 0
        return self._fail(EBADF)

    def _flen(self, arg: int) -> int:
        handle = self._words(arg, 1)[0]
        return len(FEATURES) if handle == _FEATURES else self._fail(EBADF)

    def _refuse(self, arg: int) -> int:
        self.note("semihosting host file/system operation refused")
        return self._fail(EACCES)

    def _clock(self, arg: int) -> int:
        return int(self.now_s() * 100)

    def _time(self, arg: int) -> int:
        return int(self.now_s())

    def _errno(self, arg: int) -> int:
        return self.errno

    def _cmdline(self, arg: int) -> int:
        buf, length = self._words(arg, 2)
        if length < 1:
            return 0xFFFF_FFFF
        self.write_memory(buf, b"\0")
        self.write_memory(arg + 4, struct.pack("<I", 0))
        return 0

    def _heapinfo(self, arg: int) -> int:
        block = self._words(arg, 1)[0]
        self.write_memory(block, b"\0" * 16)  # 0: let the C library use its linker symbols
        return 0

    def _exit(self, arg: int) -> int:
        # AArch32 SYS_EXIT passes the reason in r1 itself, not a block
        reason = arg
        code = 0 if reason == ADP_STOPPED_APPLICATION_EXIT else 1
        raise SemihostingExit(code, reason)

    def _exit_extended(self, arg: int) -> int:
        reason, code = self._words(arg, 2)
        if reason != ADP_STOPPED_APPLICATION_EXIT:
            code = code or 1
        raise SemihostingExit(code if code < 0x8000_0000 else code - (1 << 32), reason)

    def _elapsed(self, arg: int) -> int:
        ticks = int(self.now_s() * TICKFREQ)
        self.write_memory(arg, struct.pack("<Q", ticks))
        return 0

    def _tickfreq(self, arg: int) -> int:
        return TICKFREQ

    _ops: ClassVar[dict[int, Callable[[Semihosting, int], int]]] = {
        SYS_OPEN: _open, SYS_CLOSE: _close, SYS_WRITEC: _writec, SYS_WRITE0: _write0,
        SYS_WRITE: _write, SYS_READ: _read, SYS_READC: _readc, SYS_ISERROR: _iserror,
        SYS_ISTTY: _istty, SYS_SEEK: _seek, SYS_FLEN: _flen, SYS_TMPNAM: _refuse,
        SYS_REMOVE: _refuse, SYS_RENAME: _refuse, SYS_SYSTEM: _refuse, SYS_CLOCK: _clock,
        SYS_TIME: _time, SYS_ERRNO: _errno, SYS_GET_CMDLINE: _cmdline,
        SYS_HEAPINFO: _heapinfo, SYS_EXIT: _exit, SYS_EXIT_EXTENDED: _exit_extended,
        SYS_ELAPSED: _elapsed, SYS_TICKFREQ: _tickfreq,
    }
