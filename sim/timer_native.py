"""A timer's compare path taken in C (``sim/native/tim.c``) while its model says C can.

Mbed's us-ticker writes TIM2's SR (clearing CC1IF) and CCR1 (the next event) at
every interrupt, thousands of times a second: each write through Python costs
several microseconds. The Timer model (``sim.peripherals.timer``, the reference)
hands a ``TimerState`` to the native write handler of the read cache
(``NativeReadCache.native``) whenever its state is one C can keep (counting up
within the stretch to the next wrap, channels in output compare, no DMA, its
interrupt raised at a cycle by the exception model: ``LineAtCycle``), and takes it
back, with what C did, at its next access from Python and at the run's end.
C declines (leaves to Python) every write that would do something else.
"""
from __future__ import annotations

import ctypes

from .core.cpustate import NONE_CYCLE, PENDS, ExceptionState
from .mmio_cache import NativeReadCache

CHANNELS = 4

_u32, _u64 = ctypes.c_uint32, ctypes.c_uint64
_p64 = ctypes.POINTER(ctypes.c_uint64)


class TimerState(ctypes.Structure):
    """``hwut_tim`` in sim/native/tim.c (field by field; see there)."""
    _fields_ = [
        ("active", _u32), ("dirty", _u32), ("base", _u64), ("seen", _u64),
        ("anchor", _u64), ("period", _u64), ("wrap", _u64), ("cnt", _u64), ("top", _u64),
        ("arr2", _u64), ("period2", _u64), ("after", _u32), ("settled", _u32),
        ("sr", _u32), ("dier", _u32), ("irq_pending", _u32), ("in_level", _u32),
        ("line_level", _u32), ("sr_flags", _u32), ("dier_rw", _u32), ("ccr_mask", _u32),
        ("irq_mask", _u32), ("uie", _u32), ("uif", _u32), ("ude", _u32), ("oc", _u32),
        ("take", _u32), ("n_channels", _u32), ("ie", _u32 * CHANNELS),
        ("flag", _u32 * CHANNELS), ("ccr", _u32 * CHANNELS), ("active_ccr", _u32 * CHANNELS),
        ("sr_off", _u32), ("dier_off", _u32), ("ccr_off", _u32 * CHANNELS),
        ("line_when", _u64), ("slot", _u32), ("exc", _u32),
        ("due", _p64), ("pend_next", _p64), ("pend_at", _p64), ("systick_next", _p64),
        ("pend_exc", ctypes.POINTER(ctypes.c_uint16)), ("levels", ctypes.POINTER(_u32)),
        ("writes", _u64), ("declined", _u64),
    ]


class NativeCompare:
    """One timer's state for the native handler, registered on the read cache for the
    timer's window. ``state`` is the struct the model fills (``Timer._offer``) and
    reads back (``Timer._take_back``); it lives as long as this object."""

    def __init__(self, cache: NativeReadCache, exc: ExceptionState, base: int,
                 size: int) -> None:
        assert PENDS == 4   # tim.c's PENDS
        self.state = TimerState()
        s = self.state
        s.base = base
        s.line_when = NONE_CYCLE
        at = ctypes.addressof(exc)
        s.due = ctypes.cast(at + ExceptionState.due.offset, _p64)
        s.pend_next = ctypes.cast(at + ExceptionState.pend_next.offset, _p64)
        s.pend_at = ctypes.cast(at + ExceptionState.pend_at.offset, _p64)
        s.systick_next = ctypes.cast(at + ExceptionState.systick_next.offset, _p64)
        s.pend_exc = ctypes.cast(at + ExceptionState.pend_exc.offset,
                                 ctypes.POINTER(ctypes.c_uint16))
        s.levels = ctypes.cast(at + ExceptionState.levels.offset, ctypes.POINTER(_u32))
        self._exc = exc   # the struct the pointers point into: kept alive
        #: False when the cache's table of native handlers was full (nothing is handed).
        self.registered = cache.native(base, base + size, None, "hwut_tim_write",
                                       ctypes.addressof(s))

    @property
    def writes(self) -> int:
        """Writes the native handler took."""
        return int(self.state.writes)

    @property
    def declined(self) -> int:
        """Writes it left to Python while it held the state."""
        return int(self.state.declined)
