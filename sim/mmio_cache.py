"""Serving peripheral windows through the native read cache (``sim/native/mmio.c``).

A read the model declares stable until a cycle is remembered in C and
answered there until that cycle, unless a write or a clock event comes first
(both empty the cache). A write the model declares quiet (it would change
nothing, until a cycle: ``quiet``) is answered in C by doing nothing. See ``Bus.map_peripherals`` for the plain Python path.
"""
from __future__ import annotations

import ctypes
from collections.abc import Callable
from typing import NamedTuple

from unicorn import Uc, UcError
from unicorn.unicorn_py3 import unicorn as _ucpy

from .nativelib import LIB

READ_FN = ctypes.CFUNCTYPE(ctypes.c_uint64, ctypes.c_uint64, ctypes.c_uint32)
WRITE_FN = ctypes.CFUNCTYPE(None, ctypes.c_uint64, ctypes.c_uint32, ctypes.c_uint64)
SLOTS = 64
QUIET = 8
SCOPES = 16
NATIVES = 4


class _Slot(ctypes.Structure):
    _fields_ = [("address", ctypes.c_uint64), ("value", ctypes.c_uint64),
                ("valid_until", ctypes.c_uint64), ("anchor", ctypes.c_uint64),
                ("period", ctypes.c_uint64), ("size", ctypes.c_uint32),
                ("pad", ctypes.c_uint32), ("step_at", ctypes.c_uint64),
                ("step_value", ctypes.c_uint64)]


class _Quiet(ctypes.Structure):
    _fields_ = [("address", ctypes.c_uint64), ("mask", ctypes.c_uint64),
                ("expect", ctypes.c_uint64), ("valid_until", ctypes.c_uint64),
                ("size", ctypes.c_uint32), ("pad", ctypes.c_uint32)]


class _Native(ctypes.Structure):
    _fields_ = [("lo", ctypes.c_uint64), ("hi", ctypes.c_uint64), ("read", ctypes.c_void_p),
                ("write", ctypes.c_void_p), ("state", ctypes.c_void_p)]


class _Cache(ctypes.Structure):
    _fields_ = [("cycles", ctypes.c_void_p), ("horizon", ctypes.c_void_p),
                ("read", READ_FN), ("write", WRITE_FN),
                ("hits", ctypes.c_uint64), ("misses", ctypes.c_uint64),
                ("slots", _Slot * SLOTS), ("quiet_hits", ctypes.c_uint64),
                ("quiet", _Quiet * QUIET), ("write_scoped", WRITE_FN),
                ("n_scopes", ctypes.c_uint64), ("scope_lo", ctypes.c_uint64 * SCOPES),
                ("scope_hi", ctypes.c_uint64 * SCOPES), ("native_hits", ctypes.c_uint64),
                ("n_natives", ctypes.c_uint64), ("natives", _Native * NATIVES)]


class _Window(ctypes.Structure):
    _fields_ = [("cache", ctypes.c_void_p), ("base", ctypes.c_uint64)]


def available() -> bool:
    return LIB is not None


class Ramp(NamedTuple):
    """A register that counts up by one every ``period`` cycles from ``value`` at
    cycle ``anchor`` (a running timer's CNT), until cycle ``until``."""
    until: int
    value: int
    anchor: int
    period: int


class Step(NamedTuple):
    """A register that reads as it does now until cycle ``at``, then ``value`` until
    cycle ``until`` (an ADC's ISR gaining EOC at its conversion's end)."""
    at: int
    value: int
    until: int


