"""Every fixture on both backends: where Renode and our simulator differ, and why.

Run ``python bench/renode_compare.py`` with a real Renode on PATH (or
``--renode PATH``). For each fixture it runs the same job (executable, limit,
console input, presses) on the sim backend and on the renode backend and
prints a Markdown table: the outcome on each, whether the job log (UART and
semihosting text) is the same, and, where it is not, the documented reason
from ``DIFFERENCES`` below ("UNEXPLAINED" when there is none: a new
difference to look into). It also prints the wall time per virtual second on
each backend, with Renode's start-up measured in the same run and taken out.
Figures are printed, never asserted; tests/backends/test_renode_real.py
holds Renode to the "same" rows.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from hwut.backends.base import Outcome, RunRequest  # noqa: E402
from hwut.backends.renode import RenodeBackend, find_renode  # noqa: E402
from hwut.backends.sim import SimBackend  # noqa: E402

BUILD = ROOT / "fixtures" / "build"
BOARD = "nucleo-f303re"
#: Runs shorter than this in virtual time get no per-virtual-second figure.
MIN_VIRTUAL_S = 0.05

@dataclass(frozen=True)
class Job:
    """One fixture's job: as short a limit as shows its whole output (fixtures/README.md)."""

    limit_s: float
    uart_input: bytes = b""
    presses: tuple[tuple[str, float, float | None], ...] = ()
    board: str = BOARD


#: Every fixture of fixtures/build, with the job it is compared on.
FIXTURES: dict[str, Job] = {
    "hello": Job(0.35), "blink": Job(1.0), "hal_clock": Job(0.6), "fault": Job(0.1),
    "float": Job(0.2), "uart_loop": Job(0.1), "compute": Job(20.0),
    "echo": Job(0.1, uart_input=b"ab\rc"), "spin": Job(0.05),
    "button": Job(1.0, presses=(("B1", 0.5, 0.7),)),
    "uart_irq": Job(0.05, uart_input=b"hello\r"), "timers": Job(2.0),
    "capture_adc": Job(0.1), "bootloader": Job(1.0), "core_exceptions": Job(1.0),
    "core_system": Job(1.0), "flash_program": Job(1.0), "semihost_exit": Job(1.0),
    "semihost_exit0": Job(1.0), "systick_1mhz": Job(0.2), "itm_printf": Job(0.1),
    "itm_printf32": Job(0.1),
    "fw_cube_bitband": Job(0.2), "fw_cube_bitband_48": Job(0.2), "fw_rtos": Job(0.4),
    "fw_chibios_clock": Job(0.2), "fw_chibios_clock_hsi": Job(0.2),
    "fw_embassy_time": Job(0.2), "fw_embassy_time_hsi": Job(0.2),
    "fw_mbed_vectors": Job(0.1), "fw_mbed_vectors_hsi": Job(0.1),
    "fw_uart_dma": Job(0.1), "fw_uart_dma_hsi": Job(0.1),
    "fw_button_poll": Job(0.8, presses=(("B1", 0.2, 0.35), ("B1", 0.6, 0.65))),
    "fw_i2c_bitbang": Job(0.1), "fw_pal_init": Job(0.1), "fault_div0": Job(0.1),
    "fault_unaligned": Job(0.1), "disco_hello": Job(0.1, board="stm32f3discovery"),
    "hostile_fault_loop": Job(0.1), "hostile_irq_repend": Job(0.1),
    "hostile_itm_spam": Job(0.1), "hostile_lockup": Job(0.1), "hostile_reset_loop": Job(0.1),
    "hostile_selfmod": Job(0.1), "hostile_semihost_spam": Job(0.1),
    "hostile_uart_spam": Job(0.1), "hostile_uart_spam_max": Job(0.1),
    "hostile_unmodelled": Job(0.1), "hostile_vtor_unmapped": Job(0.1),
}

#: Fixture -> why Renode's job log or outcome differs from our simulator's (seen on
#: Renode 1.15.3 built from source). A fixture not listed must give the same log.
DIFFERENCES: dict[str, str] = {
    "blink": "UART not paced: Renode sends a byte the moment it is written, so tick 4 is "
             "out before the 1 s limit (on the chip its last byte leaves after it)",
    "uart_loop": "UART not paced: the polled loop prints about 400 times more in 0.1 s",
    "hostile_uart_spam": "UART not paced (as uart_loop)",
    "hostile_uart_spam_max": "UART not paced (as uart_loop)",
    "button": "UART not paced: SysTick starts right after the idle line, not ~1 ms later, "
              "so the times read 500/700 ms, not 499/699",
    "fw_button_poll": "each press is seen 1 ms late (201 ms, not 200): the press comes at its "
                      "virtual time, after the SysTick interrupt due at the same instant",
    "fault": "an access to nothing (0x60000000) reads 0 in Renode instead of a bus fault, "
             "and the renode backend reports no faults",
    "hostile_fault_loop": "no bus fault on an access to nothing, no fault reported",
    "hostile_lockup": "no lockup or fault reported by the renode backend",
    "hostile_vtor_unmapped": "same log; the renode backend reports no faults (limit, not fault)",
    "fault_div0": "Renode's core has no CCR.DIV_0_TRP: a division by 0 gives 0, no UsageFault",
    "fault_unaligned": "Renode's core has no CCR.UNALIGN_TRP: no UsageFault on an unaligned access",
    "core_exceptions": "3 checks fail: the FP context across an interrupt, and the precise "
                       "BusFault and its escalation (an access to nothing reads 0)",
    "core_system": "4 checks fail: DWT CYCCNT follows virtual time, not instructions; a "
                   "same-group interrupt pended in a handler is not held (PRIGROUP); the "
                   "FAULTMASK and VTOR-in-SRAM checks after it fail too (not investigated). "
                   "SYSRESETREQ works (reset macro)",
    "flash_program": "2 checks fail: Renode's flash is plain memory, so writing a half-word "
                     "that is not erased, or with the interface locked, is not refused",
    "timers": "TIM6 one-pulse mode does not end in Renode's STM32 timer model: runs to the limit",
    "fw_embassy_time": "TIM2 compare interrupts at 72 MHz all come at ~90 ms in Renode's timer "
                       "model (the HSI variant matches)",
    "fw_rtos": "Renode's output varied between runs (once 21 bytes more); not investigated",
    "fw_uart_dma": "Renode's channel DMA copies the whole block when the channel is enabled, "
                   "with no USART request; the data is right, the firmware's wait for the "
                   "transfer's end times out",
    "fw_uart_dma_hsi": "as fw_uart_dma; at 8 MHz it stops after the first block",
    "fw_i2c_bitbang": "a pulled-down input pin reads 1: Renode's GPIO has no pull resistors",
    "fw_pal_init": "pulled-down input pins read 1 in IDR (no pull resistors in Renode's GPIO)",
    "itm_printf": "no ITM in Renode (0xE0000000 is nothing): the firmware waits for a stimulus "
                  "port that never becomes ready and runs to its limit",
    "hostile_itm_spam": "Renode logs every ITM write (to nothing): the log flood ends the job",
    "hostile_unmodelled": "Renode logs every access to an unmodelled register: too slow for "
                          "the wall-clock guard",
    "hostile_semihost_spam": "Renode's semihosting has no SYS_WRITE (only the SYS_WRITE0 "
                             "lines come out) and each call runs the exit hook: too slow for "
                             "the wall-clock guard",
    "hostile_selfmod": "more progress lines: Renode counts one cycle per instruction, our "
                       "simulator each instruction's own cycles",
}


