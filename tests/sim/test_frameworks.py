"""Firmware written the way common frameworks write it (issue 5) behaves as on the board.

One fixture per pattern (``fixtures/src/fw_*.c``, see ``fixtures/README.md``):
exact text, and virtual timing derived from the clock tree the firmware set
up. Each run ends through semihosting, so the limits below are only guards.
"""
from __future__ import annotations

import re

import pytest

from hwut.sim.machine import StopCause

from .conftest import expected, run_firmware

BAUD = 115200
BUTTON_PRESSES = (("B1", 0.2, 0.35), ("B1", 0.6, 0.65))

#: name -> (limit_s, run_firmware keyword arguments)
FIXTURES = {
    "fw_cube_bitband": (0.5, {}),
    "fw_cube_bitband_48": (0.5, {}),
    "fw_rtos": (0.5, {}),
    "fw_chibios_clock": (0.5, {}),
    "fw_chibios_clock_hsi": (0.5, {}),
    "fw_embassy_time": (0.5, {}),
    "fw_embassy_time_hsi": (0.5, {}),
    "fw_mbed_vectors": (0.5, {}),
    "fw_mbed_vectors_hsi": (0.5, {}),
    "fw_button_poll": (1.0, {"presses": BUTTON_PRESSES}),
    "fw_i2c_bitbang": (0.5, {}),
}
DMA = ("fw_uart_dma", "fw_uart_dma_hsi")

#: Fixtures built in more than one clock configuration: the variants.
CLOCK_VARIANTS = {
    "fw_cube_bitband": ("fw_cube_bitband", "fw_cube_bitband_48"),
    "fw_chibios_clock": ("fw_chibios_clock", "fw_chibios_clock_hsi"),
    "fw_embassy_time": ("fw_embassy_time", "fw_embassy_time_hsi"),
    "fw_mbed_vectors": ("fw_mbed_vectors", "fw_mbed_vectors_hsi"),
    "fw_uart_dma": ("fw_uart_dma", "fw_uart_dma_hsi"),
}

_cache: dict[str, object] = {}


def run(name: str):
    """Each fixture is deterministic: run it once per session."""
    if name not in _cache:
        limit, kwargs = FIXTURES.get(name, (0.5, {}))
        _cache[name] = run_firmware(name, limit, **kwargs)
    return _cache[name]


def lines(r) -> list[tuple[bytes, float, float]]:
    """(text, time the first byte is complete, time the last byte is complete) per line."""
    out, start = [], 0
    for i, (_, b) in enumerate(r.timeline):
        if b == ord("\n"):
            text = bytes(c for _, c in r.timeline[start:i + 1])
            out.append((text, r.timeline[start][0], r.timeline[i][0]))
            start = i + 1
    return out


def char_time(brr: int, pclk1: int) -> float:
    return 10 * brr / pclk1


