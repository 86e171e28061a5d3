"""The image's sites (``sim.sites``): looked at by the native count hook from a
bitmap, they must fire exactly where, when and as often as a code hook on each
site does (``native_sites=False``, the way it was done before, kept as the
reference), in every timing mode and in both views of flash, with the same run."""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from hwut.backends.image import load
from hwut.sim.boards import board
from hwut.sim.machine import Machine
from hwut.sim.nativelib import LIB

from .conftest import BUILD
from .test_precharge import FLASH

native_only = pytest.mark.skipif(LIB is None, reason="the native counter is not built")

#: Fixtures with sites: unmask (CPSIE, MSR BASEPRI), SEV, and the traps' (division,
#: unaligned and multi-word accesses, FP while CPACR denies it).
WITH_SITES = ["fault_bits", "fw_rtos", "blink", "core_exceptions", "fault_div0",
              "fault_unaligned", "float", "uart_irq", "speed_rtos_idle"]
#: Sites that never run: float grants the FPU before its first FP instruction.
NONE_RUN = {"float"}
MODES = {"precharged": {}, "counted": {"precharge": False}}
#: (owner, the address it ran at, the count then, the limit then)
Fire = tuple[str, int, int, int]


def _logged(m: Machine, log: list[Fire]) -> None:
    """Every site callback of ``m`` logs its call (set before ``load``: the owners
    hand their callbacks to the site table when they place a site)."""
    def wrap(owner: str, callback: Callable[..., Any]) -> Callable[..., Any]:
        def logged(uc: Any, address: int, size: int, data: Any) -> Any:
            log.append((owner, address, m.counter.count, m.counter.limit))
            return callback(uc, address, size, data)
        return logged
    m.unmask._after_unmask = wrap("unmask", m.unmask._after_unmask)  # type: ignore[method-assign]
    m.unmask._on_sev = wrap("sev", m.unmask._on_sev)  # type: ignore[method-assign]
    m.traps._on_divide = wrap("divide", m.traps._on_divide)  # type: ignore[method-assign]
    m.traps._on_access = wrap("access", m.traps._on_access)  # type: ignore[method-assign]
    m.traps._on_coprocessor = wrap(  # type: ignore[method-assign]
        "coprocessor", m.traps._on_coprocessor)


def _run(name: str, limit_s: float, **machine_args: Any) -> tuple[Machine, list[Fire], Any, bytes]:
    uart = bytearray()
    m = Machine(board("nucleo-f303re"), uart_out=lambda _n, data: uart.extend(data),
                **machine_args)
    # precharging steps aside where it does not pay unless sites have code hooks (they
    # would cost more on both views): here the reference steps aside as the bitmap
    # does, so that both see the same views at the same times (where a waiting loop's
    # turns are skipped, and their sites with them, depends on the views)
    m.precharge.other_code_hooks = lambda: False
    log: list[Fire] = []
    _logged(m, log)
    m.load([(s.address, s.data) for s in load(BUILD / f"{name}.elf").segments])
    m.uart_receive("USART2", b"hey\r", 0.01)
    result = m.run(limit_s, wall_limit_s=120)
    return m, log, result, bytes(uart)


@native_only
@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("name", WITH_SITES)
def test_sites_fire_as_their_code_hooks_did(name, mode):
    m, log, result, uart = _run(name, 0.1, **MODES[mode])
    ref, ref_log, ref_result, ref_uart = _run(name, 0.1, native_sites=False, **MODES[mode])
    assert m.sites.native and m.sites.code_hooks == 0
    assert not ref.sites.native
    assert bool(log) != (name in NONE_RUN), "the fixture's sites run"
    assert log == ref_log
    assert (result, uart, m.notes) == (ref_result, ref_uart, ref.notes)
    assert m.sites.fired == len({(a, c) for _, a, c, _ in log})  # one call per site visit


