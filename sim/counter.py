"""The instruction counter behind virtual time, and the brake that ends a slice.

Unicorn calls a hook before every instruction; the hook counts and stops the
engine once the count reaches ``limit``. Models may lower the limit at any
moment (an interrupt made pending by a register write is taken at the next
instruction). The native hook (a C function in ``sim/_native``) and the Python
hook behave the same; the Python one is only slower.
"""
from __future__ import annotations

import ctypes
from pathlib import Path

from unicorn import UC_HOOK_CODE, Uc
from unicorn.unicorn_py3 import unicorn as _ucpy

from .nativelib import LIB

NEVER = (1 << 63) - 1


class _CounterStruct(ctypes.Structure):
    _fields_ = [("count", ctypes.c_uint64), ("limit", ctypes.c_uint64), ("stop", ctypes.c_void_p)]


_LIB = LIB


class InstructionCounter:
    """Counts executed instructions of one Unicorn engine."""

    def __init__(self, uc: Uc, *, native: bool | None = None) -> None:
        use_native = _LIB is not None if native is None else native
        if use_native and _LIB is None:
            raise RuntimeError("the native counter is not built (sim._native missing)")
        self.native = use_native
        self._uc = uc
        if use_native:
            stop = ctypes.cast(_ucpy.uclib.uc_emu_stop, ctypes.c_void_p).value
            self._c = _CounterStruct(0, NEVER, stop)
            handle = ctypes.c_size_t()
            fn = ctypes.cast(_LIB.hwut_count, ctypes.c_void_p)
            err = _ucpy.uclib.uc_hook_add(uc._uch, ctypes.byref(handle), UC_HOOK_CODE, fn,
                                          ctypes.byref(self._c), ctypes.c_uint64(1),
                                          ctypes.c_uint64(0))
            if err:
                raise RuntimeError(f"uc_hook_add for the native counter failed: {err}")
            self._handle = handle
        else:
            self._count = 0
            self._limit = NEVER
            uc.hook_add(UC_HOOK_CODE, self._python_hook)

    def _python_hook(self, uc: Uc, address: int, size: int, _user: object) -> None:
        if self._count >= self._limit:
            uc.emu_stop()
            return
        self._count += 1

    def count_address(self) -> int | None:
        """Where the native counter keeps its count (for native readers of time)."""
        return ctypes.addressof(self._c) if self.native else None

    def cycles(self) -> int:
        return self._c.count if self.native else self._count

    @property
    def count(self) -> int:
        return self._c.count if self.native else self._count

    @count.setter
    def count(self, value: int) -> None:
        if self.native:
            self._c.count = value
        else:
            self._count = value

    @property
    def limit(self) -> int:
        return self._c.limit if self.native else self._limit

    @limit.setter
    def limit(self, value: int) -> None:
        if self.native:
            self._c.limit = value
        else:
            self._limit = value

    def stop_soon(self) -> None:
        """End the slice before the next instruction."""
        self.limit = min(self.limit, self.count)

    def stop_at(self, cycle: int) -> None:
        self.limit = min(self.limit, max(cycle, self.count))


def native_source() -> Path:
    return Path(__file__).with_name("native") / "counter.c"
