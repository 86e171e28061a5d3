"""A timer's compare path taken in C (sim/native/tim.c, ``sim.timer_native``) while the
Python model (the reference) says C keeps its state: the SR clears, CCRx writes and
DIER rewrites of Mbed's us-ticker never reach Python, and every run is the one the
model alone gives (``Machine(native_timers=False)``): instructions, cycles slept,
when each byte left, RAM (the firmware's logs of its interrupt entries' cycles and
of its register reads), TIM2's registers and the NVIC's state."""
from __future__ import annotations

import collections
import struct

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hwut.backends.image import load
from hwut.sim.boards import board
from hwut.sim.bus import Bus
from hwut.sim.machine import Machine
from hwut.sim.nativelib import LIB

from .conftest import BUILD, expected, run_firmware
from .test_line_at_cycle import RTX, _state, _symbol, _word

pytestmark = pytest.mark.skipif(LIB is None, reason="the native module is not built")

SR, CCR1, DIER = 0x4000_0010, 0x4000_0034, 0x4000_000C
MODES = [{}, {"precharge": False}]
MODE_IDS = ["precharged", "counted"]


def _same(native, python) -> None:
    assert (native.result.instructions, native.result.slept_cycles) == \
        (python.result.instructions, python.result.slept_cycles)
    assert native.uart == python.uart
    assert native.timeline == python.timeline
    assert _state(native.machine) == _state(python.machine)


@pytest.mark.parametrize("machine_args", MODES, ids=MODE_IDS)
def test_mbed_us_ticker_runs_as_the_model_gives(machine_args):
    native = run_firmware(RTX, 0.32, **machine_args)
    python = run_firmware(RTX, 0.32, native_timers=False, **machine_args)
    assert native.uart == expected(RTX)
    _same(native, python)
    assert not python.machine.native_timers
    tim2 = native.machine.native_timers["TIM2"]
    events = _word(native.machine, _symbol(RTX, "events"))
    # per interrupt: SR cleared twice, CCR1 written, DIER rewritten
    assert tim2.writes >= 4 * (events - 10) and tim2.declined <= 10


def test_the_writes_that_stay_in_c_never_reach_python(monkeypatch):
    writes: collections.Counter[int] = collections.Counter()
    cached_write = Bus.cached_write

    def counted(self: Bus, address: int, size: int, value: int) -> None:
        writes[address] += 1
        cached_write(self, address, size, value)

    monkeypatch.setattr(Bus, "cached_write", counted)
    r = run_firmware(RTX, 0.32)
    assert r.uart == expected(RTX)
    events = _word(r.machine, _symbol(RTX, "events"))
    assert events == 1279
    # start-up's writes, and a few after the clock events of main's three reports
    assert writes[SR] + writes[CCR1] + writes[DIER] < 40


@pytest.mark.parametrize("name, limit", [
    ("tim_script", 0.5), ("ramp_waits", 0.3), ("fw_embassy_time", 0.5), ("timers", 0.5),
    ("capture_adc", 0.2), ("speed_blt_poll", 0.3), ("speed_rtos2_itm", 0.3),
    ("bootloader", 0.3),
])
@pytest.mark.parametrize("machine_args", MODES, ids=MODE_IDS)
def test_timer_fixtures_run_as_the_model_gives(name, limit, machine_args):
    _same(run_firmware(name, limit, **machine_args),
          run_firmware(name, limit, native_timers=False, **machine_args))


def test_tim_script_default_takes_the_native_path():
    r = run_firmware("tim_script", 0.5)
    assert r.uart == expected("tim_script")
    tim2 = r.machine.native_timers["TIM2"]
    assert tim2.writes > 1000


# -- generated scripts (fixtures/src/tim_script.c runs the one placed at SCRIPT) --------
SCRIPT_AT = 0x0807_F000
MAGIC = 0x534D_4954
OFFSETS = {
    "CR1": (0x00, st.sampled_from([0, 1, 0x81, 0x09, 0x11, 0x03, 0x05])),
    "DIER": (0x0C, st.sampled_from([0, 2, 4, 6, 1, 3, 0x202, 0x42])),
    "SR": (0x10, st.sampled_from([0, 0xFFFF_FFFD, 0xFFFF_FFFB, 0xFFFF_FFFE, 0xFFFF_FFFF,
                                  0xFFFF_FFF9, 0xFFFF_FDFF])),
    "EGR": (0x14, st.sampled_from([1, 2, 4, 0x40])),
    "CCMR1": (0x18, st.sampled_from([0, 0x08, 0x01, 0x800, 0x30, 0x3030])),
    "CNT": (0x24, st.integers(0, 3000)),
    "PSC": (0x28, st.sampled_from([0, 1, 7, 71])),
    "ARR": (0x2C, st.sampled_from([0xFFFF_FFFF, 999, 5000, 100, 0])),
    "CCR1": (0x34, st.integers(0, 6000)),
    "CCR2": (0x38, st.integers(0, 6000)),
}
#: Most scripts start as a us-ticker does, so that the native path has work to do.
PROLOGUE = [(0x28, 7, 0), (0x2C, 0xFFFF_FFFF, 0), (0x14, 1, 0), (0x10, 0, 0), (0x00, 1, 0),
            (0x34, 300, 0), (0x0C, 2, 0)]


@st.composite
def _step(draw: st.DrawFn) -> tuple[int, int, int]:
    offset, values = OFFSETS[draw(st.sampled_from(sorted(OFFSETS)))]
    # mostly the us-ticker's own writes: SR's clear, CCR1, DIER rewritten
    if draw(st.booleans()):
        offset, values = OFFSETS[draw(st.sampled_from(["SR", "CCR1", "DIER"]))]
    return offset, draw(values), draw(st.integers(0, 3000))


def _script(prologue: bool, steps: list[tuple[int, int, int]], ccr1_step: int,
            ccr2_step: int) -> bytes:
    steps = (PROLOGUE if prologue else []) + steps
    out = struct.pack("<4I", MAGIC, len(steps), ccr1_step, ccr2_step)
    return out + b"".join(struct.pack("<3I", *s) for s in steps)


def _run_script(script: bytes, **machine_args):
    spec = board("nucleo-f303re")
    uart = bytearray()
    m = Machine(spec, uart_out=lambda name, data: uart.extend(data), **machine_args)
    m.load([(s.address, s.data) for s in load(BUILD / "tim_script.elf").segments]
           + [(SCRIPT_AT, script)])
    r = m.run(0.15, wall_limit_s=120)
    return m, r, bytes(uart)


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(prologue=st.booleans(), steps=st.lists(_step(), max_size=24),
       ccr1_step=st.sampled_from([0, 1, 7, 50, 250, 1000]),
       ccr2_step=st.sampled_from([0, 3, 120, 700]), counted=st.booleans())
def test_generated_write_sequences_run_as_the_model_gives(prologue, steps, ccr1_step,
                                                          ccr2_step, counted):
    script = _script(prologue, steps, ccr1_step, ccr2_step)
    args = {"precharge": False} if counted else {}
    native_m, native_r, native_uart = _run_script(script, **args)
    python_m, python_r, python_uart = _run_script(script, native_timers=False, **args)
    assert (native_r.instructions, native_r.slept_cycles, native_r.cause) == \
        (python_r.instructions, python_r.slept_cycles, python_r.cause)
    assert native_uart == python_uart
    assert _state(native_m) == _state(python_m)
