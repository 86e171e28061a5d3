"""The native module is optional for users, but where a C compiler exists the
install must have built it: otherwise every run silently takes the slow path."""
from __future__ import annotations

import os
import shutil

import pytest

from hwut.sim.nativelib import LIB


@pytest.mark.skipif(not (shutil.which("cc") or shutil.which("gcc")), reason="no C compiler here")
@pytest.mark.skipif(os.environ.get("HWUT_SIM_NATIVE") == "0", reason="native path switched off")
def test_native_module_was_built():
    assert LIB is not None, "hwut.sim._native is missing: reinstall with a C compiler (pip install -e .)"
    for symbol in ("hwut_count", "hwut_block", "hwut_intr", "hwut_mmio_read", "hwut_mmio_fill"):
        assert hasattr(LIB, symbol)
