"""The shape of a SoC description (see ``stm32f303.py`` for one)."""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class MemorySpec:
    name: str
    base: int
    size: int
    writable: bool = True
    fill: int = 0
    aliases: tuple[int, ...] = ()
    #: Initial content at offsets (system memory, option bytes, device id).
    content: tuple[tuple[int, bytes], ...] = ()


@dataclass(frozen=True)
class PeripheralSpec:
    name: str
    #: "module:Class" below ``sim`` (e.g. "peripherals.usart:Usart").
    model: str
    base: int
    #: Constructor argument name → IRQ number (an IrqLine); → several numbers (a
    #: mapping of number → IrqLine, for EXTI); or → {key: number} (a mapping of the
    #: model's own key, such as a DMA channel, → IrqLine).
    irqs: dict[str, int | tuple[int, ...] | dict[int, int]] = field(default_factory=dict)
    args: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class SocSpec:
    name: str
    cpu: str
    irq_count: int
    priority_bits: int
    memories: tuple[MemorySpec, ...]
    peripherals: tuple[PeripheralSpec, ...]
    #: Address ranges that answer even where nothing is modelled.
    peripheral_space: tuple[tuple[int, int], ...]
    bitband: tuple[tuple[int, int, int], ...] = ()
    #: Connections between built peripherals (called with name → peripheral).
    wiring: tuple[Callable[[dict[str, Any]], None], ...] = ()
    reset_hz: int = 8_000_000
    #: Highest core clock the datasheet allows (what the targets API shows).
    max_hz: int = 72_000_000
    manufacturer: str = "STMicroelectronics"

    def memory(self, name: str) -> MemorySpec:
        """The memory called ``name`` ("flash", "sram", ...); KeyError names the known ones."""
        for m in self.memories:
            if m.name == name:
                return m
        raise KeyError(f"{self.name} has no memory {name!r}; it has "
                       f"{', '.join(m.name for m in self.memories)}")
