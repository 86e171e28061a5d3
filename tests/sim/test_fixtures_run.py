"""Every fixture prints exactly what the real board prints, at the right virtual time."""
from __future__ import annotations

import pytest

from hwut.sim.machine import StopCause

from .conftest import expected, run_firmware


@pytest.mark.parametrize("name, limit", [("hello", 1), ("blink", 1), ("hal_clock", 0.6),
                                         ("fault", 0.1), ("float", 0.2)])
def test_prints_exactly_the_expected_text(name, limit):
    r = run_firmware(name, limit)
    assert r.output == expected(name)


def test_uart_loop_prints_lines_in_order():
    r = run_firmware("uart_loop", 0.9)
    assert r.uart.startswith(expected("uart_loop"))


def test_hello_counts_every_100_ms_of_virtual_time():
    r = run_firmware("hello", 0.55)
    ends = [t for t, b in r.timeline if b == ord("\n")]
    # two header lines, then count=k completes at about 100k ms + 4.9 ms
    for k, t in enumerate(ends[2:]):
        assert abs(t - (0.1 * k + 0.0049)) < 0.0005, (k, t)
    assert len(ends) == 2 + 6


def test_uart_pacing_follows_the_baud_rate():
    r = run_firmware("hello", 0.01)
    times = [t for t, _ in r.timeline[:20]]
    gaps = {round(b - a, 9) for a, b in zip(times, times[1:])}
    # 115200 baud from PCLK1 = 36 MHz: BRR = 313, 10 bits a character
    assert gaps == {round(10 * 313 / 36e6, 9)}


def test_semihosting_exit_codes():
    r = run_firmware("semihost_exit", 1)
    assert r.result.cause is StopCause.EXIT and r.result.exit_code == 3
    assert r.semihosting == expected("semihost_exit")
    r0 = run_firmware("semihost_exit0", 1)
    assert r0.result.exit_code == 0


def test_compute_runs_to_its_exit_at_8_mhz():
    r = run_firmware("compute", 20)
    assert r.result.cause is StopCause.EXIT and r.result.exit_code == 0
    assert r.semihosting == expected("compute")
    assert r.result.seconds == pytest.approx(r.result.instructions / 8e6, rel=1e-9)


def test_fault_is_reported_with_its_registers():
    r = run_firmware("fault", 0.1)
    assert r.result.cause is StopCause.LIMIT
    assert any("0x60000000" in f for f in r.result.faults)
    assert any("bus fault" in n and "0x60000000" in n for n in r.machine.notes)


def test_echo_echoes_what_the_host_sends():
    r = run_firmware("echo", 0.1, uart_input=b"ab\rc", input_at_s=0.005)
    assert r.uart == expected("echo") + b"ab\r\nc"


def test_input_sent_before_the_firmware_reads_overruns_as_on_the_chip():
    r = run_firmware("echo", 0.1, uart_input=b"abc")
    assert r.uart == expected("echo") + b"a"


def test_spin_is_silent_until_the_limit():
    r = run_firmware("spin", 0.05)
    assert r.output == b"" and r.result.cause is StopCause.LIMIT
    assert r.result.seconds == pytest.approx(0.05)


def test_flash_programming_interface_from_firmware():
    r = run_firmware("flash_program", 1)
    assert r.semihosting == expected("flash_program") and r.result.exit_code == 0


def test_system_reset_dwt_grouping_faultmask_and_vtor():
    r = run_firmware("core_system", 1)
    assert r.semihosting == expected("core_system") and r.result.exit_code == 0
    assert any("system reset requested" in n for n in r.machine.notes)


def test_b1_pressed_and_released_on_schedule():
    import re
    r = run_firmware("button", 1.0, presses=(("B1", 0.5, 0.7),))
    m = re.fullmatch(rb"B1 idle=1\r\npressed at (\d+) ms\r\nreleased at (\d+) ms\r\n", r.uart)
    assert m, r.uart
    pressed, released = int(m[1]), int(m[2])
    # SysTick starts after the idle line (~1 ms of UART at 8 MHz): its count lags by that
    assert 497 <= pressed <= 499 and released - pressed == 200


def test_interrupt_driven_uart_with_wfi_under_primask():
    r = run_firmware("uart_irq", 0.05, uart_input=b"hello\r", input_at_s=0.01)
    assert r.uart == expected("uart_irq") + b"HELLO\r\n"


def test_timer_interrupts_counter_and_one_pulse():
    r = run_firmware("timers", 2)
    assert r.uart == expected("timers") and r.result.exit_code == 0
    first_line_end = next(t for t, b in r.timeline if b == ord("\n"))
    assert first_line_end == pytest.approx(0.5 + 16 * 10 / 115200, abs=0.0005)


def test_input_capture_from_pin_edges_and_adc_from_the_board():
    from hwut.backends.image import load
    from hwut.sim.boards import board
    from hwut.sim.machine import Machine

    from .conftest import BUILD
    out = bytearray()
    m = Machine(board("nucleo-f303re"), uart_out=lambda name, data: out.extend(data))
    m.load([(s.address, s.data) for s in load(BUILD / "capture_adc.elf").segments])
    for i, t in enumerate([0.010, 0.011, 0.0125, 0.0135, 0.015]):  # rising edges 2.5 ms apart
        m.drive_pin("GPIOA", 15, 1 - i % 2, t)
    assert m.run(0.1).exit_code == 0
    assert bytes(out) == expected("capture_adc")  # A0 reads the board's 2048


