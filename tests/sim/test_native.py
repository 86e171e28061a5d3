"""The native module is optional for users, but where a C compiler exists the
install must have built it: otherwise every run silently takes the slow path."""
from __future__ import annotations

import ctypes
import os
import shutil
from pathlib import Path

import pytest

from hwut.sim import adc_native, mmio_cache, rampskip, timer_native
from hwut.sim.core import cpustate
from hwut.sim.nativelib import LIB


@pytest.mark.skipif(not (shutil.which("cc") or shutil.which("gcc")), reason="no C compiler here")
@pytest.mark.skipif(os.environ.get("HWUT_SIM_NATIVE") == "0", reason="native path switched off")
def test_native_module_was_built():
    assert LIB is not None, "hwut.sim._native is missing: reinstall with a C compiler (pip install -e .)"
    for symbol in ("hwut_count", "hwut_block", "hwut_intr", "hwut_mmio_read", "hwut_mmio_fill"):
        assert hasattr(LIB, symbol)


class _Field(ctypes.Structure):
    _fields_ = [("name", ctypes.c_char_p), ("offset", ctypes.c_uint32), ("size", ctypes.c_uint32)]


class _Layout(ctypes.Structure):
    _fields_ = [("name", ctypes.c_char_p), ("size", ctypes.c_uint32),
                ("n_fields", ctypes.c_uint32), ("fields", ctypes.POINTER(_Field))]


def _layouts(function: str) -> dict[str, tuple[int, list[tuple[str, int, int]]]]:
    """What C says of its structs: name -> (size, [(field, offset, size)])."""
    fn = getattr(LIB, function)
    fn.restype = ctypes.POINTER(_Layout)
    table, out, i = fn(), {}, 0
    while table[i].name:
        entry = table[i]
        out[entry.name.decode()] = (entry.size, [
            (entry.fields[k].name.decode(), entry.fields[k].offset, entry.fields[k].size)
            for k in range(entry.n_fields)])
        i += 1
    return out


def _mirror(cls: type[ctypes.Structure]) -> tuple[int, list[tuple[str, int, int]]]:
    return ctypes.sizeof(cls), [(name, getattr(cls, name).offset, getattr(cls, name).size)
                                for name, *_ in cls._fields_]


@pytest.mark.skipif(LIB is None, reason="the native module is not built")
@pytest.mark.parametrize("function, mirrors", [
    ("hwut_counter_layouts", cpustate.MIRRORS),
    ("hwut_mmio_layouts", {c.__name__: c for c in (mmio_cache._Slot, mmio_cache._Cache,
                                                  mmio_cache._Quiet, mmio_cache._Window,
                                                  mmio_cache._Native)}),
    ("hwut_ramp_layouts", {c.__name__: c for c in (rampskip.RampExpr, rampskip.RampSite,
                                                  rampskip.RampState)}),
    ("hwut_tim_layouts", {"TimerState": timer_native.TimerState}),
    ("hwut_adc_layouts", {c.__name__: c for c in (adc_native.AdcState, adc_native.AdcBank)}),
])
def test_every_ctypes_mirror_matches_the_c_struct_field_by_field(function, mirrors):
    """sizeof/offsetof of every field, exported by C, against the ctypes mirror: a field
    added, moved or resized on one side only fails here, not as a wrong count later."""
    native = _layouts(function)
    assert set(native) == set(mirrors)
    for name, cls in mirrors.items():
        assert _mirror(cls) == native[name], name


def test_a_model_that_raises_under_the_native_read_cache_stops_the_run_with_its_error():
    """ctypes prints and drops an exception raised in a callback from C; the bus keeps it,
    stops the engine and raises it from run(), as the engine's binding does for its own
    hooks, instead of the firmware going on with a made-up register value."""
    from hwut.backends.image import load
    from hwut.sim.boards import board
    from hwut.sim.machine import Machine

    build = Path(__file__).resolve().parents[2] / "fixtures" / "build"
    machine = Machine(board("nucleo-f303re"))
    if machine.bus._cache is None:
        pytest.skip("no native read cache in this build")
    machine.load([(s.address, s.data) for s in load(build / "hello.elf").segments])
    reads = 0
    original = machine.bus._mmio_read

    def failing(uc, address, size, user_data):
        nonlocal reads
        reads += 1
        if reads > 20:
            raise RuntimeError(f"model broke reading {address:#x}")
        return original(uc, address, size, user_data)

    machine.bus._mmio_read = failing
    with pytest.raises(RuntimeError, match="model broke reading"):
        machine.run(0.5)
    assert reads == 21 and machine.bus.failure is None  # raised once, then forgotten


# Linked at 0x08000000; the source, for reading (arm-none-eabi-as, then ld -Ttext=0x08000000):
#   reset:   SysTick LOAD=200, CTRL=7; CONTROL = 1 (unprivileged thread mode); isb
#   wait:    until the word at 0x20000000 is set;
#            cpsid i; PRIMASK -> 0x20000008 (unprivileged: the CPS is ignored, 0)
#            semihosting SYS_EXIT
#   systick: cpsid i; PRIMASK -> 0x20000004 (a handler is privileged: 1); cpsie i;
#            1 -> 0x20000000; SysTick off; bx lr
PRIVILEGE_IMAGE = bytes.fromhex(
    "0020002041000008000000000000000000000000000000000000000000000000"
    "000000000000000000000000000000000000000000000000000000006d000008"
    "1149c820486007200860012080f31488bff36f8f4ff0005210680028fad072b6"
    "eff31080906018200849abbe72b6eff310804ff00052506062b6012010600249"
    "002008607047000010e000e026000200")


@pytest.mark.parametrize("args", [{}, {"precharge": False}, {"native": False},
                                  {"timing": "block"}], ids=str)
def test_a_handler_entered_from_unprivileged_code_is_privileged_and_returns_unprivileged(args):
    """The engine caches privilege; an exception entered or returned from by the native
    hook must refresh it as the Python model does, or the handler's CPS is ignored."""
    from hwut.sim.boards import board
    from hwut.sim.machine import Machine

    m = Machine(board("nucleo-f303re"), **args)
    m.load([(0x0800_0000, PRIVILEGE_IMAGE)])
    result = m.run(0.01)
    assert result.exit_code == 0, result
    assert m.bus.read(0x2000_0004, 4) == 1, "CPSID in the handler was ignored"
    assert m.bus.read(0x2000_0008, 4) == 0, "CPSID in unprivileged thread mode took effect"
