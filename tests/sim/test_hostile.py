"""Hostile firmware (fixtures/src/hostile_*.c, issue 11): each one ends with its documented
stop cause, no Python exception leaves the machine, and what the emulator keeps about it
(notes, faults, the event queue, Python memory) stays bounded however long it runs."""
from __future__ import annotations

import gc
import struct
import tracemalloc
from pathlib import Path

import pytest
from unicorn.arm_const import UC_ARM_REG_LR, UC_ARM_REG_MSP, UC_ARM_REG_PC

from hwut.backends.image import load
from hwut.sim.boards import board
from hwut.sim.core import exceptions as X
from hwut.sim.machine import Machine, StopCause
from hwut.sim.notes import MAX_BYTES, NoteLog
from hwut.sim.pollskip import Loop, PollFastForward
from hwut.sim.vclock import VirtualClock

from .conftest import BUILD, Run, run_firmware
from .test_fixture_images import test_formats_agree as formats_agree
from .test_fixture_images import test_vector_table as vector_table

HOSTILE = ("hostile_semihost_spam", "hostile_itm_spam", "hostile_uart_spam",
           "hostile_uart_spam_max", "hostile_unmodelled", "hostile_fault_loop", "hostile_lockup",
           "hostile_reset_loop", "hostile_irq_repend", "hostile_selfmod", "hostile_vtor_unmapped")

#: Bounds a hostile run must stay within (the NoteLog's own caps are larger).
MAX_NOTE_LINES = 80
MAX_FAULT_LINES = 20


def hostile(name: str, limit_s: float, **machine_args) -> tuple[Run, list[str]]:
    sink: list[str] = []
    r = run_firmware(name, limit_s, note=sink.append, **machine_args)
    return r, sink


def assert_bounded(r: Run, sink: list[str]) -> None:
    notes = r.machine.notes
    assert notes == sink  # the sink sees exactly what is kept: summaries, not repeats
    assert len(notes) <= MAX_NOTE_LINES, notes[:20]
    assert sum(len(n) + 1 for n in notes) <= MAX_BYTES
    assert len(r.result.faults) <= MAX_FAULT_LINES, r.result.faults[:20]
    assert r.machine.bus.model_errors == 0
    assert len(r.machine.clock._queue) < 64


def growth_bytes(name: str, warm_s: float, end_s: float) -> int:
    """Python memory the machine gains between ``2 warm_s`` and ``end_s`` of the run
    (after ``warm_s`` everything reachable once should be there)."""
    m = Machine(board("nucleo-f303re"), note=lambda line: None,
                trace_out=lambda port, data: None)
    m.load([(s.address, s.data) for s in load(BUILD / f"{name}.elf").segments])
    m.run(warm_s)
    tracemalloc.start()
    try:
        m.run(2 * warm_s)
        gc.collect()
        before, _ = tracemalloc.get_traced_memory()
        m.run(end_s)
        gc.collect()
        after, _ = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return after - before


# -- log spam ------------------------------------------------------------------------
def test_semihosting_spam_runs_to_the_limit_and_only_the_console_grows():
    r, sink = hostile("hostile_semihost_spam", 0.003)
    assert r.result.cause is StopCause.LIMIT and not r.result.faults
    turn = b"semihost spam: SYS_WRITE0\n" + b"".join(
        bytes(ord("A") + i % 26 for i in range(63)) + b"\n" for _ in range(16))
    assert len(turn) == 1050
    out = r.semihosting
    assert len(out) > 1000 * len(turn)  # megabytes in virtual milliseconds
    assert out[:len(turn) * 3] == turn * 3
    assert not sink
    assert_bounded(r, sink)


def test_itm_spam_goes_to_the_trace_sink_only():
    total = {"bytes": 0, "bad": 0}

    def trace(port: int, data: bytes) -> None:
        total["bytes"] += len(data)
        total["bad"] += port != 0 or data != b"itm\n"

    r, sink = hostile("hostile_itm_spam", 0.001, trace_out=trace)
    assert r.result.cause is StopCause.LIMIT and not r.result.faults
    assert total["bad"] == 0 and total["bytes"] > 10_000
    assert r.uart == b"" and r.semihosting == b""
    assert_bounded(r, sink)


def _uart_spam_lines(n: int) -> bytes:
    return b"".join(b"uart spam %08x\r\n" % i for i in range(n))


def test_uart_spam_at_115200_is_bounded_by_the_baud_rate():
    r, sink = hostile("hostile_uart_spam", 0.02)
    assert r.result.cause is StopCause.LIMIT
    # 86.94 us a character (BRR 313 at 36 MHz): 230 characters in 20 ms
    assert 220 <= len(r.uart) <= 231
    assert _uart_spam_lines(12).startswith(r.uart)
    assert_bounded(r, sink)