@pytest.mark.parametrize("fmt", ["elf", "bin", "hex"])
def test_bootloader_starts_the_application_at_its_offset(fmt):
    from .conftest import BUILD
    r = run_firmware(BUILD / f"bootloader.{fmt}", 1)
    assert r.uart == expected("bootloader") and r.result.exit_code == 0
    line_ends = [t for t, b in r.timeline if b == ord("\n")]
    # both boot lines on the wire (57 characters at 115200) plus the 20 ms window
    # timed on TIM2->CNT at 1 kHz
    assert line_ends[1] == pytest.approx(0.020 + 57 * 10 / 115200, abs=0.0005)


def test_core_exception_model():
    r = run_firmware("core_exceptions", 1)
    assert r.semihosting.endswith(b"core_exceptions: ALL OK\n"), r.semihosting.decode()
    assert r.result.exit_code == 0


@pytest.mark.parametrize("name, limit", [("blink", 0.6), ("hello", 0.35), ("float", 0.2)])
def test_same_firmware_same_log_every_run(name, limit):
    a, b = run_firmware(name, limit), run_firmware(name, limit)
    assert a.output == b.output and a.timeline == b.timeline
    assert a.result.instructions == b.result.instructions


@pytest.mark.parametrize("name, limit", [("hello", 0.06), ("blink", 0.3), ("core_exceptions", 1),
                                         ("echo", 0.02)])
def test_fast_forward_and_read_cache_are_exact(name, limit):
    """Skipped polling turns and cached reads change nothing but the wall time."""
    fast = run_firmware(name, limit, uart_input=b"hey\r", input_at_s=0.002)
    slow = run_firmware(name, limit, fast_forward=False, uart_input=b"hey\r", input_at_s=0.002)
    assert fast.output == slow.output and fast.timeline == slow.timeline
    assert fast.result.instructions == slow.result.instructions


@pytest.mark.parametrize("name, limit", [("core_exceptions", 1), ("blink", 0.3),
                                         ("systick_1mhz", 0.004), ("core_system", 1),
                                         ("uart_irq", 0.02), ("timers", 0.25), ("fw_rtos", 0.03),
                                         ("float", 0.03)])
def test_python_core_matches_the_native_one(name, limit):
    """The native hook (counting, SysTick, exception entry and return in C) and the
    Python model give the same run, cycle for cycle."""
    native = run_firmware(name, limit, uart_input=b"ok\r", input_at_s=0.01)
    python = run_firmware(name, limit, native=False, uart_input=b"ok\r", input_at_s=0.01)
    assert native.output == python.output and native.timeline == python.timeline
    assert native.result.instructions == python.result.instructions


@pytest.mark.parametrize("args", [{}, {"precharge": False}, {"timing": "block"}], ids=str)
@pytest.mark.parametrize("fmt", ["bin", "hex"])
def test_bin_and_hex_run_like_the_elf(fmt, args):
    """The same bytes at the same addresses: the same run, in every timing mode (a BIN is
    loaded at the flash's alias at 0, and runs at 0x08000000 once its reset vector is
    taken: the unmask and trap sites must be hooked where it runs)."""
    from .conftest import BUILD
    for name in ("blink", "uart_irq"):
        elf = run_firmware(name, 0.6, **args)
        other = run_firmware(BUILD / f"{name}.{fmt}", 0.6, **args)
        assert other.output == elf.output and other.timeline == elf.timeline
        assert other.result == elf.result


def test_itm_stimulus_writes_are_captured_as_a_trace():
    from hwut.backends.image import load
    from hwut.sim.boards import board
    from hwut.sim.machine import Machine

    from .conftest import BUILD
    trace = bytearray()
    m = Machine(board("nucleo-f303re"), trace_out=lambda port, data: trace.extend(data))
    m.load([(s.address, s.data) for s in load(BUILD / "itm_printf.elf").segments])
    result = m.run(1)
    assert result.cause is StopCause.EXIT
    assert bytes(trace) == expected("itm_printf")


def test_blink_toggles_ld2_every_250_ms():
    from hwut.backends.image import load
    from hwut.sim.boards import board
    from hwut.sim.machine import Machine

    from .conftest import BUILD
    changes = []
    m = Machine(board("nucleo-f303re"))
    m.watch_leds(lambda led, level, t: changes.append((led, level, round(t, 4))))
    m.load([(s.address, s.data) for s in load(BUILD / "blink.elf").segments])
    m.run(1.01)
    assert changes[0][1:] == (0, pytest.approx(0, abs=0.001))  # configured as output, low
    changes = changes[1:]
    assert [(led, level) for led, level, _ in changes] == [("LD2", 1), ("LD2", 0)] * 2
    assert [t for *_, t in changes] == pytest.approx([0.25, 0.5, 0.75, 1.0], abs=0.002)
