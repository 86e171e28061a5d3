"""A digest of what every fixture image does on the simulator, to compare two versions.

Runs each ELF in fixtures/build for its standard time (1 virtual second, the
shortest limit the API accepts; ``compute`` to its exit; the hostile ones, which
do the same thing for ever and some slowly, 0.1 s) in each timing mode,
and prints one line per run: the stop cause, instructions executed, cycles
slept, and a short hash of the UART, ITM (SWO capture, raw stimulus packets),
semihosting output, faults and infrastructure notes. A refactoring of the
simulator that changes nothing must leave this output byte-identical::

    python bench/fixture_digest.py > before.txt
    ... change ...
    python bench/fixture_digest.py | diff before.txt -

Figures, not assertions: the tests hold the expected outputs themselves.
"""
from __future__ import annotations

import argparse
import hashlib
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from hwut.backends.image import load
from hwut.sim.boards import board
from hwut.sim.machine import Machine

BUILD = ROOT / "fixtures" / "build"
#: Virtual seconds per fixture where 1 s is not its standard run.
LIMITS = {"compute": 20.0}
#: Host input that the fixture's own test gives it (console bytes at a time; button presses).
UART_INPUT = {"echo": (b"ab\rc", 0.005), "uart_irq": (b"hello\r", 0.01)}
PRESSES = {"button": ("B1", 0.5, 0.7), "fw_button_poll": ("B1", 0.3, 0.5),
           "speed_gpio_poll": ("B1", 0.1, 0.2), "speed_blt_poll": ("B1", 0.1, 0.2)}
#: name -> Machine arguments and a factor on the limit (the Python counter is ~100x slower).
MODES = {
    "precharged": ({}, 1.0),
    "counted": ({"precharge": False}, 1.0),
    "block": ({"timing": "block"}, 1.0),
    "python": ({"native": False}, 0.02),
}


def digest(data: bytes | str) -> str:
    raw = data.encode() if isinstance(data, str) else data
    return hashlib.sha256(raw).hexdigest()[:12]


def run_one(path: Path, mode: str) -> str:
    args, factor = MODES[mode]
    spec = board("nucleo-f303re")
    uart, itm, semi, notes = bytearray(), bytearray(), bytearray(), []
    m = Machine(spec, uart_out=lambda name, data: uart.extend(name.encode() + b":" + data),
                semihosting_out=semi.extend,
                trace_out=lambda port, data: itm.extend(bytes([port]) + data),
                note=notes.append, swv_ports=0, **args)
    m.load([(s.address, s.data) for s in load(path).segments])
    name = path.stem
    if name in UART_INPUT:
        data, at = UART_INPUT[name]
        m.uart_receive(spec.console, data, at)
    if name in PRESSES:
        m.press(*PRESSES[name])
    limit = LIMITS.get(name, 0.1 if name.startswith("hostile_") else 1.0)
    r = m.run(limit * factor, wall_limit_s=600)
    slept = getattr(r, "slept_cycles", 0)
    return (f"{name:24} {mode:10} {r.cause.value:8} exit={r.exit_code} insns={r.instructions} "
            f"slept={slept} uart={digest(bytes(uart))} itm={digest(bytes(itm))} "
            f"semi={digest(bytes(semi))} faults={digest(chr(10).join(r.faults))} "
            f"notes={digest(chr(10).join(notes))}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("names", nargs="*", help="fixture names (default: every ELF)")
    parser.add_argument("--modes", default=",".join(MODES), help="comma-separated timing modes")
    opts = parser.parse_args()
    paths = ([BUILD / f"{n}.elf" for n in opts.names] if opts.names
             else sorted(BUILD.glob("*.elf")))
    for path in paths:
        for mode in opts.modes.split(","):
            print(run_one(path, mode), flush=True)


if __name__ == "__main__":
    main()
