"""Interrupt lines raised at a known cycle by the native hook (``sim.signals.LineAtCycle``,
``ExceptionModel.raise_line_at``, ``lines_due`` in sim/native/counter.c): a timer
whose next event would only raise its interrupt (Mbed's us-ticker: a TIM2 compare
match with CC1IE) has it raised, and its handler entered, without the engine
stopping for a clock event; the timer catches up with its flags at its next access.
The run is the one the clock event gives, and the one the Python reference gives."""
from __future__ import annotations

import pytest
from elftools.elf.elffile import ELFFile
from elftools.elf.sections import SymbolTableSection

from hwut.backends.image import load
from hwut.sim.boards import board
from hwut.sim.core.cpustate import NONE_CYCLE, PENDS
from hwut.sim.core.exceptions import IRQ_BASE
from hwut.sim.machine import Machine

from .conftest import BUILD, expected, run_firmware

RTX = "speed_rtx_ticker"
TIM2_IRQ = 28


def _symbol(name: str, symbol: str) -> int:
    with open(BUILD / f"{name}.elf", "rb") as f:
        table = ELFFile(f).get_section_by_name(".symtab")
        assert isinstance(table, SymbolTableSection)
        found = table.get_symbol_by_name(symbol)
        assert found, symbol
        return found[0]["st_value"]


def _word(m: Machine, address: int) -> int:
    return int.from_bytes(bytes(m.uc.mem_read(address, 4)), "little")


def _state(m: Machine) -> tuple:
    """What the firmware and the models hold: RAM, TIM2's registers, the NVIC's bits."""
    tim2 = m.peripherals["TIM2"]
    exc = m.exc
    return (bytes(m.uc.mem_read(0x2000_0000, 0x1_0000)),
            tuple(tim2.read(off, 4) for off in (0x00, 0x0C, 0x10, 0x24, 0x34)),
            exc.pending, exc.active, exc.levels, exc.event_register)


def test_the_us_ticker_interrupts_are_raised_in_c():
    """Every TIM2 compare interrupt of the us-ticker (one per 250 us) is raised by the
    native hook: the firmware counts as many events in its handler as were raised."""
    r = run_firmware(RTX, 0.32)
    assert r.uart == expected(RTX)
    events = _word(r.machine, _symbol(RTX, "events"))
    assert events == 1279   # one per 250 us from the ticker's start, a little after reset
    assert r.machine.state.exc.pends_fired == events


@pytest.mark.parametrize("machine_args", [{}, {"precharge": False}],
                         ids=["precharged", "counted"])
def test_the_run_is_the_one_clock_events_give(monkeypatch, machine_args):
    """Instructions, cycles slept, when each byte left, RAM, TIM2's registers and the
    NVIC's state: the same as with the clock event raising each interrupt."""
    native = run_firmware(RTX, 0.32, **machine_args)
    monkeypatch.setattr(Machine, "_line_at_cycle", lambda self, out: None)
    events = run_firmware(RTX, 0.32, **machine_args)
    assert events.machine.state.exc.pends_fired == 0
    assert (native.result.instructions, native.result.slept_cycles) == \
        (events.result.instructions, events.result.slept_cycles)
    assert native.timeline == events.timeline
    assert _state(native.machine) == _state(events.machine)


def test_an_alarm_raised_in_c_wakes_an_executor_asleep_in_wfe(monkeypatch):
    """Embassy's time driver: the TIM2 alarm's interrupt wakes the executor from WFE
    (the run loop raises the line while the core sleeps) and is raised in C while it
    runs; cycles slept and when each line left are those of the clock events."""
    native = run_firmware("fw_embassy_time", 0.5)
    assert native.uart == expected("fw_embassy_time")
    assert native.machine.state.exc.pends_fired == 7
    monkeypatch.setattr(Machine, "_line_at_cycle", lambda self, out: None)
    events = run_firmware("fw_embassy_time", 0.5)
    assert (native.result.instructions, native.result.slept_cycles) == \
        (events.result.instructions, events.result.slept_cycles)
    assert native.result.slept_cycles > 0
    assert native.timeline == events.timeline
    assert _state(native.machine) == _state(events.machine)