def test_uart_spam_at_the_fastest_baud_rate_rm0316_allows():
    """SYSCLK kernel clock, OVER8, USARTDIV 16: 9 Mbit/s, 80 core cycles a character."""
    r, sink = hostile("hostile_uart_spam_max", 0.002)
    assert r.result.cause is StopCause.LIMIT
    assert _uart_spam_lines(len(r.uart) // 20 + 1).startswith(r.uart)
    times = [t for t, _ in r.timeline]
    gaps = [b - a for a, b in zip(times[100:], times[101:])]
    assert max(gaps) == pytest.approx(80 / 72e6, rel=1e-3)
    assert min(gaps) == pytest.approx(80 / 72e6, rel=1e-3)
    assert len(r.uart) == pytest.approx((0.002 - times[0]) * 72e6 / 80, abs=3)
    assert_bounded(r, sink)


# -- registers nobody modelled ------------------------------------------------------------
def test_unmodelled_register_loop_is_noted_once_and_counted():
    r, sink = hostile("hostile_unmodelled", 0.01)
    assert r.result.cause is StopCause.LIMIT and not r.result.faults
    assert r.uart == b"unmodelled: writing SPI1, MPU and TPIU for ever\r\n"
    notes = r.machine.notes
    assert notes.count("0x40013000: unmodelled register at 0x40013000 (write); kept as memory") == 1
    gap = "write of 0xe000ed9c: no model in a shared page; ignored"
    assert notes.count(gap) == 1
    assert f"note repeated 1000 times so far: {gap}" in notes
    final = [n for n in notes if n.startswith("note repeated") and n.endswith(gap)][-1]
    turns = int(final.split()[2])
    assert turns > 2048  # the sweep went round at least once
    assert any(n.startswith("note repeated") and "numbers varying" in n
               and "unmodelled register" in n for n in notes)
    assert_bounded(r, sink)


# -- faults, lockup, resets ------------------------------------------------------------------
def test_fault_loop_is_a_fault_whose_repeats_are_counted():
    r, sink = hostile("hostile_fault_loop", 0.012)
    assert r.result.cause is StopCause.LIMIT  # the backend reports LIMIT with faults as FAULT
    assert r.uart == (b"fault loop: load from 0x60000000\r\n"
                      b"HardFault CFSR=0x00008200 HFSR=0x40000000 BFAR=0x60000000, "
                      b"returning to the load\r\n")
    faults = r.result.faults
    assert faults[0].startswith("HardFault: read of 0x60000000 at PC 0x08")
    summary = [f for f in faults if f.startswith("fault repeated") and "so far" not in f]
    assert len(summary) == 1 and int(summary[0].split()[2]) > 1000
    assert r.machine.notes[0].startswith("bus fault: read of 0x60000000")
    assert_bounded(r, sink)


def test_fault_in_hardfault_locks_up():
    r, sink = hostile("hostile_lockup", 0.1)
    assert r.result.cause is StopCause.LOCKUP
    assert r.result.detail.startswith("core lockup: read of 0x60000000 at PC 0x08")
    assert any(f.startswith("HardFault: undefined instruction at 0x08") for f in r.result.faults)
    assert r.uart == b"lockup: UDF\r\nHardFault: now faulting inside it\r\n"
    assert r.result.seconds < 0.01
    assert_bounded(r, sink)


def test_reset_loop_resets_for_ever_and_says_so_briefly():
    r, sink = hostile("hostile_reset_loop", 0.002)
    assert r.result.cause is StopCause.LIMIT and not r.result.faults
    assert r.uart == b"" and r.semihosting == b""
    notes = r.machine.notes
    shown = [n for n in notes if n.startswith("system reset requested at")]
    assert len(shown) == 10
    final = notes[-1]
    assert final.startswith("note repeated ") and ", numbers varying: system reset" in final
    assert int(final.split()[2]) > 500
    assert_bounded(r, sink)


def test_irq_that_pends_itself_keeps_thread_mode_out():
    r, sink = hostile("hostile_irq_repend", 0.005)
    assert r.result.cause is StopCause.LIMIT and not r.result.faults
    assert r.uart == b"repend: SPI1 IRQ pends itself\r\n"
    exc = r.machine.exc
    spi1 = X.IRQ_BASE + 35
    assert exc.is_active(spi1) or exc.is_pending(spi1)
    assert_bounded(r, sink)


def test_self_modifying_code_runs_what_was_written():
    r, sink = hostile("hostile_selfmod", 0.1)
    assert r.result.cause is StopCause.LIMIT and not r.result.faults
    lines = r.uart.split(b"\r\n")
    assert lines[0] == b"selfmod: patching code in SRAM"
    progress = [ln for ln in lines[1:] if ln]
    assert len(progress) >= 3 and b"MISMATCH" not in r.uart
    for k, line in enumerate(progress[:-1], start=1):
        assert line == b"selfmod: %d calls, 0 wrong" % (4096 * k)
    assert_bounded(r, sink)


@pytest.mark.parametrize("native", [True, False])
def test_vtor_at_unmapped_memory_escalates_then_locks_up(native):
    """ARMv7-M ARM B1.5.14/B1.5.15: the PendSV vector read fails → HardFault with
    HFSR.VECTTBL; HardFault's own vector read fails → lockup. No LookupError."""
    r, sink = hostile("hostile_vtor_unmapped", 0.1, native=native)
    assert r.result.cause is StopCause.LOCKUP
    assert r.result.detail == ("core lockup: vector table read for HardFault at 0x3000000c "
                               "failed (VTOR 0x30000000)")
    assert ("HardFault: vector table read for PendSV at 0x30000038 failed (VTOR 0x30000000)"
            in r.result.faults)
    assert r.machine.exc.faults.hfsr & X.HFSR_VECTTBL
    assert r.uart == b"vtor: VTOR=0x30000000, PendSV pended\r\n"
    assert_bounded(r, sink)


@pytest.mark.parametrize("native", [True, False])
def test_exception_return_with_the_stack_pointer_outside_memory_is_a_fault(native):
    """A handler that moves MSP to unmapped memory and returns: the unstacking read
    fails, a BusFault with BFSR.UNSTKERR (it used to leave ``run`` as a UcError, then
    locked the core up). BusFault is disabled: it escalates to HardFault (FORCED),
    tail-chained: nothing unstacked, MSP where it was, LR the EXC_RETURN of the
    failed return (ARMv7-M B1.5.8, PM0214 4.4.11)."""
    thread = bytes.fromhex("00df" "fee7")                   # svc 0; b .
    handler = bytes.fromhex("4ff04050" "80f30888" "7047")  # mov r0, #0x30000000; msr msp, r0; bx lr
    table = struct.pack("<IIII", 0x2001_0000, 0x0800_0201, 0, 0x0800_0281) + bytes(4 * 7) \
        + struct.pack("<I", 0x0800_0301)                  # HardFault at 0x280, SVCall at 0x300
    image = table.ljust(0x200, b"\xff") + thread.ljust(0x80, b"\xff") \
        + bytes.fromhex("fee7").ljust(0x80, b"\xff") + handler
    m = Machine(board("nucleo-f303re"), native=native)
    m.load([(0x0800_0000, image)])
    result = m.run(0.001)
    assert result.cause is StopCause.LIMIT
    assert result.faults == ["HardFault: unstacking for the return from SVCall failed: "
                             "MSP 0x30000000 is not in RAM"]
    assert m.exc.faults.cfsr == X.CFSR_UNSTKERR and m.exc.faults.hfsr == X.HFSR_FORCED
    assert m.exc.cpu_ipsr() == 3 and m.exc.active == 1 << 3       # HardFault alone
    assert m.uc.reg_read(UC_ARM_REG_LR) == 0xFFFF_FFF9
    assert m.uc.reg_read(UC_ARM_REG_MSP) == 0x3000_0000
    assert m.uc.reg_read(UC_ARM_REG_PC) == 0x0800_0280


# -- every timing path agrees --------------------------------------------------------------
@pytest.mark.parametrize("name, limit_s", [
    ("hostile_fault_loop", 0.005), ("hostile_irq_repend", 0.004), ("hostile_selfmod", 0.02),
    ("hostile_reset_loop", 0.0005), ("hostile_vtor_unmapped", 0.01),
])
def test_native_precharged_and_python_paths_agree(name, limit_s):
    def outcome(**kw):
        r = run_firmware(name, limit_s, **kw)
        return (r.uart, r.timeline, r.result.cause, r.result.instructions, r.result.faults,
                r.result.detail, r.machine.notes)

    reference = outcome(native=False)
    assert outcome() == reference
    assert outcome(precharge=False) == reference


# -- memory does not grow with the length of the run ----------------------------------------
@pytest.mark.parametrize("name, warm_s, end_s", [
    ("hostile_fault_loop", 0.002, 0.008),
    ("hostile_reset_loop", 0.0005, 0.0015),
    ("hostile_irq_repend", 0.001, 0.004),
    ("hostile_unmodelled", 0.006, 0.018),   # after the sweep has met all 2048 registers
    ("hostile_semihost_spam", 0.002, 0.0045),  # after filling its block
    ("hostile_itm_spam", 0.0005, 0.0015),
])
def test_memory_does_not_grow_with_run_length(name, warm_s, end_s):
    assert growth_bytes(name, warm_s, end_s) < 16 * 1024


# -- the bounds themselves -------------------------------------------------------------------
def test_note_log_counts_repeats_and_reports_powers_of_ten():
    seen: list[str] = []
    log = NoteLog(seen.append)
    for _ in range(12_345):
        log.add("bus fault: write to 0x60000000 at PC 0x08000100")
    log.finish()
    assert seen == ["bus fault: write to 0x60000000 at PC 0x08000100"] + [
        f"note repeated {n} times so far: bus fault: write to 0x60000000 at PC 0x08000100"
        for n in (10, 100, 1000, 10_000)
    ] + ["note repeated 12345 times: bus fault: write to 0x60000000 at PC 0x08000100"]
    log.finish()  # nothing new: nothing more said
    assert len(seen) == 6


def test_note_log_keeps_a_few_texts_of_a_kind_then_counts():
    log = NoteLog(per_kind=3)
    for i in range(50):
        log.add(f"unmodelled register at 0x{0x4001_3000 + 4 * i:08x}")
    log.finish()
    assert log.lines[:3] == ["unmodelled register at 0x40013000", "unmodelled register at 0x40013004",
                             "unmodelled register at 0x40013008"]
    assert log.lines[-1] == ("note repeated 50 times, numbers varying: "
                             "unmodelled register at 0x40013000")


def test_note_log_caps_kinds_bytes_and_line_length():
    log = NoteLog(max_kinds=5, max_bytes=2000, max_line=50)
    log.add("x" * 500)
    assert log.lines == ["x" * 47 + "..."]
    for i in range(100_000):
        log.add(f"kind {chr(65 + i % 26)}{chr(65 + i // 26 % 26)} happened")
    log.finish()
    assert sum(len(line) + 1 for line in log.lines[:-1]) <= 2000
    assert log.lines[-1].startswith("note log cap reached (5 kinds, 2000 bytes): ")
    assert int(log.lines[-1].split(": ")[1].split()[0]) > 99_000
    assert log.received == 100_001


def test_cancelled_events_do_not_pile_up():
    """A model that reprograms a far-off event in a loop (a timer's ARR written again
    and again) leaves cancelled events behind; the queue is swept as it grows."""

    class Source:
        count = 0

        def cycles(self) -> int:
            return self.count

    clock = VirtualClock(Source(), 8_000_000)
    event = clock.after(10**9, lambda: None)
    for i in range(100_000):
        event.cancel()
        event = clock.after(10**9 + i, lambda: None)
    assert len(clock._queue) < 4096
    fired = []
    clock.after(5, lambda: fired.append("soon"))
    Source.count = 10
    assert clock.run_due() and fired == ["soon"]


def test_timer_reprogrammed_in_a_loop_keeps_the_event_queue_small():
    m = Machine(board("nucleo-f303re"))
    m.load([(0x0800_0000, (0x2001_0000).to_bytes(4, "little") + (0x0800_0201).to_bytes(4, "little")
             + b"\xff" * 0x1F8 + b"\xfe\xe7")])
    m.bus.write(0x4002_101C, 4, 1)            # RCC_APB1ENR.TIM2EN
    m.bus.write(0x4000_000C, 4, 1)            # TIM2_DIER.UIE
    m.bus.write(0x4000_0000, 4, 1)            # TIM2_CR1.CEN
    for i in range(5000):
        m.bus.write(0x4000_002C, 4, 1_000_000 + i)  # ARR: the update moves every time
        m.bus.write(0x4000_0024, 4, 0)              # CNT
    assert len(m.clock._queue) <= 1025  # 5001 without the sweep
    assert m.run(0.001).cause is StopCause.LIMIT


def test_poll_skipping_notices_rewritten_code():
    """A polling loop analysed once, then overwritten in RAM by other code at the same
    place (self-modifying code): its old analysis must not be used to skip turns."""
    ram = bytearray(64)
    # 0: ldr r0, [r1]; 2: tst r0, #1 (lsls r2, r0, #31); 4: beq 0
    ram[0:6] = bytes.fromhex("0868" "c207" "fcd0")
    poll = PollFastForward(lambda a, n: bytes(ram[a - 0x2000_0000:a - 0x2000_0000 + n]))
    loop = poll.loop_at(0x2000_0000)
    assert isinstance(loop, Loop) and loop.length == 3
    assert poll.turns_to_skip(loop, 0, 1000) > 0
    ram[2:4] = bytes.fromhex("0a60")  # str r2, [r1]: not a pure loop any more
    assert poll.turns_to_skip(loop, 0, 1000) == 0
    assert poll.loop_at(0x2000_0000) is None


def test_every_hostile_fixture_is_tested_here():
    assert {p.stem for p in Path(BUILD).glob("hostile_*.elf")} == set(HOSTILE)


@pytest.mark.parametrize("name", HOSTILE)
def test_hostile_images_are_well_formed(name):
    """The same checks as the other fixtures' images: vector table, ELF/BIN/HEX agree."""
    vector_table(name)
    formats_agree(name)
