"""The instruction counter behind virtual time, and the brake that ends a slice.

Unicorn calls a hook before every instruction; the hook counts and stops the
engine once the count reaches ``limit``. Models may lower the limit at any
moment (an interrupt made pending by a register write is taken at the next
instruction). The native hook (``hwut_count`` in sim/native/counter.c) and the
Python hook behave the same; the Python one is only slower. Both keep the count
in the shared ``CpuState``.

``timing="block"`` (opt-in) counts once per translated block instead: several
times faster, still the same run every time, but a slice ends, and an
interrupt is taken, at the next block boundary rather than the next instruction.
"""
from __future__ import annotations

import ctypes

from unicorn import UC_HOOK_BLOCK, UC_HOOK_CODE, UC_HOOK_INTR, Uc
from unicorn.unicorn_py3 import unicorn as _ucpy

from .core.cpustate import CpuState, clear_blocks, new_state
from .nativelib import LIB

NEVER = (1 << 63) - 1
TIMINGS = ("exact", "block")


def thumb_instructions(code: bytes) -> int:
    """How many Thumb instructions ``code`` holds (32-bit ones start 0b11101/0b1111x)."""
    n = i = 0
    while i + 1 < len(code):
        i += 4 if code[i + 1] >> 3 in (0x1D, 0x1E, 0x1F) else 2
        n += 1
    return n


def _fn(name: str) -> int:
    return ctypes.cast(getattr(_ucpy.uclib, name), ctypes.c_void_p).value


class InstructionCounter:
    """Counts executed instructions of one Unicorn engine."""

    def __init__(self, uc: Uc, *, native: bool | None = None,
                 state: CpuState | None = None, timing: str = "exact") -> None:
        if timing not in TIMINGS:
            raise ValueError(f"timing must be one of {', '.join(TIMINGS)}, not {timing!r}")
        self.timing = timing
        use_native = LIB is not None if native is None else native
        if use_native and LIB is None:
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
            self._handles = [self._add_native(UC_HOOK_CODE, "hwut_count") if timing == "exact"
                             else self._add_native(UC_HOOK_BLOCK, "hwut_block")]
        elif timing == "exact":
            uc.hook_add(UC_HOOK_CODE, self._python_hook)
        else:
            self._blocks: dict[tuple[int, int], int] = {}
            uc.hook_add(UC_HOOK_BLOCK, self._python_block_hook)

    def _add_native(self, kind: int, function: str) -> ctypes.c_size_t:
        handle = ctypes.c_size_t()
        fn = ctypes.cast(getattr(LIB, function), ctypes.c_void_p)
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

    def _python_block_hook(self, uc: Uc, address: int, size: int, _user: object) -> None:
        c = self._c
        if c.count >= c.limit:
            uc.emu_stop()
            return
        n = self._blocks.get((address, size))
        if n is None:
            n = self._blocks[(address, size)] = thumb_instructions(bytes(uc.mem_read(address, size)))
        c.count += n

    def forget_blocks(self) -> None:
        """Code changed (flash programmed): block lengths must be decoded again."""
        if self.native:
            clear_blocks(self._c)
        elif self.timing == "block":
            self._blocks.clear()

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
