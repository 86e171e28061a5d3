"""Wires between models: interrupt lines and the clock tree's frequencies.

A peripheral receives these in its constructor and never reaches for the
machine, so it can be built and tested alone.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Protocol


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
