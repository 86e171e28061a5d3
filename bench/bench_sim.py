"""Simulator speed, printed as figures (never asserted): run ``python bench/bench_sim.py``.

Figures: emulated MIPS on a compute loop and on a UART-printing loop, wall time
for one virtual second of ``blink``, time from start to the first UART byte,
and the compute loop under QEMU (netduinoplus2, -icount, semihosting) in the
same run, as a ratio. Exact timing is measured precharged (the default) and,
as the reference, counted per instruction throughout (``precharge=False``).

Then the speed patterns of issue 13 (``fixtures/src/speed_*.c`` and the
framework fixtures that already had the pattern): wall seconds per virtual
second, precharged, counted and block-timed, beside the real board (1.0 by
definition) and the target, and where the wall time goes (engine exits from
switches of view, Python callbacks for peripheral reads, idle turns skipped,
TLB flushes, rewinds). ``python bench/bench_sim.py patterns [--repeats N]`` prints
only those.

Last, every fixture image precharged against counted per instruction, for a short
fixed virtual time each: precharging must never be slower on any of them.
``python bench/bench_sim.py fixtures [--repeats N] [names...]`` prints only that.
QEMU has no STM32F303 machine: these images program the F303's RCC, USART2 and
timers, which its netduinoplus2 (an STM32F405) does not have where they look,
so QEMU's column is shown for the compute image only.
"""
from __future__ import annotations

import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

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


@dataclass(frozen=True)
class Pattern:
    fixture: str
    what: str
    #: wall s per virtual s to reach (the board itself is 1.0)
    target: float
    #: (button, press at, release at) in virtual seconds
    presses: tuple[tuple[str, float, float], ...] = ()
    #: a debugger's SWV capture enables the ITM (the image prints through it)
    swv: bool = False
    machine_args: dict[str, Any] = field(default_factory=dict)


#: What public STM32F303 images do, each as our own fixture (issue 13).
PATTERNS = (
    Pattern("systick_1mhz", "PlatformIO CMSIS: 1 us SysTick, delays counted in ticks", 1.0),
    Pattern("speed_rtx_ticker", "Mbed OS: RTX tick, TIM2 us-ticker, ADC reads", 0.2),
    Pattern("speed_blt_poll", "OpenBLT: LL loop polling TIM CNT, GPIO IDR, CAN MSR", 0.2),
    Pattern("speed_hal_delay", "CubeHAL: HAL_Delay blink", 0.2),
    Pattern("speed_rtos_idle", "RTOS idling: tickless WFI idle task", 0.2),
    Pattern("speed_rtos2_itm", "CMSIS-RTOS2: TIM6 time base, ITM printf (32-bit)", 0.2,
            swv=True),
    Pattern("speed_gpio_poll", "bare-metal GPIO poller", 0.2, presses=(("B1", 0.1, 0.2),)),
    Pattern("fw_pal_init", "ChibiOS: PAL init of every port, then WFI", 0.2),
    Pattern("fw_rtos", "FreeRTOS-style preemptive tasks (PendSV, SVC, FP)", 0.2),
    Pattern("fw_embassy_time", "Embassy: TIM2 alarm time driver, WFE executor", 0.2),
    Pattern("hal_clock", "CubeHAL clock bring-up on the 1 kHz tick", 0.2),
    Pattern("echo", "call/return-heavy USART status polling (echo idle)", 0.2),
)
#: name -> Machine arguments of each timing mode
MODES = {"precharged": {}, "counted": {"precharge": False}, "block": {"timing": "block"}}


@dataclass
class PatternRun:
    per_virtual_s: float
    #: CPU seconds of this process per virtual second: what the wall figure would be
    #: on an idle machine (the benchmark machine is often shared)
    cpu_per_virtual_s: float
    virtual_s: float
    profile: dict[str, int]


