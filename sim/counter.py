"""The instruction counter behind virtual time, and the brake that ends a slice.

Unicorn calls a hook before every instruction; the hook counts and stops the
engine once the count reaches ``limit``. Models may lower the limit at any
moment (an interrupt made pending by a register write is taken at the next
instruction). The native hook (``hwut_count`` in sim/native/counter.c) and the
Python hook behave the same; the Python one is only slower. Both keep the count
in the shared ``CpuState``.
"""
from __future__ import annotations

import ctypes

from unicorn import UC_HOOK_CODE, UC_HOOK_INTR, Uc
from unicorn.unicorn_py3 import unicorn as _ucpy

from .core.cpustate import CpuState, new_state
from .nativelib import LIB

NEVER = (1 << 63) - 1
_LIB = LIB


def _fn(name: str) -> int:
    return ctypes.cast(getattr(_ucpy.uclib, name), ctypes.c_void_p).value


class InstructionCounter:
    """Counts executed instructions of one Unicorn engine."""

    def __init__(self, uc: Uc, *, native: bool | None = None,
                 state: CpuState | None = None) -> None:
        use_native = _LIB is not None if native is None else native
        if use_native and _LIB is None:
            raise RuntimeError("the native counter is not built (sim._native missing)")
        self.native = use_native
        self._uc = uc
        self._c = state if state is not None else new_state()
        self._c.limit = NEVER
        if use_native:
            c = self._c
            c.stop = _fn("uc_emu_stop")
            c.reg_read, c.reg_write = _fn("uc_reg_read"), _fn("uc_reg_write")
            c.mem_read, c.mem_write = _fn("uc_mem_read"), _fn("uc_mem_write")
            self._handles = [self._add_native(UC_HOOK_CODE, "hwut_count")]
        else:
            uc.hook_add(UC_HOOK_CODE, self._python_hook)

    def _add_native(self, kind: int, function: str) -> ctypes.c_size_t:
        handle = ctypes.c_size_t()
        fn = ctypes.cast(getattr(_LIB, function), ctypes.c_void_p)
        err = _ucpy.uclib.uc_hook_add(self._uc._uch, ctypes.byref(handle), kind, fn,
                                      ctypes.byref(self._c), ctypes.c_uint64(1),
                                      ctypes.c_uint64(0))
        if err:
            raise RuntimeError(f"uc_hook_add for {function} failed: {err}")
        return handle

    def add_native_interrupts(self) -> None:
        """Let C handle exception returns (and report other interrupts in ``last_intno``)."""
        self._handles.append(self._add_native(UC_HOOK_INTR, "hwut_intr"))

    def _python_hook(self, uc: Uc, address: int, size: int, _user: object) -> None:
        c = self._c
        if c.count >= c.limit:
            uc.emu_stop()
            return
        c.count += 1

    @property
    def state(self) -> CpuState:
        return self._c

    def count_address(self) -> int:
        """Where the count lives (for native readers of time, such as the read cache)."""
        return ctypes.addressof(self._c)

    def cycles(self) -> int:
        return self._c.count

    @property
    def count(self) -> int:
        return self._c.count

    @count.setter
    def count(self, value: int) -> None:
        self._c.count = value

    @property
    def limit(self) -> int:
        return self._c.limit

    @limit.setter
    def limit(self, value: int) -> None:
        self._c.limit = value

    def stop_soon(self) -> None:
        """End the slice before the next instruction."""
        c = self._c
        if c.limit > c.count:
            c.limit = c.count

    def stop_at(self, cycle: int) -> None:
        c = self._c
        if cycle < c.limit:
            c.limit = max(cycle, c.count)
