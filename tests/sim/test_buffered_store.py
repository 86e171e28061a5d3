"""A store the write buffer takes gives an imprecise BusFault whatever the host does
around it: a slice that ends right after the store, a stop the debugger's thread
asks for between the store and its buffered fault, a debugger's single step onto
it, an exception due at the cycle after it. On the chip none of these turns it into a precise one (DHCSR halts and steps
do not change what the write buffer does); here each once did, the store's
completion (``Dispatch._buffered_store``) then stopping at the slice's brake before
it ran, so that the store was reported precise (PRECISERR | BFARVALID) and, in the
fixture's PRIMASK case, escalated to HardFault FORCED. That is the line one lab run
printed for fault_bits where the simulator alone prints ``pended, BusFault``."""
from __future__ import annotations

from collections.abc import Callable

import pytest
from elftools.elf.elffile import ELFFile
from elftools.elf.sections import SymbolTableSection
from unicorn import UC_HOOK_CODE, UC_HOOK_MEM_WRITE_UNMAPPED
from unicorn import arm_const as A

from hwut.backends.image import load
from hwut.sim.boards import board
from hwut.sim.core import exceptions as X
from hwut.sim.machine import Machine

from .conftest import BUILD, expected

FIXTURE = BUILD / "fault_bits.elf"


def _symbol(name: str) -> int:
    with FIXTURE.open("rb") as f:
        table = ELFFile(f).get_section_by_name(".symtab")
        assert isinstance(table, SymbolTableSection)
        return int(table.get_symbol_by_name(name)[0]["st_value"]) & ~1


#: The fixture's ``str r0, [r1]`` to 0x60000000 (nothing there: FMC bank 1), taken by
#: the write buffer.
STORE = _symbol("str_site")
MODES = [{}, {"precharge": False}, {"native": False}, {"timing": "block"}]
MASKED = b"IMPRECISERR masked: "


def _machine(**args) -> tuple[Machine, bytearray]:
    spec = board("nucleo-f303re")
    uart = bytearray()
    machine = Machine(spec, uart_out=lambda n, d: uart.extend(d) if n == spec.console else None,
                      **args)
    machine.load([(s.address, s.data) for s in load(FIXTURE).segments])
    return machine, uart


def _at_store(machine: Machine, uart: bytearray, action: Callable[[], None]) -> None:
    """Run ``action`` once, when the PRIMASK case's store is about to run (at the
    canonical address, or at its flash alias where precharging counts it)."""
    done = []

    def hook(_uc, _address, _size, _user) -> None:
        if not done and uart.endswith(MASKED):
            done.append(True)
            action()

    for at in (STORE, STORE - machine.board.soc.memory("flash").base):
        machine.uc.hook_add(UC_HOOK_CODE, hook, begin=at, end=at)


def _masked_line(uart: bytes) -> bytes:
    return next(line for line in uart.splitlines() if line.startswith(MASKED))


def _store_cycle(**args) -> int:
    """The count when the PRIMASK case's store is reached (its own hook order aside)."""
    machine, uart = _machine(**args)
    seen: list[int] = []
    _at_store(machine, uart, lambda: seen.append(machine.counter.count))
    machine.run(0.5, wall_limit_s=60)
    assert seen, "the store ran"
    return seen[0]


@pytest.mark.parametrize("args", MODES)
def test_a_slice_ending_right_after_the_store(args):
    """A clock event (a run's limit, a debugger's quantum, a timer) at each cycle
    around the store: the slice ends there, before or right after the store."""
    at = _store_cycle(**args)
    for end in range(at - 2, at + 4):
        machine, uart = _machine(**args)
        machine.clock.at_cycle(end, lambda: None)
        machine.run(0.5, wall_limit_s=60)
        assert bytes(uart) == expected("fault_bits"), (end - at, _masked_line(bytes(uart)))


@pytest.mark.parametrize("args", MODES)
def test_a_stop_asked_between_the_store_and_its_fault(args):
    """The probe's thread asks the core to stop (``DebugCore.access`` lowers the
    counter's limit: ``Counter.stop_soon``) while the engine is refusing the store:
    the store still completes through the write buffer."""
    machine, uart = _machine(**args)
    asked = []

    def refused(_uc, _access, address, _size, _value, _user) -> bool:
        if address == 0x6000_0000 and uart.endswith(MASKED):
            asked.append(machine.counter.count)
            machine.counter.stop_soon()
        return False

    machine.uc.hook_add(UC_HOOK_MEM_WRITE_UNMAPPED, refused)
    machine.run(0.5, wall_limit_s=60)
    assert asked
    assert bytes(uart) == expected("fault_bits"), _masked_line(bytes(uart))


@pytest.mark.parametrize("args", MODES)
def test_a_single_step_onto_the_store(args):
    """Halted before the store, one debugger step (``Machine.step``, DHCSR.C_STEP)
    retires it: the BusFault is imprecise and pending behind PRIMASK, nothing
    escalated, the PC past the store; run on, the output is the simulator's."""
    machine, uart = _machine(**args)

    def halt() -> None:   # as an FPB comparator does (``DebugCore._hit``)
        machine.halt_soon()
        machine.uc.emu_stop()

    _at_store(machine, uart, halt)
    result = machine.run(0.5, wall_limit_s=60)
    assert result.cause.name == "HALT"
    pc = machine.uc.reg_read(A.UC_ARM_REG_PC) & ~1
    assert pc in (STORE, STORE - 0x0800_0000)
    machine.step()
    faults = machine.exc.faults
    assert faults.cfsr == X.CFSR_IMPRECISERR, hex(faults.cfsr)
    assert faults.hfsr == 0
    assert machine.exc.is_pending(X.BUSFAULT) and not machine.exc.is_pending(X.HARDFAULT)
    after = machine.precharge.canonical(machine.uc.reg_read(A.UC_ARM_REG_PC)) & ~1
    if args.get("timing") == "block":   # a step ends at a block boundary, not before
        assert after != STORE
    else:
        assert after == STORE + 2
    machine.run(0.5, wall_limit_s=60)
    assert bytes(uart) == expected("fault_bits"), _masked_line(bytes(uart))


@pytest.mark.parametrize("args", MODES)
def test_an_exception_due_right_after_the_store(args):
    """SysTick wraps at the cycle after the store (the native hook takes it inside the
    engine, before the next instruction; PRIMASK holds it here): the store completes
    first, its BusFault stays imprecise and pending, and is taken when the mask goes,
    before SysTick (priority 0 beats SysTick's 15)."""
    for offset in range(0, 3):
        machine, uart = _machine(**args)
        _at_store(machine, uart,
                  lambda m=machine, k=offset: m.exc.set_systick(m.counter.count + k, 0))
        machine.run(0.5, wall_limit_s=60)
        assert _masked_line(bytes(uart)) == _masked_line(expected("fault_bits")), offset