@native_only
def test_sites_fire_in_both_views_as_their_code_hooks_did(monkeypatch):
    """Precharged, a site runs counted at the alias; in a counted region or while
    precharging is suspended at its own address too. Suspended again and again
    here, fault_bits' sites fire in both views, as their hooks did."""
    from hwut.sim import precharge

    monkeypatch.setattr(precharge, "LOOK", 20_000)
    monkeypatch.setattr(precharge, "SUSPEND_MIN", 30_000)
    monkeypatch.setattr(precharge, "SUSPEND_MAX", 30_000)
    monkeypatch.setattr(precharge, "PAYS_PRECHARGED", 0)
    m, log, result, uart = _run("fault_bits", 0.1)
    ref, ref_log, ref_result, ref_uart = _run("fault_bits", 0.1, native_sites=False)
    assert m.precharge.suspensions > 1
    views = {address >= FLASH for _, address, _, _ in log}
    assert views == {True, False}, "fired at the alias and at the canonical address"
    assert log == ref_log
    assert (result, uart) == (ref_result, ref_uart)


@native_only
@pytest.mark.parametrize("name", ["fault_unaligned", "fault_div0"])
def test_the_python_counter_fires_the_sites_as_the_native_one(name):
    """The Python fallback keeps a code hook per site: the same calls at the same
    counts (without the skips of waiting loops, which the two do differently)."""
    _, log, result, uart = _run(name, 0.02, precharge=False, fast_forward=False)
    _, py_log, py_result, py_uart = _run(name, 0.02, native=False, fast_forward=False)
    assert log
    assert [f[:3] for f in log] == [f[:3] for f in py_log]
    assert (result.instructions, result.faults, uart) == (py_result.instructions,
                                                          py_result.faults, py_uart)


@pytest.mark.parametrize("native", [True, False] if LIB is not None else [False])
def test_block_timing_hooks_every_site(native):
    """Block timing has no per-instruction hook to look at a bitmap: each site keeps a
    code hook, and the traps fire as with exact timing."""
    m, log, result, _ = _run("fault_div0", 0.1, timing="block", native=native)
    assert not m.sites.native and m.sites.code_hooks > 0
    assert any(owner == "divide" for owner, *_ in log)
    assert any("division by zero" in f for f in result.faults), result.faults


@native_only
@pytest.mark.parametrize("mode", MODES)
def test_only_images_with_sites_pay_for_the_look(mode):
    """The look at the bitmap costs every counted instruction (~6 % of a compute
    loop): the count hook makes it only once the image has a site."""
    plain, _, _, _ = _run("compute", 0.01, **MODES[mode])
    assert not plain.counter.looks_at_sites and plain.state.sites_end == 0
    rtos, log, _, _ = _run("fw_rtos", 0.1, **MODES[mode])
    assert rtos.counter.looks_at_sites and rtos.state.sites_end > 0x0800_0000
    assert log


def test_native_sites_need_the_native_exact_counter():
    with pytest.raises(ValueError):
        Machine(board("nucleo-f303re"), timing="block", native_sites=True)


# Linked at 0x08000000:
#   movs r0, #0
#   loop: cmp r0, #0; it eq; seveq; adds r0, #1; sev; b loop
IT_SEV_IMAGE = bytes.fromhex("00100020" "09000008" "0020" "0028" "08bf" "40bf" "0130" "40bf"
                             "f9e7")
IT_SEV = FLASH + 0x0E


@native_only
@pytest.mark.parametrize("mode", MODES)
def test_a_site_inside_an_it_block_fires_where_the_counter_stops(mode):
    """The engine cannot stop inside an IT block: a stop there is undone and the code
    hooks of the instruction run all the same, the instruction too. Stepped one
    instruction at a time, the counter stops before every instruction, the SEV in the
    IT block included: its site fires there, as its code hook did, and the plain SEV's
    does not until it runs."""
    logs = []
    for native_sites in (None, False):
        m = Machine(board("nucleo-f303re"), native_sites=native_sites, **MODES[mode])
        log: list[Fire] = []
        _logged(m, log)
        m.load([(FLASH, IT_SEV_IMAGE)])
        for _ in range(40):
            m.step()
        logs.append([(owner, m.precharge.canonical(a), count) for owner, a, count, _ in log])
    assert logs[0] == logs[1]
    assert {a for _, a, _ in logs[0]} == {IT_SEV, IT_SEV + 4}
