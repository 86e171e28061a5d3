"""Code a debugger programs into flash after the image was loaded (the simulated
probe's path: the board starts blank, pyOCD's flash algorithm writes the firmware) gets
what loaded code gets, and code written over loses what the old code had: the unmask
and SEV sites (``sim.unmask``) and the CCR trap sites (``sim.traps``), in the native
count hook's bitmap and as code hooks (``sim.sites``)."""
from __future__ import annotations

from pathlib import Path

import pytest

from hwut.backends.image import load
from hwut.sim.boards import board
from hwut.sim.machine import Machine

BUILD = Path(__file__).resolve().parents[2] / "fixtures" / "build"


def _segments(name: str) -> list[tuple[int, bytes]]:
    return [(s.address, s.data) for s in load(BUILD / f"{name}.elf").segments]


def _program(machine: Machine, segments: list[tuple[int, bytes]]) -> None:
    """As the flash algorithm leaves it: the bytes in flash, then the debug core's look
    at the changed code (``Machine.watch_code``) and a reset."""
    for address, data in segments:
        memory = machine.bus.memory_at(address)
        assert memory is not None
        memory.write(address, data)
    machine.watch_code(segments)
    machine.reset()


def _unmask_sites(machine: Machine) -> int:
    return machine.sites.owned("unmask") + machine.sites.owned("sev")


@pytest.mark.parametrize("native_sites", [None, False])
def test_programming_again_keeps_one_set_of_sites(native_sites):
    """Each programming of the same code would otherwise add its sites again: a Python
    call per hit, more with every job, on whatever code is there by then."""
    machine = Machine(board("nucleo-f303re"), precharge=False, native_sites=native_sites)
    machine.load([])
    rtos = _segments("fw_rtos")
    _program(machine, rtos)
    sites, hooks = _unmask_sites(machine), machine.sites.code_hooks
    assert sites > 0
    assert hooks == (0 if machine.sites.native else sites)  # linked at 0x08000000: one view
    for _ in range(3):
        _program(machine, rtos)
    assert (_unmask_sites(machine), machine.sites.code_hooks) == (sites, hooks)
    _program(machine, [(a, b"\xff" * len(d)) for a, d in rtos])  # erased
    assert (_unmask_sites(machine), machine.sites.code_hooks) == (0, 0)


def _trap_sites(machine: Machine) -> int:
    return sum(machine.sites.owned(kind) for kind in ("divide", "multiword", "align",
                                                      "coprocessor"))


def test_traps_work_in_programmed_code_and_leave_replaced_code():
    """fault_div0 programmed after load traps its divisions (CCR.DIV_0_TRP) as when
    loaded; programmed over by hello, no trap hook is left on hello's code."""
    uart = bytearray()
    machine = Machine(board("nucleo-f303re"), precharge=False,
                      uart_out=lambda name, data: uart.extend(data))
    machine.load([])
    _program(machine, _segments("fault_div0"))
    result = machine.run(0.1)
    assert bytes(uart) == (BUILD.parent / "expected" / "fault_div0.txt").read_bytes()
    assert any("division by zero" in f for f in result.faults), result.faults
    assert machine.traps.hooks == {"divide": True}
    sites = _trap_sites(machine)
    _program(machine, _segments("hello"))
    # off the old code; wanted again on the new (the reset before programming also denies
    # the FPU again, so its trap may be wanted too)
    assert machine.traps.hooks.get("divide") is False and _trap_sites(machine) == 0
    uart.clear()
    machine.run(machine.clock.seconds() + 0.05)
    assert uart.startswith(b"HWUT hello from NUCLEO-F303RE\r\n")
    assert _trap_sites(machine) < sites  # hello has no division sites
