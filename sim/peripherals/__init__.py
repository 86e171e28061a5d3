"""STM32F303 device peripherals, one model per file, registers declared as data.

Each model derives :class:`sim.regs.Peripheral`, takes what it needs (virtual
clock, clock tree, interrupt lines, host channels) through its constructor and
knows nothing of the machine that maps it.
"""
from __future__ import annotations
