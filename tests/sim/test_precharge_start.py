"""Precharging starts after ``START_COUNTED`` executed instructions: start-up code
runs once, and precharging it cost a short job more than counting it. Before that
the run is the counted one; after, precharged; the same run either way."""
from __future__ import annotations

import pytest

from hwut.sim import precharge
from hwut.sim.nativelib import LIB

from .conftest import run_firmware
from .test_precharge import assert_same_run

pytestmark = [pytest.mark.start_counted,
              pytest.mark.skipif(LIB is None, reason="the native module is not built")]


def test_a_short_job_is_counted_throughout():
    # hello prints and counts on the 8 MHz HSI: far fewer than START_COUNTED in 10 ms
    fast = run_firmware("hello", 0.01)
    assert fast.result.instructions < precharge.START_COUNTED
    assert fast.machine.state.pre.precharged == 0
    assert fast.machine.state.pre.to_alias + fast.machine.state.pre.to_canonical == 0
    assert fast.machine.precharge.suspensions == 0   # the start is no suspension
    # suspended, the plain block hook: the precharging one's checks only cost there
    assert fast.machine.counter.block_hook == "hwut_block_counted"
    assert_same_run(fast, run_firmware("hello", 0.01, precharge=False))


def test_a_longer_job_precharges_after_the_start_and_runs_the_same():
    fast = run_firmware("compute", 2.0)
    assert fast.result.instructions > 2 * precharge.START_COUNTED
    assert fast.machine.state.pre.precharged > 0
    assert fast.machine.counter.block_hook == "hwut_block_exact"
    assert fast.machine.state.pre.precharged_insns < fast.result.instructions - precharge.START_COUNTED
    assert_same_run(fast, run_firmware("compute", 2.0, precharge=False))
