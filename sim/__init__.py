"""The emulated STM32F303 boards (installed as ``hwut.sim``): Unicorn runs the
instructions, this package is the rest of the chip and the boards around it."""
