"""The project's committed fixture firmware and what each one prints (fixtures/README.md).

Tests submit these images and compare job logs with ``fixtures/expected/*.txt``.
"""
from __future__ import annotations

from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
BUILD = REPO / "fixtures" / "build"
EXPECTED = REPO / "fixtures" / "expected"
BAD = REPO / "fixtures" / "bad"


def path(name: str, fmt: str = "elf") -> Path:
    return BUILD / f"{name}.{fmt}"


def image(name: str, fmt: str = "elf") -> bytes:
    return path(name, fmt).read_bytes()


def expected(name: str) -> bytes:
    return (EXPECTED / f"{name}.txt").read_bytes()


#: ``hello`` with a 1 s limit: the banner and count=0..9 (``expected/hello.txt``); count=10
#: is complete only at ~1004.9 ms (fixtures/README.md).
HELLO_1S = expected("hello")
HELLO_BANNER = b"HWUT hello from NUCLEO-F303RE\r\nSYSCLK=72000000\r\n"
#: What hello prints after its banner, in order (one line per 100 ms of virtual time):
#: the log of a run cut off at any moment is the banner plus a prefix of this.
HELLO_COUNTS = b"".join(b"count=%d\r\n" % k for k in range(10_000))
#: The fixtures fixtures/README.md documents, each committed as .elf, .hex and .bin.
DOCUMENTED = ("blink", "compute", "echo", "fault", "float", "hal_clock", "hello", "itm_printf",
              "semihost_exit", "semihost_exit0", "spin", "uart_loop")
FORMATS = ("elf", "hex", "bin")
#: ``semihost_exit``: semihosting output, then exit code 3 (``semihost_exit0``: 0).
SEMIHOST = expected("semihost_exit")
#: ``fault``: one line, then the HardFault handler's line; the core stays in the handler.
FAULT = expected("fault")
#: ``itm_printf``: prints over ITM/SWO (the job's ``other`` trace), nothing on the UART.
ITM = expected("itm_printf")
#: ``spin`` prints nothing and never ends: with a long limit it runs until canceled.
SPIN_LIMIT = 300
