"""Simulator speed, printed as figures (never asserted): run ``python bench/bench_sim.py``.

Figures: emulated MIPS on a compute loop and on a UART-printing loop, wall time
for one virtual second of ``blink``, time from start to the first UART byte,
and the compute loop under QEMU (netduinoplus2, -icount, semihosting) in the
same run, as a ratio. Exact timing is measured precharged (the default) and,
as the reference, counted per instruction throughout (``precharge=False``).
"""
from __future__ import annotations

import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from hwut.backends.image import load
from hwut.sim.boards import board
from hwut.sim.machine import Machine

BUILD = ROOT / "fixtures" / "build"
REPEATS = 3


def build(name: str, **kw) -> tuple[Machine, list[float]]:
    first: list[float] = []
    machine = Machine(board("nucleo-f303re"),
                      uart_out=lambda n, d: first.append(time.perf_counter()) if not first else None,
                      **kw)
    image = load(BUILD / f"{name}.elf")
    machine.load([(s.address, s.data) for s in image.segments])
    return machine, first


def best(fn, repeats: int = REPEATS) -> float:
    return min(fn() for _ in range(repeats))


def timed_run(name: str, limit_s: float, repeats: int = REPEATS, **machine_args) -> tuple[float, int]:
    """Best wall time of running ``name`` for ``limit_s`` virtual seconds, and its
    instruction count (the same every run)."""
    walls, instructions = [], 0
    for _ in range(repeats):
        m, _ = build(name, **machine_args)
        t = time.perf_counter()
        r = m.run(limit_s)
        walls.append(time.perf_counter() - t)
        instructions = r.instructions
    return min(walls), instructions


def compute_mips(native: bool | None = None, timing: str = "exact",
                 precharge: bool = True) -> tuple[float, float]:
    if native is False:  # the Python counter is ~100x slower: a shorter run
        wall, n = timed_run("compute", 0.5, 1, native=False)
    else:
        wall, n = timed_run("compute", 60, timing=timing, precharge=precharge)
    return n / wall / 1e6, wall


def uart_loop_mips(precharge: bool = True) -> float:
    wall, n = timed_run("uart_loop", 1.0, precharge=precharge)
    return n / wall / 1e6


def blink_second() -> float:
    return timed_run("blink", 1.0)[0]


def first_byte() -> float:
    def once() -> float:
        t = time.perf_counter()
        m, first = build("hello")
        m.run(0.05)
        return first[0] - t
    return best(once)


def exception_cost() -> tuple[float, float]:
    """systick_1mhz: 100000 SysTick exceptions in 0.1 virtual s."""
    wall, _ = timed_run("systick_1mhz", 1.0, 1)
    return wall / 100_000 * 1e6, wall * 10


def polling_mips(precharge: bool = True) -> float:
    """echo waiting for input: a USART status poll through function calls (not a pure loop)."""
    wall, n = timed_run("echo", 1.0, precharge=precharge)
    return n / wall / 1e6


def qemu_compute() -> float | None:
    qemu = shutil.which("qemu-system-arm")
    if qemu is None:
        return None
    cmd = [qemu, "-M", "netduinoplus2", "-nographic", "-monitor", "none", "-serial", "none",
           "-icount", "shift=0,align=off,sleep=off", "-semihosting-config",
           "enable=on,target=native", "-kernel", str(BUILD / "compute.elf")]

    def once() -> float:
        t = time.perf_counter()
        out = subprocess.run(cmd, capture_output=True, timeout=120, check=False)
        wall = time.perf_counter() - t
        if b"compute=0xe995bbd2" not in out.stdout + out.stderr:
            raise RuntimeError(f"QEMU printed {out.stdout!r} {out.stderr!r}")
        return wall
    return best(once)


def whole_run(**machine_args) -> float:
    """The compute image from construction to its exit, as QEMU is timed."""
    def once() -> float:
        t = time.perf_counter()
        m, _ = build("compute", **machine_args)
        m.run(60)
        return time.perf_counter() - t
    return best(once)


def main() -> None:
    mips, wall = compute_mips()
    ref_mips, _ = compute_mips(precharge=False)
    print(f"compute loop: {mips:8.1f} MIPS ({wall:.3f} s for 80 M instructions)  target >= 250")
    print(f"  counted per instruction (reference): {ref_mips:8.1f} MIPS; precharged/reference "
          f"{mips / ref_mips:.2f}x")
    whole = whole_run()
    whole_ref = whole_run(precharge=False)
    py_mips, _ = compute_mips(native=False)
    print(f"compute loop, Python counter fallback: {py_mips:8.1f} MIPS")
    uart, uart_ref = uart_loop_mips(), uart_loop_mips(precharge=False)
    print(f"UART-printing loop (uart_loop, 1 virtual s): {uart:8.1f} MIPS; reference "
          f"{uart_ref:.1f} MIPS ({uart / uart_ref:.2f}x)")
    print(f"one virtual second of blink: {blink_second():.3f} s wall  target < 0.3")
    print(f"start to first UART byte (hello): {first_byte():.3f} s  target < 0.2")
    per, second = exception_cost()
    print(f"exception entry + return (1 MHz SysTick): {per:.1f} us each, {second:.1f} s wall per "
          f"virtual second  target < 5 us, < 5 s")
    poll, poll_ref = polling_mips(), polling_mips(precharge=False)
    print(f"status-register polling loop (echo idle): {poll:8.1f} MIPS  target >= 20; reference "
          f"{poll_ref:.1f} MIPS ({poll / poll_ref:.2f}x)")
    block_mips, block_wall = compute_mips(timing="block")
    print(f"compute loop, block timing (opt-in): {block_mips:8.1f} MIPS")
    block_whole = whole_run(timing="block")
    q = qemu_compute()
    if q is None:
        print("QEMU: qemu-system-arm not installed; no ratio")
    else:
        print(f"compute image, whole run including start-up: HWUT {whole:.3f} s, QEMU -icount "
              f"{q:.3f} s; ratio HWUT/QEMU {whole / q:.2f}  target <= 2")
        print(f"  counted per instruction (reference): HWUT {whole_ref:.3f} s; ratio HWUT/QEMU "
              f"{whole_ref / q:.2f}")
        print(f"  with block timing: HWUT {block_whole:.3f} s; ratio HWUT/QEMU {block_whole / q:.2f}")


if __name__ == "__main__":
    main()
