"""Fingerprints of what every fixture prints: run ``python bench/fixture_outputs.py``.

Each ELF in ``fixtures/build`` runs on its board for one virtual second (the
API's standard limit; firmware that exits earlier stops there), with the ITM
captured raw. One line per fixture: a SHA-256 over every UART's bytes (by port),
the semihosting console and the ITM stream, plus the stop cause, exit code and
instruction count. A refactoring that must not change behaviour keeps this
output byte-identical: save it before, compare after (``diff``).
"""
from __future__ import annotations

import hashlib
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from hwut.backends.image import load  # noqa: E402
from hwut.sim.boards import board  # noqa: E402
from hwut.sim.machine import Machine  # noqa: E402

BUILD = ROOT / "fixtures" / "build"
LIMIT_S = 1.0


def board_for(name: str) -> str:
    """The board a fixture is built for (the ``disco_`` ones run on the Discovery)."""
    return "stm32f3discovery" if name.startswith("disco_") else "nucleo-f303re"


def fingerprint(elf: Path) -> str:
    uart: dict[str, bytearray] = {}
    semi, itm = bytearray(), bytearray()
    machine = Machine(board(board_for(elf.stem)),
                      uart_out=lambda port, data: uart.setdefault(port, bytearray()).extend(data),
                      semihosting_out=semi.extend,
                      trace_out=lambda port, data: itm.extend(bytes((port,)) + data),
                      swv_ports=0)
    machine.load([(s.address, s.data) for s in load(elf).segments])
    result = machine.run(LIMIT_S)   # no wall guard: a loaded host must not change the output
    h = hashlib.sha256()
    for port in sorted(uart):
        h.update(port.encode() + b"\0" + bytes(uart[port]) + b"\0")
    h.update(b"semihosting\0" + bytes(semi) + b"\0itm\0" + bytes(itm))
    total = sum(len(v) for v in uart.values()) + len(semi) + len(itm)
    return (f"{elf.stem:28} {h.hexdigest()[:16]} bytes={total} cause={result.cause.name} "
            f"exit={result.exit_code} instructions={result.instructions}")


def main(names: list[str]) -> None:
    elves = sorted(BUILD.glob("*.elf"))
    for elf in elves:
        if not names or elf.stem in names:
            print(fingerprint(elf), flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
