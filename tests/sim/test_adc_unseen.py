"""An ADC conversion whose end no interrupt or DMA sees is due at its cycle and
brought up to date at the next access (``sim.peripherals.adc``) instead of being a
clock event: the run must be the one the event gives, instruction for instruction
(an event at cycle N is seen from instruction N + 1 on)."""
from __future__ import annotations

import pytest
from unicorn import arm_const as A

from hwut.backends.image import load
from hwut.sim.boards import board
from hwut.sim.machine import Machine

from .conftest import BUILD

REGISTERS = [getattr(A, f"UC_ARM_REG_R{i}") for i in range(13)] + [
    A.UC_ARM_REG_SP, A.UC_ARM_REG_LR, A.UC_ARM_REG_PC, A.UC_ARM_REG_XPSR]


def _machine(events: bool, **machine_args) -> Machine:
    m = Machine(board("nucleo-f303re"), **machine_args)
    if events:   # every conversion's end a clock event, as before
        adc = m.peripherals["ADC1"]
        adc._unseen = lambda: False
    m.load([(s.address, s.data)
            for s in load(BUILD / "speed_rtx_ticker.elf").segments])
    return m


def _state(m: Machine) -> tuple:
    ram = bytes(m.uc.mem_read(0x2000_0000, 0x1_0000))
    return tuple(m.uc.reg_read(r) for r in REGISTERS) + (m.counter.count, ram)


@pytest.mark.parametrize("machine_args", [{}, {"precharge": False}, {"fast_forward": False}])
def test_conversions_nobody_watches_end_as_their_events_would(machine_args):
    unseen, events = _machine(False, **machine_args), _machine(True, **machine_args)
    t = 0.0
    while t < 0.01:
        t += 29e-6   # odd stops: inside conversions, inside the EOC poll
        unseen.run(t)
        events.run(t)
        assert _state(unseen) == _state(events), f"at {t:.6f} s"
    adc = unseen.peripherals["ADC1"]
    assert adc._event is None   # no conversion ever became an event


def test_enabling_the_interrupt_mid_conversion_makes_its_end_an_event():
    m = _machine(False)
    m.run(0.004)
    adc = m.peripherals["ADC1"]
    adc.write(0x08, 4, adc.read(0x08, 4) | 0x4)   # ADSTART, as firmware does
    assert adc._due is not None and adc._event is None
    due = adc._due[0]
    adc.write(0x04, 4, 0x4)                       # EOCIE
    assert adc._due is None and adc._event is not None and adc._event.when == due