def run_pattern(p: Pattern, mode: str, limit_s: float = 1.0,
                repeats: int | None = None) -> PatternRun:
    """Best of ``repeats`` (default ``REPEATS``): wall seconds per virtual second of ``p``
    in ``mode``, and the counters of where the time went (the same every run)."""
    best_wall, best_cpu, virtual, profile = float("inf"), float("inf"), 0.0, {}
    for _ in range(repeats or REPEATS):
        sink = (lambda port, data: None) if p.swv else None
        m = Machine(board("nucleo-f303re"), trace_out=sink, **MODES[mode], **p.machine_args)
        m.load([(s.address, s.data) for s in load(BUILD / f"{p.fixture}.elf").segments])
        for button, at, release in p.presses:
            m.press(button, at, release)
        t, cpu = time.perf_counter(), time.process_time()
        r = m.run(limit_s, wall_limit_s=600)
        wall, cpu = time.perf_counter() - t, time.process_time() - cpu
        best_cpu = min(best_cpu, cpu)
        if wall < best_wall:
            best_wall, virtual = wall, r.seconds
        profile = where_time_goes(m)
    per = max(virtual, 1e-9)
    return PatternRun(best_wall / per, best_cpu / per, virtual, profile)


def where_time_goes(m: Machine) -> dict[str, int]:
    """Counters of one run: engine exits forced by view switches, Python callbacks
    for peripheral reads (read-cache misses) and what the cache answered, loop
    turns skipped (idle skip in C, pure polling loops in Python), TLB flushes,
    rewinds of precharged blocks, exceptions taken in C, turns of loops waiting on a
    timer skipped to their exit tick (``sim.rampskip``)."""
    st = m.state
    cache = m.read_cache
    # the cache's misses that a native handler answered never reached Python
    in_c = sum(link.reads for link in getattr(m, "native_adcs", ()))
    return {
        "switches": st.pre.to_alias + st.pre.to_canonical,
        "py_reads": cache.misses - in_c if cache is not None else -1,
        "cache_hits": cache.hits if cache is not None else -1,
        "native": cache.native_hits if cache is not None else -1,
        "idle_turns": st.idle.turns,
        "poll_turns": m.poll.skipped_turns,
        "ramp_turns": m.ramp.skipped_turns if m.ramp is not None else 0,
        "tlb_flushes": st.pre.tlb_flushes,
        "rewinds": st.pre.denials,
        "exceptions": st.exc.entries,
        "instructions": m.counter.instructions,
    }


def patterns() -> None:
    print("speed patterns: wall s per virtual s (1.0 = the real board; lower is faster), "
          f"best of {REPEATS}")
    print("(in brackets: CPU s of this process per virtual s, the wall figure of an idle machine)")
    print(f"{'pattern':18} {'precharged':>15} {'counted':>15} {'block':>15} {'board':>5} "
          f"{'QEMU':>4} {'target':>6}  what")
    profiles = []
    for p in PATTERNS:
        runs = {mode: run_pattern(p, mode) for mode in MODES}
        pre, cnt = runs["precharged"].cpu_per_virtual_s, runs["counted"].cpu_per_virtual_s
        flags = []
        if pre > p.target:
            flags.append("above target")
        if pre > cnt * 1.1 + 0.01:  # beyond the noise of a shared machine
            flags.append("precharged slower than counted")
        cells = " ".join(f"{runs[m].per_virtual_s:7.3f} ({runs[m].cpu_per_virtual_s:5.3f})"
                         for m in MODES)
        print(f"{p.fixture:18} {cells} {1.0:5.1f} {'n/a':>4} {p.target:6.1f}  {p.what}"
              + (f"  [{'; '.join(flags)}]" if flags else ""))
        profiles.append((p, runs))
    print("\nwhere the wall time goes, per virtual second (precharged / counted): engine exits "
          "from view switches, Python read callbacks, native cache hits, accesses native "
          "peripheral handlers took, idle turns skipped "
          "(C), polling turns skipped (Python), TLB flushes, rewinds, exceptions in C, turns "
          "of loops waiting on a timer skipped to their exit tick (C, sim.rampskip)")
    keys = ("switches", "py_reads", "cache_hits", "native", "idle_turns", "poll_turns",
            "tlb_flushes", "rewinds", "exceptions", "ramp_turns")
    print(f"{'pattern':18} " + " ".join(f"{k:>21}" for k in keys))
    for p, runs in profiles:
        cells = []
        for k in keys:
            a, b = (runs[mode].profile[k] / max(runs[mode].virtual_s, 1e-9)
                    for mode in ("precharged", "counted"))
            cells.append(f"{a:10.3g}/{b:<10.3g}")
        print(f"{p.fixture:18} " + " ".join(cells))


