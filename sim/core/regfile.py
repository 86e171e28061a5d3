"""Batched CPU register access straight through Unicorn's C API.

Exception entry and return touch a dozen registers; through the Python
binding each costs a microsecond of argument handling. All M-profile core
registers are 32 bits wide, which lets the batches use plain uint32 arrays.
"""
from __future__ import annotations

import ctypes
from collections.abc import Callable, Sequence

from unicorn import Uc, UcError
from unicorn.unicorn_py3 import unicorn as _ucpy

_lib = _ucpy.uclib


class RegisterFile:
    def __init__(self, uc: Uc) -> None:
        self._handle = uc._uch

    def reader(self, regs: Sequence[int]) -> Callable[[], list[int]]:
        """A function that reads ``regs`` in one call and returns their values."""
        n = len(regs)
        ids = (ctypes.c_int * n)(*regs)
        values = (ctypes.c_uint64 * n)()
        ptrs = (ctypes.c_void_p * n)(*(ctypes.addressof(values) + 8 * i for i in range(n)))
        count = ctypes.c_int(n)
        handle = self._handle

        def read() -> list[int]:
            for i in range(n):
                values[i] = 0
            err = _lib.uc_reg_read_batch(handle, ids, ptrs, count)
            if err:
                raise UcError(err)
            return [v & 0xFFFF_FFFF for v in values]
        return read

    def single(self, reg: int) -> Callable[[], int]:
        """A function that reads the one register ``reg``: the binding's ``reg_read``
        looks up a register class at each call (~4 us, as much as the rest of a run
        loop's turn); this is one C call."""
        value = ctypes.c_uint64()
        ref = ctypes.byref(value)
        handle = self._handle
        read_reg = _lib.uc_reg_read

        def read() -> int:
            value.value = 0
            err = read_reg(handle, reg, ref)
            if err:
                raise UcError(err)
            return value.value & 0xFFFF_FFFF
        return read

    def write(self, pairs: Sequence[tuple[int, int]]) -> None:
        """Write registers in the order given (order matters for SP banking)."""
        n = len(pairs)
        ids = (ctypes.c_int * n)(*(r for r, _ in pairs))
        values = (ctypes.c_uint64 * n)(*(v & 0xFFFF_FFFF for _, v in pairs))
        ptrs = (ctypes.c_void_p * n)(*(ctypes.addressof(values) + 8 * i for i in range(n)))
        err = _lib.uc_reg_write_batch(self._handle, ids, ptrs, ctypes.c_int(n))
        if err:
            raise UcError(err)
