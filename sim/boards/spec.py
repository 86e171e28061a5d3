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
class PinWiring:
    """What the board connects to a pin, as far as it decides the level the pin
    reads while the MCU does not drive it (input, alternate function, open drain
    released): an external pull resistor or a driver on the board."""
    port: str
    pin: int
    #: The level the board puts on the pin. It wins over the MCU's own weak pull.
    level: int
    why: str = ""


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
    #: Pins the board pulls or drives (besides its buttons, whose ``idle_level`` says it).
    pins: tuple[PinWiring, ...] = ()
    #: What a pin reads when nothing on the board or outside drives or pulls it and
    #: its own pull is off (PUPDR 00): header pins with nothing plugged in. On
    #: silicon a floating CMOS input reads whatever it picks up; the model says 0.
    #: An internal pull-up reads 1, a pull-down 0; a pin in analog mode reads 0.
    floating_level: int = 0

    def idle_levels(self, port: str) -> dict[int, int]:
        """Pin → the level the board leaves on it, for ``port`` ("GPIOC")."""
        levels = {b.pin: b.idle_level for b in self.buttons if b.port == port}
        levels.update({p.pin: p.level for p in self.pins if p.port == port})
        return levels

    def pin(self, name: str) -> tuple[str, int]:
        """("GPIOA", 0) for "PA0" (or "pa0"): a pin the board's SoC has; ValueError otherwise."""
        text = name.strip().upper()
        port, number = f"GPIO{text[1:2]}", text[2:]
        known = [p.name for p in self.soc.peripherals if p.name.startswith("GPIO")]
        if not (text.startswith("P") and port in known and number.isdigit()
                and 0 <= int(number) <= 15):
            raise ValueError(f"no pin {name!r} on {self.name}: pins are P<port><0-15>, "
                             f"ports {''.join(k[-1] for k in known)}")
        return port, int(number)


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
    # UM1724 (MB1136): what is wired to the MCU besides B1 (PC13, 4.7 kOhm pull-up:
    # idle 1, pressed 0). Everything else on the Arduino and morpho headers (PA0 = A0
    # with no jumper, the other analog inputs A1-A5 = PA1, PA4, PB0, PC1, PC0, the
    # digital pins) is open: floating_level, or the pin's own pull.
    pins=(
        PinWiring("GPIOA", 3, 1, "USART2 RX: the ST-LINK's virtual COM port TX idles high"),
        PinWiring("GPIOA", 5, 0, "LD2 to GND through its resistor"),
        PinWiring("GPIOF", 0, 0, "OSC_IN: the ST-LINK's 8 MHz MCO, a clock; not modelled"),
        PinWiring("GPIOC", 14, 0, "OSC32_IN: the 32.768 kHz crystal X2"),
        PinWiring("GPIOC", 15, 0, "OSC32_OUT: the 32.768 kHz crystal X2"),
    ),
    floating_level=0,
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
