"""STM32F303 device peripherals, one model per file, registers declared as data.

Each model derives :class:`sim.regs.Peripheral`, takes what it needs (virtual
clock, clock tree, interrupt lines, host channels) through its constructor and
knows nothing of the machine that maps it.
"""
from __future__ import annotations

from .adc import Adc, AdcCommon
from .bxcan import BxCan, CanFrame
from .crc import Crc
from .dbgmcu import Dbgmcu
from .dma import Dma
from .exti import Exti, connect_gpio_exti
from .flash_if import FlashInterface
from .gpio import GpioPort
from .irq import IrqOr
from .pwr import Pwr
from .rcc import Rcc
from .rtc import Rtc
from .syscfg import Syscfg
from .timer import Timer
from .usart import Usart

__all__ = [
    "Adc", "AdcCommon", "BxCan", "CanFrame", "Crc", "Dbgmcu", "Dma", "Exti", "FlashInterface",
    "GpioPort", "IrqOr", "Pwr", "Rcc", "Rtc", "Syscfg", "Timer", "Usart", "connect_gpio_exti",
]
