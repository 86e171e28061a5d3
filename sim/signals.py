"""Wires between models: interrupt lines and the clock tree's frequencies.

A peripheral receives these in its constructor and never reaches for the
machine, so it can be built and tested alone.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol


class InterruptSink(Protocol):
    def set_irq_level(self, irq: int, level: bool) -> None: ...


class IrqLine:
    """A level-sensitive line into the NVIC, as STM32 peripherals drive them."""

    def __init__(self, sink: InterruptSink | None, irq: int) -> None:
        self._sink = sink
        self.irq = irq
        self.level = False

    def set(self, level: bool) -> None:
        level = bool(level)
        if level != self.level:
            self.level = level
            if self._sink is not None:
                self._sink.set_irq_level(self.irq, level)


class ClockTree:
    """Named clock frequencies in Hz that RCC publishes and peripherals read.

    Names: ``SYSCLK``, ``HCLK``, ``PCLK1``, ``PCLK2``, ``TIMCLK1``, ``TIMCLK2``,
    ``HSI``, ``HSE``, ``LSI``, ``LSE`` and any a model adds.
    """

    def __init__(self, **initial: int) -> None:
        self._hz: dict[str, int] = dict(initial)
        self._listeners: list[Callable[[], None]] = []

    def __getitem__(self, name: str) -> int:
        return self._hz[name]

    def get(self, name: str, default: int = 0) -> int:
        return self._hz.get(name, default)

    def update(self, **values: int) -> None:
        changed = {k: v for k, v in values.items() if self._hz.get(k) != v}
        if not changed:
            return
        self._hz.update(changed)
        for listener in list(self._listeners):
            listener()

    def subscribe(self, listener: Callable[[], None]) -> None:
        self._listeners.append(listener)

    def snapshot(self) -> dict[str, int]:
        return dict(self._hz)


class LineAtCycle:
    """A model's interrupt line raised at a known cycle by the exception model
    (``ExceptionModel.raise_line_at``; the native hook raises it without the engine
    stopping), instead of by a clock event whose only effect would be raising it.

    The model ``arm``s it at the cycle of that event and, at its next access after
    the cycle (``due``), calls ``fired`` and then does what the event would have done:
    its own flags, brought up to date lazily, and the line, already up, which it
    drives high again without the NVIC hearing of it twice. ``line`` gives the
    NVIC line the model's output drives when it drives it alone (a line shared
    through an OR is left to clock events), ``claim`` a slot of the exception
    model (None when all are taken)."""

    def __init__(self, exceptions: Any, line: Callable[[], IrqLine | None],
                 claim: Callable[[], int | None]) -> None:
        self._exc = exceptions
        self._line = line
        self._claim = claim
        self._slot: int | None = None
        self._armed: IrqLine | None = None
        #: The cycle armed for; None when not armed.
        self.when: int | None = None

    def arm(self, cycle: int) -> bool:
        """Raise the line at ``cycle``; False (and nothing armed) when that cannot be
        done here: the line is shared or already up, or no slot is free."""
        line = self._line()
        if line is None or line.level:
            self.cancel()
            return False
        if self._slot is None:
            self._slot = self._claim()
            if self._slot is None:
                return False
        if self.when != cycle or self._armed is not line:
            self.when, self._armed = cycle, line
            self._exc.raise_line_at(self._slot, line.irq, cycle)
        return True

    def cancel(self) -> None:
        if self.when is not None and self._slot is not None:
            self.when = self._armed = None
            self._exc.cancel_line(self._slot)

    def keeper(self) -> tuple[int, IrqLine] | None:
        """For a native keeper of the model's state (``sim.timer_native``): the slot it
        arms and cancels itself, and the line, where a slot is claimed and the line is
        the model's alone; else None."""
        line = self._line()
        if line is None or self._slot is None:
            return None
        return self._slot, line

    def adopt(self, when: int | None) -> None:
        """The native keeper armed the slot for ``when`` (None: disarmed it) itself."""
        self.when = when
        self._armed = None if when is None else self._line()

    def due(self, now: int) -> bool:
        """The armed cycle has come: the model must catch up with it (``fired``)."""
        return self.when is not None and now >= self.when

    def fired(self, now: int) -> None:
        """The line went up at ``when`` (raised now if the run loop has not yet)."""
        self._exc.pends_catch_up(now)
        line = self._armed
        self.when = self._armed = None
        if line is not None:
            line.level = True
