"""Interrupt outputs shared by several sources.

STM32F3 wires some NVIC lines to more than one source (TIM1 update and TIM16
share IRQ 25; EXTI lines 5..9 share IRQ 23). Each IrqLine is level-sensitive
and remembers one level, so two models driving one IrqLine would overwrite
each other; ``IrqOr`` hands each source its own input and drives the line with
the OR of them.
"""
from __future__ import annotations

from typing import Protocol


class IrqOut(Protocol):
    """What a model drives: ``sim.signals.IrqLine`` or an ``IrqOr`` input."""

    def set(self, level: bool) -> None: ...


class _Input:
    def __init__(self, owner: IrqOr, index: int) -> None:
        self._owner = owner
        self._index = index
        self.level = False

    def set(self, level: bool) -> None:
        level = bool(level)
        if level != self.level:     # the OR can only change when an input does
            self.level = level
            self._owner._recompute()

    def sole_line(self) -> IrqOut | None:
        """The line this input drives, or None while another input shares it."""
        owner = self._owner
        return owner._line if len(owner._inputs) == 1 else None


class IrqOr:
    """Drives ``line`` with the OR of every input handed out by :meth:`input`."""

    def __init__(self, line: IrqOut) -> None:
        self._line = line
        self._inputs: list[_Input] = []

    def input(self) -> _Input:
        inp = _Input(self, len(self._inputs))
        self._inputs.append(inp)
        return inp

    def _recompute(self) -> None:
        self._line.set(any(i.level for i in self._inputs))


class NoIrq:
    """An output nobody listens to, so models need no ``None`` checks."""

    level = False

    def set(self, level: bool) -> None:
        self.level = bool(level)
