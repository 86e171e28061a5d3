"""DBGMCU of the STM32F303 (RM0316 section 33): the device identity and freeze bits.

Firmware and debuggers read IDCODE to learn the part (DEV_ID 0x446 is the
STM32F303xD/E, 0x422 the xB/xC; the SoC description gives each part's value);
the freeze bits are kept as written (no debugger halts here).
"""
from __future__ import annotations

from collections.abc import Callable

from hwut.sim.regs import Access, Field, Peripheral, Register, reserved


class Dbgmcu(Peripheral):
    """Debug MCU registers at 0xE0042000."""

    def __init__(self, name: str, base: int, *, idcode: int,
                 note: Callable[[str], None] | None = None) -> None:
        self._idcode = idcode
        super().__init__(name, base, note=note)

    def registers(self) -> list[Register]:
        apb1 = (("DBG_TIM2_STOP", 0), ("DBG_TIM3_STOP", 1), ("DBG_TIM4_STOP", 2),
                ("DBG_TIM6_STOP", 4), ("DBG_TIM7_STOP", 5), ("DBG_RTC_STOP", 10),
                ("DBG_WWDG_STOP", 11), ("DBG_IWDG_STOP", 12), ("DBG_I2C1_SMBUS_TIMEOUT", 21),
                ("DBG_I2C2_SMBUS_TIMEOUT", 22), ("DBG_CAN_STOP", 25),
                ("DBG_I2C3_SMBUS_TIMEOUT", 30))
        apb2 = tuple((f"DBG_TIM{n}_STOP", i) for i, n in enumerate((1, 8, 15, 16, 17, 20)))
        return [
            Register("IDCODE", 0x00, reset=self._idcode, fields=(
                Field("DEV_ID", 0, 12, Access.RO), reserved(12, 4),
                Field("REV_ID", 16, 16, Access.RO))),
            Register("CR", 0x04, fields=(
                Field("DBG_SLEEP", 0), Field("DBG_STOP", 1), Field("DBG_STANDBY", 2),
                Field("TRACE_IOEN", 5), Field("TRACE_MODE", 6, 2))),
            Register("APB1FZ", 0x08, fields=tuple(Field(n, b) for n, b in apb1)),
            Register("APB2FZ", 0x0C, fields=tuple(Field(n, b) for n, b in apb2)),
        ]