def test_the_python_reference_gives_the_same_run():
    """The pure Python machine (counter, exception entry, clock events): the reference."""
    native = run_firmware(RTX, 0.012)
    python = run_firmware(RTX, 0.012, native=False)
    assert native.machine.state.exc.pends_fired > 40
    assert python.machine.state.exc.pends_fired == 0
    assert native.result.instructions == python.result.instructions
    assert native.uart == python.uart
    assert _state(native.machine) == _state(python.machine)


def _armed_machine(case: str) -> tuple[Machine, int]:
    m = Machine(board("nucleo-f303re"))
    m.load([(s.address, s.data) for s in load(BUILD / f"{RTX}.elf").segments])
    exc, irq = m.exc, 5
    if case == "line already up":
        exc.set_irq_level(irq, True)
        exc.pending = 0
    elif case == "already pending":
        exc.pending |= 1 << (IRQ_BASE + irq)
    elif case == "sevonpend":
        exc.sevonpend = True
    exc.event_register = False
    slot = exc.claim_line_slot()
    assert slot is not None
    cycle = m.counter.count + 100
    exc.raise_line_at(slot, irq, cycle)
    return m, cycle


@pytest.mark.parametrize("case", ["line low", "line already up", "already pending",
                                  "sevonpend"])
def test_c_raises_a_line_as_the_python_rule_does(case):
    """``lines_due`` (C, inside the engine) against ``pends_catch_up`` (Python): the
    pending and level bits, the event register, the slots afterwards. IRQ 5 is not
    enabled in the NVIC, so nothing is entered either way."""
    in_c, cycle = _armed_machine(case)
    while in_c.counter.count <= cycle:   # the engine runs past the cycle
        in_c._run_to(cycle + 1000)
    in_py, _ = _armed_machine(case)
    in_py.exc.pends_catch_up(cycle)

    def seen(m: Machine) -> tuple:
        s = m.state.exc
        return (m.exc.pending, m.exc.levels, m.exc.active, m.exc.event_register,
                s.pends_fired, s.pend_next, tuple(s.pend_at))

    assert seen(in_c) == seen(in_py)
    assert seen(in_c)[4:] == (1, NONE_CYCLE, (NONE_CYCLE,) * PENDS)
    assert in_c.exc.levels >> (IRQ_BASE + 5) & 1


def test_a_cancelled_line_is_not_raised():
    m, cycle = _armed_machine("line low")
    m.exc.cancel_line(0)
    while m.counter.count <= cycle:
        m._run_to(cycle + 1000)
    assert m.state.exc.pends_fired == 0
    assert not m.exc.pending >> (IRQ_BASE + 5) & 1
    assert m.exc.next_line is None


def test_the_count_hook_of_images_with_sites_raises_lines_too():
    """``hwut_count_sites`` (the count hook of images with trap or unmask sites) raises
    the lines due as ``hwut_count`` does, without the engine stopping for them: the
    us-ticker counted with either hook takes as many runs of the engine, and the
    same run."""
    def run(with_sites: bool) -> tuple[int, int, bytes]:
        m = Machine(board("nucleo-f303re"), precharge=False)
        m.load([(s.address, s.data) for s in load(BUILD / f"{RTX}.elf").segments])
        if with_sites:
            m.counter.count_sites()
            assert m.counter.looks_at_sites
        runs, start = [0], m.uc.emu_start

        def counted_start(*args, **kwargs):
            runs[0] += 1
            return start(*args, **kwargs)

        m.uc.emu_start = counted_start  # type: ignore[method-assign]
        r = m.run(0.1)
        assert m.state.exc.pends_fired > 300
        return runs[0], r.instructions, bytes(m.uc.mem_read(0x2000_0000, 0x1_0000))

    assert run(True) == run(False)
