"""The optional native helpers (``sim/native/*.c``, built into ``hwut.sim._native``).

Absent when no C compiler was there at install time, or when HWUT_SIM_NATIVE=0;
every user of it has a Python path with the same results.
"""
from __future__ import annotations

import ctypes
import importlib.util
import os


def _load() -> ctypes.CDLL | None:
    if os.environ.get("HWUT_SIM_NATIVE", "1") == "0":
        return None
    spec = importlib.util.find_spec(f"{__package__}._native")
    if spec is None or spec.origin is None:
        return None
    try:
        return ctypes.CDLL(spec.origin)
    except OSError:
        return None


LIB = _load()
