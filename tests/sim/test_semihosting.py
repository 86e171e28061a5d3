"""Semihosting for untrusted firmware: console and exit work, host files never do."""
from __future__ import annotations

import struct

import pytest

from hwut.sim.core.semihosting import (
    ADP_STOPPED_APPLICATION_EXIT,
    SYS_CLOCK,
    SYS_ELAPSED,
    SYS_EXIT,
    SYS_EXIT_EXTENDED,
    SYS_FLEN,
    SYS_OPEN,
    SYS_READ,
    SYS_READC,
    SYS_REMOVE,
    SYS_RENAME,
    SYS_SYSTEM,
    SYS_WRITE,
    SYS_WRITE0,
    SYS_WRITEC,
    Semihosting,
    SemihostingExit,
)

BASE = 0x2000_0000


class Ram:
    """A real byte array standing for target memory at 0x20000000."""

    def __init__(self) -> None:
        self.data = bytearray(0x1000)

    def read(self, address: int, n: int) -> bytes:
        return bytes(self.data[address - BASE:address - BASE + n])

    def write(self, address: int, data: bytes) -> None:
        self.data[address - BASE:address - BASE + len(data)] = data

    def put(self, offset: int, data: bytes) -> int:
        self.write(BASE + offset, data)
        return BASE + offset


@pytest.fixture
def host():
    ram = Ram()
    out = bytearray()
    sh = Semihosting(read_memory=ram.read, write_memory=ram.write, console=out.extend,
                     now_s=lambda: 2.5)
    return sh, ram, out


def open_file(sh, ram, name: bytes, mode: int) -> int:
    ptr = ram.put(0x100, name + b"\0")
    block = ram.put(0x200, struct.pack("<III", ptr, mode, len(name)))
    return sh.call(SYS_OPEN, block)


def test_console_output(host):
    sh, ram, out = host
    sh.call(SYS_WRITEC, ram.put(0, b"A"))
    sh.call(SYS_WRITE0, ram.put(0x10, b"bc\0ignored"))
    buf = ram.put(0x40, b"defg")
    assert sh.call(SYS_WRITE, ram.put(0x80, struct.pack("<III", 2, buf, 3))) == 0
    assert out == b"Abcdef"


def test_host_files_are_never_opened(host, tmp_path):
    sh, ram, _ = host
    secret = tmp_path / "secret"
    secret.write_text("no")
    for mode in (0, 4, 8):
        assert open_file(sh, ram, str(secret).encode(), mode) == 0xFFFF_FFFF
    for op in (SYS_REMOVE, SYS_RENAME, SYS_SYSTEM):
        assert sh.call(op, ram.put(0x300, struct.pack("<II", BASE, 4))) == 0xFFFF_FFFF
    assert secret.read_text() == "no"


def test_features_file_announces_exit_extended(host):
    sh, ram, _ = host
    handle = open_file(sh, ram, b":semihosting-features", 0)
    assert handle != 0xFFFF_FFFF and sh.call(SYS_FLEN, ram.put(0x300, struct.pack("<I", handle))) == 5
    buf = BASE + 0x400
    left = sh.call(SYS_READ, ram.put(0x300, struct.pack("<III", handle, buf, 5)))
    assert left == 0 and ram.read(buf, 5) == b"SHFB\x03"
    assert open_file(sh, ram, b":semihosting-features", 4) == 0xFFFF_FFFF  # read-only


def test_tt_and_input(host):
    sh, ram, _ = host
    assert open_file(sh, ram, b":tt", 0) != 0xFFFF_FFFF
    sh.stdin.extend(b"k")
    assert sh.call(SYS_READC, 0) == ord("k")
    assert sh.call(SYS_READC, 0) == 0xFFFF_FFFF


def test_time_comes_from_the_virtual_clock(host):
    sh, ram, _ = host
    assert sh.call(SYS_CLOCK, 0) == 250
    block = ram.put(0x500, b"\0" * 8)
    sh.call(SYS_ELAPSED, block)
    assert struct.unpack("<Q", ram.read(block, 8))[0] == 2_500_000


def test_exit_and_exit_extended(host):
    sh, ram, _ = host
    with pytest.raises(SemihostingExit) as ok:
        sh.call(SYS_EXIT, ADP_STOPPED_APPLICATION_EXIT)
    assert ok.value.code == 0
    with pytest.raises(SemihostingExit) as seven:
        sh.call(SYS_EXIT_EXTENDED, ram.put(0x600, struct.pack("<II", ADP_STOPPED_APPLICATION_EXIT, 7)))
    assert seven.value.code == 7
    with pytest.raises(SemihostingExit) as other:
        sh.call(SYS_EXIT, 0x20023)  # ADP_Stopped_RunTimeErrorUnknown
    assert other.value.code == 1


def test_unknown_operation_fails_without_crashing(host):
    sh, _, _ = host
    assert sh.call(0x99, 0) == 0xFFFF_FFFF
