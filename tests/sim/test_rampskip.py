"""The ramp skip (``sim.rampskip``, sim/native/rampskip.c): a loop waiting on a
free-running timer is skipped to the turn that reads its exit tick, and the
run is the one executing every turn gives, cycle for cycle and register for
register, whatever the loop's shape (``fixtures/src/ramp_waits.c``: a call per
turn, signed and unsigned differences, an inclusive bound, a wait for one exact
value, across the counter's 32-bit wrap, and shapes it refuses)."""
from __future__ import annotations

import pytest
from elftools.elf.elffile import ELFFile
from elftools.elf.sections import SymbolTableSection
from unicorn import arm_const as A

from hwut.backends.image import load
from hwut.sim.boards import board
from hwut.sim.machine import Machine
from hwut.sim.rampskip import (
    FLAGS_SUB,
    SITE_MOVED,
    SITE_READY,
    SITE_REFUSED,
    Affine,
    Moved,
    Recipe,
)

from .conftest import BUILD, expected, run_firmware

REGISTERS = [getattr(A, f"UC_ARM_REG_R{i}") for i in range(13)] + [
    A.UC_ARM_REG_SP, A.UC_ARM_REG_LR, A.UC_ARM_REG_PC, A.UC_ARM_REG_XPSR, A.UC_ARM_REG_PRIMASK]


def _machine(name: str, **machine_args) -> Machine:
    m = Machine(board("nucleo-f303re"), **machine_args)
    m.load([(s.address, s.data) for s in load(BUILD / f"{name}.elf").segments])
    return m


def _state(m: Machine) -> tuple:
    ram = bytes(m.uc.mem_read(0x2000_0000, 0x1_0000))
    return tuple(m.uc.reg_read(r) for r in REGISTERS) + (m.counter.count, ram)


def _symbol(name: str) -> int:
    with open(BUILD / "ramp_waits.elf", "rb") as f:
        table = ELFFile(f).get_section_by_name(".symtab")
        assert isinstance(table, SymbolTableSection)
        (symbol,) = table.get_symbol_by_name(name)
        return symbol["st_value"] & ~1


def test_ramp_waits_prints_exactly_what_running_every_turn_prints():
    r = run_firmware("ramp_waits", 0.1)
    assert r.uart == expected("ramp_waits"), r.uart.decode(errors="replace")
    assert r.machine.ramp is not None and r.machine.ramp.state.skips > 100


@pytest.mark.parametrize("name, step_s, limit_s", [
    ("ramp_waits", 37e-6, 0.03),            # stops fall inside the waits, at odd cycles
    ("speed_rtx_ticker", 53e-6, 0.012),
])
@pytest.mark.parametrize("mode", [{}, {"precharge": False}, {"timing": "block"}])
def test_registers_memory_and_count_match_the_run_turn_by_turn_at_every_stop(
        name, step_s, limit_s, mode):
    """Stopped hundreds of times, mid-wait included: the skipping machine and one that
    runs every turn (no read cache, no idle or ramp skip) agree on every register,
    the whole RAM and the cycle count at each stop."""
    skipping = _machine(name, **mode)
    stepping = _machine(name, fast_forward=False, **mode)
    t = 0.0
    while t < limit_s:
        t += step_s
        skipping.run(t)
        stepping.run(t)
        assert _state(skipping) == _state(stepping), f"at {t:.6f} s"
    assert skipping.ramp is not None and skipping.ramp.state.skips > 10


def test_the_waits_recipes_describe_the_code():
    m = _machine("ramp_waits")
    m.run(0.01)
    ramp = m.ramp
    assert ramp is not None
    # Mbed's wait_us: the turn begins at the call; r1 = us, r2 = start
    head = _symbol("wait_call") + 0xA
    recipe = ramp.analyse(head, 7)
    assert recipe == Recipe(
        address=Affine(0x4000_0024), size=4, cond=3, flags_kind=FLAGS_SUB,
        a=Affine(x=1, terms=((2, -1),)), b=Affine(terms=((1, 1),)),
        outs=((0, Affine(x=1)), (3, Affine(x=1, terms=((2, -1),)))))
    # met inside the called function (LR back in the loop): the turn begins at the call
    assert ramp.analyse(_symbol("now_us"), 7, (head + 4) | 1) == Moved(head)
    # a base address in a register the loop leaves alone; a signed compare (BLT)
    deadline = ramp.analyse(_symbol("wait_deadline.constprop.0") + 0xA, 4)
    assert isinstance(deadline, Recipe)
    assert deadline.address == Affine(0x24, terms=((1, 1),)) and deadline.cond == 11
    # a bit of the counter (LSLS) and a 16-bit difference (UXTH) are not described
    assert ramp.analyse(_symbol("wait_bit") + 4, 3) is None
    assert ramp.analyse(_symbol("wait_tim3.constprop.0") + 0xA, 5) is None


def test_sites_the_engine_met_are_answered_and_forgotten_when_flash_changes():
    m = _machine("ramp_waits")
    m.run(0.02)
    ramp = m.ramp
    assert ramp is not None
    states = {site.state for site in ramp.state.sites}
    assert {SITE_READY, SITE_REFUSED, SITE_MOVED} <= states
    m._code_changed()   # what programming the flash calls
    assert {site.state for site in ramp.state.sites} == {0}
    m.run(0.04)   # met again, answered again
    assert SITE_READY in {site.state for site in ramp.state.sites}