class NativeReadCache:
    """``horizon_address``: where the idle skip (counter.c) learns until when the
    reads of a loop's turn hold (each hit lowers it, a miss zeroes it)."""

    def __init__(self, uc: Uc, count_address: int, horizon_address: int,
                 read: Callable[[int, int], int], write: Callable[[int, int, int], None]) -> None:
        assert LIB is not None, "the native read cache needs hwut.sim._native (see available())"
        self._lib = LIB
        self._uc = uc
        self._read_cb = READ_FN(read)     # kept alive as long as the cache
        self._write_cb = WRITE_FN(write)
        self._cache = _Cache(count_address, horizon_address, self._read_cb, self._write_cb, 0, 0)
        self._windows: list[_Window] = []
        # called thousands of times a second: argument types declared once, not wrapped
        # per call (a private prototype, not the library's shared function object)
        u64 = ctypes.c_uint64
        self._ref = ctypes.byref(self._cache)
        self._fill = ctypes.CFUNCTYPE(None, ctypes.c_void_p, u64, ctypes.c_uint32, u64, u64, u64,
                                      u64)(("hwut_mmio_fill", LIB))
        self._clear = ctypes.CFUNCTYPE(None, ctypes.c_void_p)(("hwut_mmio_clear", LIB))
        self._fill_step = ctypes.CFUNCTYPE(None, ctypes.c_void_p, u64, ctypes.c_uint32, u64, u64,
                                           u64, u64)(("hwut_mmio_fill_step", LIB))
        self._clear_range = ctypes.CFUNCTYPE(None, ctypes.c_void_p, u64, u64)(
            ("hwut_mmio_clear_range", LIB))
        self._clear_words = ctypes.CFUNCTYPE(None, ctypes.c_void_p, u64, u64)(
            ("hwut_mmio_clear_words", LIB))
        self._quiet = ctypes.CFUNCTYPE(None, ctypes.c_void_p, u64, ctypes.c_uint32, u64, u64,
                                       u64)(("hwut_mmio_quiet", LIB))

    def map(self, base: int, size: int) -> None:
        window = _Window(ctypes.addressof(self._cache), base)
        self._windows.append(window)
        read_fn = ctypes.cast(self._lib.hwut_mmio_read, ctypes.c_void_p)
        write_fn = ctypes.cast(self._lib.hwut_mmio_write, ctypes.c_void_p)
        ptr = ctypes.c_void_p(ctypes.addressof(window))
        err = _ucpy.uclib.uc_mmio_map(self._uc._uch, ctypes.c_uint64(base), ctypes.c_uint64(size),
                                      read_fn, ptr, write_fn, ptr)
        if err:
            raise UcError(err)

    def fill(self, address: int, size: int, value: int, valid_until: int, anchor: int = 0,
             period: int = 0) -> None:
        """Answer reads of ``address`` natively until ``valid_until``: ``value``, or with
        ``period`` the value at ``anchor`` plus one every ``period`` cycles."""
        self._fill(self._ref, address, size, value, valid_until, anchor, period)

    def fill_step(self, address: int, size: int, value: int, step: Step) -> None:
        """Answer reads of ``address`` natively: ``value``, then ``step.value`` from
        cycle ``step.at`` until ``step.until``."""
        self._fill_step(self._ref, address, size, value, step.at, step.value, step.until)

    def quiet(self, address: int, size: int, mask: int, expect: int, valid_until: int) -> None:
        """Answer writes of ``address`` with ``value & mask == expect`` natively until
        ``valid_until``, by doing nothing: the model says they would change nothing
        (the next write that reaches Python, and ``clear``, forget it)."""
        self._quiet(self._ref, address, size, mask, expect, valid_until)

    def clear(self) -> None:
        self._clear(self._ref)

    def scope_writes(self, lo: int, hi: int, write: Callable[[int, int, int], None]) -> bool:
        """Writes to [lo, hi) go to ``write`` without emptying the cache first: it
        forgets what the write may change itself (``clear``, ``clear_range``). False
        when the table of such ranges is full (the range's writes empty the cache)."""
        c = self._cache
        if c.n_scopes >= SCOPES:
            return False
        if not c.n_scopes:
            self._write_scoped_cb = WRITE_FN(write)   # kept alive as long as the cache
            c.write_scoped = self._write_scoped_cb
        c.scope_lo[c.n_scopes], c.scope_hi[c.n_scopes] = lo, hi
        c.n_scopes += 1
        return True

    def native(self, lo: int, hi: int, read: str | None, write: str | None,
               state: int) -> bool:
        """Accesses of [lo, hi) are offered first to the native handlers named
        ``read`` and ``write`` (functions of the native library, see ``hwut_native``
        in sim/native/mmio.h) with ``state`` (the address of the state they keep,
        which must live as long as the cache). False when the table is full."""
        c = self._cache
        if c.n_natives >= NATIVES:
            return False
        entry = c.natives[c.n_natives]
        entry.lo, entry.hi, entry.state = lo, hi, state
        entry.read = None if read is None else ctypes.cast(getattr(self._lib, read),
                                                           ctypes.c_void_p).value
        entry.write = None if write is None else ctypes.cast(getattr(self._lib, write),
                                                             ctypes.c_void_p).value
        c.n_natives += 1
        return True

    def clear_words(self, base: int, offsets: tuple[int, ...]) -> None:
        """Forget only what is held for the words at ``base`` + each offset (< 0x100)."""
        words = 0
        for offset in offsets:
            words |= 1 << (offset >> 2)
        self._clear_words(self._ref, base, words)

    def clear_range(self, lo: int, hi: int) -> None:
        """Forget only what is held for addresses in [lo, hi)."""
        self._clear_range(self._ref, lo, hi)

    @property
    def address(self) -> int:
        """Where the cache lives (for native readers of its ramps, sim/native/rampskip.c)."""
        return ctypes.addressof(self._cache)

    @property
    def hits(self) -> int:
        return self._cache.hits

    @property
    def misses(self) -> int:
        return self._cache.misses

    @property
    def native_hits(self) -> int:
        """Accesses a native handler took (``native``)."""
        return self._cache.native_hits

    @property
    def quiet_hits(self) -> int:
        """Writes answered natively as changing nothing (``quiet``)."""
        return self._cache.quiet_hits
