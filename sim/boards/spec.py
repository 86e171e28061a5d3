"""Board descriptions. Adding an F3 board is adding an entry here."""
from __future__ import annotations

from dataclasses import dataclass

from ..soc.spec import SocSpec
from ..soc.stm32f303 import STM32F303RE, STM32F303VC


@dataclass(frozen=True)
class Led:
    name: str
    port: str
    pin: int


@dataclass(frozen=True)
class Button:
    name: str
    port: str
    pin: int
    #: Level on the pin while the button is not pressed (external pull-up → 1).
    idle_level: int = 1


@dataclass(frozen=True)
class BoardSpec:
    name: str
    soc: SocSpec
    console: str
    hse_hz: int
    leds: tuple[Led, ...] = ()
    buttons: tuple[Button, ...] = ()
    #: What the ADC inputs read: (ADC, channel, 12-bit value); unlisted inputs read 0.
    analog: tuple[tuple[str, int, int], ...] = ()
    manufacturer: str = "STMicroelectronics"


NUCLEO_F303RE = BoardSpec(
    name="nucleo-f303re",
    soc=STM32F303RE,
    console="USART2",          # PA2/PA3 to the ST-LINK virtual COM port
    hse_hz=8_000_000,          # MCO of the ST-LINK, HSE bypass
    leds=(Led("LD2", "GPIOA", 5),),
    buttons=(Button("B1", "GPIOC", 13, idle_level=1),),
    # A0 (PA0, ADC1_IN1) at mid-scale as a pot would leave it; the internal
    # reference (ADC1_IN18) reads its typical 1.23 V against 3.3 V.
    analog=(("ADC1", 1, 2048), ("ADC1", 18, 1526)),
)

STM32F3DISCOVERY = BoardSpec(
    name="stm32f3discovery",
    soc=STM32F303VC,
    console="USART1",
    hse_hz=8_000_000,
    leds=tuple(Led(f"LD{n}", "GPIOE", pin) for n, pin in zip(range(3, 11), range(8, 16))),
    buttons=(Button("B1", "GPIOA", 0, idle_level=0),),
)

BOARDS: dict[str, BoardSpec] = {b.name: b for b in (NUCLEO_F303RE, STM32F3DISCOVERY)}


def board(name: str) -> BoardSpec:
    try:
        return BOARDS[name]
    except KeyError:
        raise KeyError(f"unknown board {name!r}; known: {', '.join(sorted(BOARDS))}") from None
