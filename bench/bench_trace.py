"""What the pin trace costs, printed as ratios (never asserted): ``python bench/bench_trace.py``.

Each firmware runs for the same virtual time without a trace (the reference, measured
in the same run) and with the default trace (LEDs, console TX, every output pin);
figures: wall-time ratio, changes recorded, VCD bytes, time to write the VCD, and the
time ``hwut.trace.summarize`` takes to read it back, per MiB.
"""
from __future__ import annotations

import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from hwut.backends import simboards
from hwut.backends.image import load
from hwut.sim.boards import board
from hwut.sim.machine import Machine
from hwut.sim.trace import PinRecorder
from hwut.trace import summarize

BUILD = ROOT / "fixtures" / "build"
NUCLEO = board("nucleo-f303re")
REPEATS = 3
#: (firmware, virtual seconds): a slow blink with prints, and bit-banged I2C (busy pins)
CASES = (("blink", 2.0), ("fw_i2c_bitbang", 0.05), ("uart_loop", 0.2))


def run(name: str, seconds: float, traced: bool) -> tuple[float, PinRecorder | None]:
    recorders: list[PinRecorder] = []
    machine = Machine(NUCLEO, uart_out=lambda n, d: [r.uart(n, d) for r in recorders])
    if traced:
        recorders.append(PinRecorder(machine))
    image = load(BUILD / f"{name}.elf", "elf", simboards.memory_map(NUCLEO.soc))
    machine.load([(s.address, s.data) for s in image.segments])
    start = time.perf_counter()
    machine.run(seconds)
    return time.perf_counter() - start, (recorders[0] if recorders else None)


def main() -> None:
    print(f"{'firmware':16} {'virtual s':>9} {'traced/untraced':>15} {'changes':>8} "
          f"{'VCD bytes':>10} {'write s':>8} {'summary s/MiB':>13}")
    for name, seconds in CASES:
        plain = min(run(name, seconds, False)[0] for _ in range(REPEATS))
        best, recorder = min((run(name, seconds, True) for _ in range(REPEATS)),
                             key=lambda r: r[0])
        assert recorder is not None
        out = bytearray()
        t = time.perf_counter()
        result = recorder.write_vcd(out.extend)
        write_s = time.perf_counter() - t
        t = time.perf_counter()
        summarize(bytes(out))
        per_mib = (time.perf_counter() - t) / max(len(out) / 2**20, 1e-9)
        print(f"{name:16} {seconds:9g} {best / plain:15.2f} {result.changes:8d} "
              f"{len(out):10d} {write_s:8.3f} {per_mib:13.2f}")


if __name__ == "__main__":
    main()