@dataclass
class Result:
    outcome: Outcome
    log: bytes
    wall_s: float


def run(backend, name: str, job: Job) -> Result:
    log = bytearray()
    request = RunRequest(BUILD / f"{name}.elf", "elf", job.board, job.limit_s, log.extend,
                         threading.Event(), uart_input=job.uart_input, presses=job.presses)
    started = time.monotonic()
    outcome = backend.run(request)
    return Result(outcome, bytes(log), time.monotonic() - started)


def describe(result: Result) -> str:
    o = result.outcome
    text = o.reason.value + (f" {o.exit_code}" if o.exit_code is not None else "")
    return f"{text}, {len(result.log)} B"


def virtual_s(result: Result, job: Job) -> float:
    return result.outcome.time_used_s or job.limit_s


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--renode", help="the Renode launcher (default: PATH, renode-run)")
    parser.add_argument("--only", help="comma-separated fixture names")
    parser.add_argument("--jobs", type=int, default=1, help="Renode jobs side by side")
    parser.add_argument("--out", type=Path, help="also write the table here")
    args = parser.parse_args(argv)
    renode = Path(args.renode) if args.renode else find_renode({})
    names = args.only.split(",") if args.only else list(FIXTURES)
    options = {"renode_path": str(renode), "wall_factor": 400.0, "startup_allowance_s": 120.0}

    # Renode's start-up, measured here: a job of 1 us of virtual time, three times
    startups = [run(RenodeBackend(BOARD, options), "spin", Job(1e-6)).wall_s for _ in range(3)]
    startup = statistics.median(startups)

    def both(name: str) -> tuple[str, Result, Result | None]:
        job = FIXTURES[name]
        sim = run(SimBackend(job.board), name, job)
        if RenodeBackend.board_info(job.board) is None:
            return name, sim, None
        return name, sim, run(RenodeBackend(BOARD, options), name, job)

    with ThreadPoolExecutor(max(1, args.jobs)) as pool:
        results = list(pool.map(both, names))

    rows = ["| fixture | limit | sim | Renode | job log | why they differ |",
            "|---|---|---|---|---|---|"]
    speed = ["| fixture | virtual s | sim wall s | sim s per virtual s | Renode wall s "
             "| Renode s per virtual s (start-up taken out) |", "|---|---|---|---|---|---|"]
    unexplained = 0
    for name, sim, ren in results:
        job = FIXTURES[name]
        if ren is None:
            rows.append(f"| {name} | {job.limit_s:g} s | {describe(sim)} | - | - | "
                        f"no Renode platform for {job.board} |")
            continue
        same_log = sim.log == ren.log
        same = same_log and (sim.outcome.reason, sim.outcome.exit_code) == (
            ren.outcome.reason, ren.outcome.exit_code)
        why = DIFFERENCES.get(name, "" if same else "UNEXPLAINED")
        unexplained += why == "UNEXPLAINED"
        rows.append(f"| {name} | {job.limit_s:g} s | {describe(sim)} | {describe(ren)} | "
                    f"{'same' if same_log else 'differs'} | {why} |")
        v, vs = virtual_s(ren, job), virtual_s(sim, job)
        if min(v, vs) < MIN_VIRTUAL_S:  # an early exit: too little time for a rate
            continue
        speed.append(f"| {name} | {v:g} | {sim.wall_s:.2f} | {sim.wall_s / vs:.2f} "
                     f"| {ren.wall_s:.1f} | {max(0.0, ren.wall_s - startup) / v:.1f} |")
    text = "\n".join([
        f"Renode: {RenodeBackend.availability(options).detail}",
        f"Renode start-up (1 us job, median of 3): {startup:.1f} s "
        f"({', '.join(f'{s:.1f}' for s in startups)})", "", *rows, "", *speed, ""])
    print(text)
    if args.out:
        args.out.write_text(text)
    return 1 if unexplained else 0


if __name__ == "__main__":
    sys.exit(main())
