"""Shared pieces for the peripheral tests: a time source the test advances.

``Counter`` is a legitimate ``CycleSource``: the machine's instruction counter
plays this role in a run; here the test moves time by hand and fires due events.
"""
from __future__ import annotations

from hwut.sim.signals import ClockTree
from hwut.sim.vclock import VirtualClock


class Counter:
    def __init__(self) -> None:
        self.n = 0

    def cycles(self) -> int:
        return self.n


class Bench:
    """A virtual clock, a clock tree and a counter, with helpers to move time."""

    def __init__(self, hz: int = 8_000_000, **tree: int) -> None:
        self.counter = Counter()
        self.clock = VirtualClock(self.counter, hz)
        defaults = dict(HSI=8_000_000, SYSCLK=hz, HCLK=hz, PCLK1=hz, PCLK2=hz,
                        TIMCLK1=hz, TIMCLK2=hz)
        defaults.update(tree)
        self.clocks = ClockTree(**defaults)

    def advance(self, cycles: int) -> None:
        """Move time forward, firing every event on its own cycle as the machine does."""
        target = self.counter.n + cycles
        while True:
            nxt = self.clock.next_deadline()
            if nxt is None or nxt > target:
                break
            self.counter.n = max(self.counter.n, nxt)
            self.clock.run_due()
        self.counter.n = target
        self.clock.run_due()


class Line:
    """An interrupt output that records its level changes."""

    def __init__(self) -> None:
        self.level = False
        self.changes: list[bool] = []

    def set(self, level: bool) -> None:
        level = bool(level)
        if level != self.level:
            self.level = level
            self.changes.append(level)