#: Virtual seconds each fixture runs in the precharged/counted comparison (the hostile
#: ones do the same thing for ever, some slowly), and the inputs its test gives it.
FIXTURE_LIMIT_S = 0.2
HOSTILE_LIMIT_S = 0.02
FIXTURE_INPUT = {"echo": (b"ab\rc", 0.005), "uart_irq": (b"hello\r", 0.01)}
FIXTURE_PRESSES = {"button": ("B1", 0.05, 0.07), "fw_button_poll": ("B1", 0.03, 0.05),
                   "speed_gpio_poll": ("B1", 0.1, 0.15), "speed_blt_poll": ("B1", 0.1, 0.15)}
#: Images that boot only behind another (the API test runs the pair).
FIXTURE_PARTS = {"boot_app"}


def fixture_cpu(name: str, mode: str) -> tuple[float, float, int, int]:
    """CPU seconds of one run of fixture ``name`` in ``mode`` (the process's CPU time:
    what the wall time would be on an idle machine), its virtual seconds, its
    instruction count and the switches of view it made."""
    spec = board("nucleo-f303re")
    m = Machine(spec, trace_out=lambda port, data: None, **MODES[mode])
    m.load([(s.address, s.data) for s in load(BUILD / f"{name}.elf").segments])
    if name in FIXTURE_INPUT:
        data, at = FIXTURE_INPUT[name]
        m.uart_receive(spec.console, data, at)
    if name in FIXTURE_PRESSES:
        m.press(*FIXTURE_PRESSES[name])
    limit = HOSTILE_LIMIT_S if name.startswith("hostile_") else FIXTURE_LIMIT_S
    cpu = time.process_time()
    r = m.run(limit, wall_limit_s=600)
    cpu = time.process_time() - cpu
    return cpu, r.seconds, r.instructions, m.state.pre.to_alias + m.state.pre.to_canonical


def fixtures(names: list[str] | None = None) -> list[str]:
    """Every fixture image, precharged against counted per instruction: best CPU time
    of ``REPEATS`` runs each, the two modes alternating (precharged first, then counted
    first, ...) so that a change of machine load hits both alike. Flags each fixture
    where precharging is slower beyond the noise, and returns their names."""
    print(f"\nevery fixture, precharged vs counted per instruction: CPU s of the run "
          f"(best of {REPEATS}, order alternating), {FIXTURE_LIMIT_S} virtual s each "
          f"({HOSTILE_LIMIT_S} s for hostile_*)")
    print(f"{'fixture':24} {'precharged':>10} {'counted':>10} {'ratio':>6} {'MIPS pre':>8} "
          f"{'switches':>9}")
    slower = []
    every = sorted(p.stem for p in BUILD.glob("*.elf") if p.stem not in FIXTURE_PARTS)
    for name in names or every:
        best: dict[str, float] = {"precharged": float("inf"), "counted": float("inf")}
        instructions = switches = 0
        for i in range(REPEATS):
            order = ("precharged", "counted") if i % 2 == 0 else ("counted", "precharged")
            for mode in order:
                cpu, _, n, sw = fixture_cpu(name, mode)
                best[mode] = min(best[mode], cpu)
                if mode == "precharged":
                    instructions, switches = n, sw
        pre, cnt = best["precharged"], best["counted"]
        ratio = pre / max(cnt, 1e-9)
        # beyond the noise of a shared machine: 10 % and 3 ms
        flag = pre > cnt * 1.1 + 0.003
        if flag:
            slower.append(name)
        print(f"{name:24} {pre:10.4f} {cnt:10.4f} {ratio:6.2f} {instructions / max(pre, 1e-9) / 1e6:8.1f} "
              f"{switches:9d}" + ("  [precharged slower than counted]" if flag else ""))
    print(f"precharged slower than counted on {len(slower)} fixture(s)"
          + (f": {', '.join(slower)}" if slower else ""))
    return slower


def main() -> None:
    global REPEATS
    args = sys.argv[1:]
    if args[:1] in (["patterns"], ["fixtures"]):  # patterns|fixtures [--repeats N] [names]
        rest = args[1:]
        if rest[:1] == ["--repeats"]:
            REPEATS = int(rest[1])
            rest = rest[2:]
        if args[0] == "patterns":
            patterns()
        else:
            fixtures(rest or None)
        return
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
    print()
    patterns()
    fixtures()


if __name__ == "__main__":
    main()