def line_char_time(r) -> float:
    """Printed PCLK1 and BRR: the character time the board must show."""
    text = r.uart.decode()
    pclk1 = int(re.search(r"PCLK1=(\d+)", text)[1])
    brr = int(re.search(r"BRR=(\d+)", text)[1])
    assert brr == (pclk1 + BAUD // 2) // BAUD
    return char_time(brr, pclk1)


# ---- exact text -------------------------------------------------------------------

@pytest.mark.parametrize("name", sorted(FIXTURES))
def test_prints_exactly_the_expected_text(name):
    r = run(name)
    assert r.uart == expected(name), r.uart.decode(errors="replace")
    assert r.result.cause is StopCause.EXIT and r.result.exit_code == 0
    assert not r.result.faults


@pytest.mark.parametrize("name", DMA)
def test_uart_dma_prints_exactly_the_expected_text(name):
    r = run(name)
    assert r.uart == expected(name), r.uart.decode(errors="replace")
    assert r.result.cause is StopCause.EXIT and r.result.exit_code == 0


# ---- per pattern: timing ------------------------------------------------------------

def test_cube_pllon_through_bitband_and_hal_delay():
    r = run("fw_cube_bitband")
    ls = lines(r)
    assert ls[1][0].startswith(b"bitband PLLON=1 PLLRDY=1 sram=0x00000101 bit8=1")
    c = line_char_time(r)
    # HAL_Delay(100) starts after TC of line 3 and waits 100 < t <= 101 ms
    _check_cube(r)
    # the whole delay line follows at the baud rate
    assert ls[3][2] - ls[3][1] == pytest.approx((len(ls[3][0]) - 1) * c, abs=1e-9)


def test_rtos_tasks_run_on_their_ticks():
    r = run("fw_rtos")
    ls = lines(r)
    assert ls[0][0] == b"rtos: ipr=0x000000f0 prio bits=4 max_syscall=0x00000050\r\n"
    a = {int(m[1]): t0 for text, t0, _ in ls if (m := re.match(rb"A \d+ wake=(\d+) ", text))}
    b = {int(m[1]): t0 for text, t0, _ in ls if (m := re.match(rb"B \d+ wake=(\d+) ", text))}
    assert sorted(a) == [0, 50, 100, 150, 200, 250, 300] and sorted(b) == [0, 70, 140, 210, 280]
    # from wake 50 on, each line starts on its tick (A preempts C at once, B when A sleeps)
    base = a[50] - 0.050
    for wake, t in list(a.items())[1:] + list(b.items())[1:]:
        assert t - base == pytest.approx(wake / 1000, abs=30e-6), (wake, t - base)
    # the final line comes from the FP task after A stopped at tick 300
    assert ls[-1][0] == b"C: fp context kept across switches: OK\r\n"
    assert ls[-1][1] > a[300]


def test_chibios_clock_64mhz_sleep():
    r = run("fw_chibios_clock")
    assert b"SYSCLK=64000000 PCLK1=32000000 BRR=278 LOAD=63999" in r.uart
    assert r.machine.clocks["SYSCLK"] == 64_000_000 and r.machine.clocks["LSI"] == 40_000
    _check_chibios_sleep(r)


def _check_chibios_sleep(r):
    ls = lines(r)
    c = line_char_time(r)
    # a ticked 100 ms sleep from mid-tick: 99 < t <= 100 ms, then one character
    gap = ls[2][1] - ls[1][2]
    assert 0.099 + c <= gap <= 0.100 + c + 20e-6, gap


def test_embassy_deadlines_from_tim2_compare():
    r = run("fw_embassy_time")
    _check_embassy(r)


def _check_embassy(r):
    ls = lines(r)
    c = line_char_time(r)
    start = ls[0][2]                       # TIM2 starts right after the banner's TC
    seen = []
    for text, t0, _ in ls[1:-2]:
        m = re.fullmatch(rb"(fast|slow) #\d+ at (\d+) ms\r\n", text)
        assert m, text
        ms = int(m[2])
        seen.append(ms)
        # the task runs at its deadline (within ~30 us of wakeup and polling)
        assert ms / 1000 + c <= t0 - start <= ms / 1000 + c + 30e-6, (text, t0 - start)
    assert seen == [10, 20, 25, 30, 40, 50, 75]


def test_mbed_vectors_in_sram_and_ten_ticks():
    r = run("fw_mbed_vectors")
    _check_mbed(r)


def _check_mbed(r):
    ls = lines(r)
    assert ls[0][0] == b"mbed: vtor at reset=0x00000000 copy same=1 in sram=1 installed=1\r\n"
    assert ls[2][0] == b"ticks ram=10 flash=0\r\n"
    c = line_char_time(r)
    gap = ls[2][1] - ls[1][2]
    assert 0.010 + c <= gap <= 0.010 + c + 20e-6, gap


def test_uart_dma_block_goes_out_at_the_baud_rate():
    """The data path of DMA1 channel 7 -> USART2 TDR (interrupts aside)."""
    _check_dma_block(run("fw_uart_dma"))


def _check_dma_block(r):
    ls = lines(r)
    assert ls[1][0] == b"DMA block 1: 0123456789abcdefghijklmnopqrstuvwxyz\r\n"
    c = line_char_time(r)
    times = [t for t, _ in r.timeline]
    first, n = len(ls[0][0]), len(ls[1][0])
    gaps = {round(b - a, 9) for a, b in zip(times[first:first + n], times[first + 1:first + n])}
    assert gaps == {round(c, 9)}
    # the block starts as soon as DMAT is set after the banner's TC
    assert ls[1][1] - ls[0][2] == pytest.approx(c, abs=20e-6)


def test_uart_dma_complete_interrupts_then_usart_tc():
    r = run("fw_uart_dma")
    assert b"dma: ht=1 tc=1 te=0 usart_tc=1 cndtr=0 dmat=0\r\n" in r.uart
    assert r.uart.endswith(b"dma: done\r\n")
    ls = lines(r)
    # the report follows the block's last stop bit (USART TC) without a timeout
    c = line_char_time(r)
    assert ls[2][1] - ls[1][2] == pytest.approx(c, abs=20e-6)


def test_button_polled_and_debounced():
    r = run("fw_button_poll")
    ls = lines(r)
    assert ls[0][0] == b"button: B1 idle=1 PUPDR13=1\r\n"
    events = [(m[1], int(m[2]), int(m[3]), t0) for text, t0, _ in ls
              if (m := re.fullmatch(rb"(pressed|released) at (\d+) ms \(accepted at (\d+) ms\)\r\n",
                                    text))]
    assert [(k, at) for k, at, _, _ in events] == [
        (b"pressed", 200), (b"released", 350), (b"pressed", 600), (b"released", 650)]
    c = line_char_time_hsi()
    for _, at, accepted, t0 in events:
        assert accepted == at + 19
        # printed on the 20th 1 ms sample of the new level
        assert t0 == pytest.approx(accepted / 1000 + c, abs=50e-6)


def line_char_time_hsi() -> float:
    return char_time(69, 8_000_000)


def test_i2c_bitbang_sees_pullups_and_nack():
    r = run("fw_i2c_bitbang")
    ls = lines(r)
    assert ls[2][0] == b"i2c: addr 0x50 W: NACK\r\n"
    # 112 probes of start + 9 clocks + stop at a 5 us half period: >= 12.88 ms of delays
    c = line_char_time_hsi()
    scan = ls[4][1] - c - ls[3][2]
    assert 0.01288 <= scan <= 0.025, scan


# ---- every clock configuration --------------------------------------------------------

_DELAY_CHECKS = {
    "fw_cube_bitband": lambda r: _check_cube(r),
    "fw_chibios_clock": _check_chibios_sleep,
    "fw_embassy_time": _check_embassy,
    "fw_mbed_vectors": _check_mbed,
    "fw_uart_dma": _check_dma_block,
}


def _check_cube(r):
    ls = lines(r)
    c = line_char_time(r)
    gap = ls[3][1] - ls[2][2]
    assert 0.100 + c <= gap <= 0.101 + c + 20e-6, gap


@pytest.mark.parametrize("family, name", [(f, n) for f, ns in CLOCK_VARIANTS.items() for n in ns])
def test_every_clock_configuration_matches_the_clock_tree(family, name):
    r = run(name)
    text = r.uart.decode()
    pclk1 = int(re.search(r"PCLK1=(\d+)", text)[1])
    m = re.search(r"SYSCLK=(\d+)", text)
    if m:
        assert int(m[1]) == r.machine.clocks["SYSCLK"]
    assert pclk1 == r.machine.clocks["PCLK1"]
    c = line_char_time(r)
    # a polled line is back to back: every character after the first two is one
    # character time after the previous one
    first = lines(r)[0][0]
    times = [t for t, _ in r.timeline[1:len(first)]]
    gaps = {round(b - a, 9) for a, b in zip(times, times[1:])}
    assert gaps == {round(c, 9)}, (name, gaps, c)
    _DELAY_CHECKS[family](r)


def test_variants_really_differ():
    """The character times differ per clock tree (BRR rounding), as on the chip."""
    expect = {"fw_cube_bitband": char_time(313, 36_000_000),
              "fw_cube_bitband_48": char_time(208, 24_000_000),
              "fw_chibios_clock": char_time(278, 32_000_000),
              "fw_chibios_clock_hsi": char_time(69, 8_000_000)}
    for name, c in expect.items():
        assert line_char_time(run(name)) == pytest.approx(c, rel=1e-12)
    assert len({round(c, 12) for c in expect.values()}) == 4


@pytest.mark.parametrize("name", ["fw_embassy_time_hsi", "fw_button_poll", "fw_chibios_clock_hsi",
                                  "fw_mbed_vectors_hsi", "fw_i2c_bitbang"])
def test_fast_forward_changes_nothing(name):
    """Sleeping (WFI/WFE) and polling skips give the same bytes at the same times."""
    limit, kwargs = FIXTURES[name]
    slow = run_firmware(name, limit, fast_forward=False, **kwargs)
    fast = run(name)
    assert slow.uart == fast.uart and slow.timeline == fast.timeline
    assert slow.result.instructions == fast.result.instructions
