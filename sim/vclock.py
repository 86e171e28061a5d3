"""Virtual time: derived from the instruction count, so a run is the same every time.

One instruction is one core clock cycle. Time in picoseconds is exact integer
arithmetic within each stretch of constant core frequency; events are kept in
core cycles (peripheral clocks are integer divisions of the core clock on the
STM32F3, so a peripheral's period is a whole number of core cycles). Events
anchored to absolute time (the job's limit, scripted inputs) are re-anchored
when the core frequency changes.
"""
from __future__ import annotations

import heapq
import itertools
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

PS_PER_S = 10**12
#: Cancelled events leave the queue lazily, when they reach its head; firmware that
#: reprograms a far-off event in a loop would pile them up, so the queue is swept
#: whenever it doubles past this size (the order events fire in does not change).
_SWEEP_MIN = 1024


class CycleSource(Protocol):
    """Where the current instruction count comes from (see ``sim.counter``)."""

    def cycles(self) -> int:  # pragma: no cover - interface
        raise NotImplementedError


@dataclass(slots=True)
class Event:
    """A callback due at cycle ``when``; events due at one cycle fire in the order they
    were made (``seq``)."""

    when: int
    seq: int
    callback: Callable[[], None] = field(compare=False)
    at_ps: int | None = field(default=None, compare=False)
    cancelled: bool = field(default=False, compare=False)

    def cancel(self) -> None:
        self.cancelled = True

    # the queue's order, written out: the generated one builds two tuples per comparison
    def __lt__(self, other: Event) -> bool:
        return self.when < other.when or (self.when == other.when and self.seq < other.seq)

    def __le__(self, other: Event) -> bool:
        return not other < self

    def __gt__(self, other: Event) -> bool:
        return other < self

    def __ge__(self, other: Event) -> bool:
        return not self < other


class VirtualClock:
    def __init__(self, source: CycleSource, hz: int) -> None:
        self._source = source
        self.hz = hz
        self._base_cycles = 0
        self._base_ps = 0
        self._queue: list[Event] = []
        self._sweep_at = _SWEEP_MIN
        self._seq = itertools.count()
        self._listeners: list[Callable[[int], None]] = []
        #: Told of each new event's cycle, so a running slice can end in time for it.
        self.deadline_listener: Callable[[int], None] | None = None
        #: A peripheral access sees ``cycles`` as of its own instruction (exact timing);
        #: block timing counts a block at its start, so models keep their events there.
        self.exact_reads = True
        #: The cycle up to which events have fired (``run_due``): an instruction runs
        #: after that, at a later count; the host reads between runs, at it.
        self.settled = -1

    # -- reading time ----------------------------------------------------
    @property
    def cycles(self) -> int:
        return self._source.cycles()

    def now_ps(self) -> int:
        return self.ps_at(self.cycles)

    def ps_at(self, cycles: int) -> int:
        return self._base_ps + (cycles - self._base_cycles) * PS_PER_S // self.hz

    def cycle_at_ps(self, at_ps: int) -> int:
        """The first cycle whose time is at or after ``at_ps``."""
        delta = max(0, at_ps - self._base_ps)
        return self._base_cycles + -(-delta * self.hz // PS_PER_S)

    def seconds(self) -> float:
        return self.now_ps() / PS_PER_S

    # -- core frequency --------------------------------------------------
    def on_frequency_change(self, listener: Callable[[int], None]) -> None:
        self._listeners.append(listener)

    def set_hz(self, hz: int) -> None:
        if hz == self.hz or hz <= 0:
            return
        now = self.cycles
        self._base_ps = self.ps_at(now)
        self._base_cycles = now
        self.hz = hz
        anchored = [(e, e.at_ps) for e in self._queue if e.at_ps is not None and not e.cancelled]
        if anchored:
            for e, at_ps in anchored:
                e.when = max(now, self.cycle_at_ps(at_ps))
                if self.deadline_listener is not None:
                    self.deadline_listener(e.when)
            heapq.heapify(self._queue)
        for listener in self._listeners:
            listener(hz)

    # -- events ----------------------------------------------------------
    def after(self, cycles: int, callback: Callable[[], None]) -> Event:
        """Run ``callback`` once ``cycles`` core cycles from now have passed."""
        return self.at_cycle(self.cycles + max(0, cycles), callback)

    def at_cycle(self, when: int, callback: Callable[[], None]) -> Event:
        return self._push(Event(when, next(self._seq), callback))

    def at_time(self, at_ps: int, callback: Callable[[], None]) -> Event:
        return self._push(Event(self.cycle_at_ps(at_ps), next(self._seq), callback, at_ps))

    def _push(self, event: Event) -> Event:
        q = self._queue
        if len(q) >= self._sweep_at:
            q[:] = [e for e in q if not e.cancelled]
            heapq.heapify(q)
            self._sweep_at = max(_SWEEP_MIN, 2 * len(q))
        heapq.heappush(q, event)
        if self.deadline_listener is not None:
            self.deadline_listener(event.when)
        return event

    def next_deadline(self) -> int | None:
        q = self._queue
        while q and q[0].cancelled:
            heapq.heappop(q)
        return q[0].when if q else None

    def run_due(self) -> bool:
        """Fire every event that is due; True if any fired."""
        now = self.cycles
        self.settled = now
        fired = False
        q = self._queue
        while q and (q[0].cancelled or q[0].when <= now):
            event = heapq.heappop(q)
            if not event.cancelled:
                fired = True
                event.callback()
        return fired
