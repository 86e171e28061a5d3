"""Virtual time: exact integer arithmetic, events in cycles, re-anchoring on clock changes."""
from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from hwut.sim.vclock import PS_PER_S, VirtualClock


class Counter:
    """An instruction count the test advances by hand."""

    def __init__(self) -> None:
        self.n = 0

    def cycles(self) -> int:
        return self.n


def test_time_follows_cycles_and_frequency_changes():
    c = Counter()
    clock = VirtualClock(c, 8_000_000)
    c.n = 8_000_000
    assert clock.now_ps() == PS_PER_S
    clock.set_hz(72_000_000)
    c.n += 72_000_000
    assert clock.now_ps() == 2 * PS_PER_S


def test_events_fire_in_order_and_can_be_cancelled():
    c = Counter()
    clock = VirtualClock(c, 1_000)
    fired = []
    clock.after(10, lambda: fired.append("b"))
    clock.after(5, lambda: fired.append("a"))
    gone = clock.after(7, lambda: fired.append("x"))
    gone.cancel()
    assert clock.next_deadline() == 5
    c.n = 10
    clock.run_due()
    assert fired == ["a", "b"]


def test_time_anchored_events_move_when_the_core_clock_changes():
    c = Counter()
    clock = VirtualClock(c, 8_000_000)
    clock.at_time(PS_PER_S, lambda: None)  # one virtual second
    assert clock.next_deadline() == 8_000_000
    c.n = 4_000_000                         # half a second at 8 MHz
    clock.set_hz(72_000_000)
    assert clock.next_deadline() == 4_000_000 + 36_000_000


def test_new_events_tell_the_running_slice():
    c = Counter()
    clock = VirtualClock(c, 1_000)
    seen = []
    clock.deadline_listener = seen.append
    clock.after(42, lambda: None)
    assert seen == [42]


@given(st.integers(1, 10**9), st.integers(0, 10**12))
def test_cycle_at_time_is_the_first_cycle_not_before_it(hz, at_ps):
    clock = VirtualClock(Counter(), hz)
    cycle = clock.cycle_at_ps(at_ps)
    assert clock.ps_at(cycle) >= at_ps - PS_PER_S // hz
    assert cycle == 0 or clock.ps_at(cycle - 1) < at_ps
