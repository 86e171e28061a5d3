"""SYSCFG of the STM32F303 (RM0316 section 12): memory remap and EXTI port selection.

The part that matters to firmware behaviour is EXTICR1..4: which port drives
each of EXTI lines 0..15. ``connect_gpio_exti`` (in ``exti.py``) asks
``port_of_line`` when a pin changes.
"""
from __future__ import annotations

from collections.abc import Callable

from hwut.sim.regs import Access, Field, Peripheral, Register, flags

EXTICR_OFFSETS = (0x08, 0x0C, 0x10, 0x14)


class Syscfg(Peripheral):
    """System configuration controller; ``mem_mode`` is the boot selection at reset."""

    def __init__(self, name: str, base: int, *, note: Callable[[str], None] | None = None, mem_mode: int = 0) -> None:
        self._mem_mode = mem_mode & 3
        #: Called with the new MEM_MODE (0 flash, 1 system memory, 3 SRAM at 0).
        self.on_remap: Callable[[int], None] | None = None
        super().__init__(name, base, note=note)

    def registers(self) -> list[Register]:
        exticr = [Register(f"EXTICR{n + 1}", off,
                           fields=tuple(Field(f"EXTI{4 * n + i}", 4 * i, 4) for i in range(4)))
                  for n, off in enumerate(EXTICR_OFFSETS)]
        #: The port selection of each EXTI line 0..15.
        self._exti_port = [f for reg in exticr for f in reg.fields]
        return [
            Register("CFGR1", 0x00, reset=0x7C00_0000 | self._mem_mode, fields=(
                Field("MEM_MODE", 0, 2, on_write=self._remap),
                Field("USB_IT_RMP", 5), Field("TIM1_ITR3_RMP", 6), Field("DAC1_TRIG1_RMP", 7),
                Field("ADC24_DMA_RMP", 8), Field("TIM16_DMA_RMP", 11), Field("TIM17_DMA_RMP", 12),
                Field("TIM6_DAC1_DMA_RMP", 13), Field("TIM7_DAC2_DMA_RMP", 14),
                Field("DAC2_CH1_DMA_RMP", 15),
                *flags("I2C_PB6_FMP", "I2C_PB7_FMP", "I2C_PB8_FMP", "I2C_PB9_FMP", "I2C1_FMP",
                       "I2C2_FMP", start=16),
                Field("ENCODER_MODE", 22, 2), Field("I2C3_FMP", 24),
                Field("FPU_IE", 26, 6),
            )),
            Register("RCR", 0x04, fields=tuple(Field(f"PAGE{i}_WP", i) for i in range(8)),
                     tagged=True),
            *exticr,
            Register("CFGR2", 0x18, fields=(
                Field("LOCKUP_LOCK", 0), Field("SRAM_PARITY_LOCK", 1), Field("PVD_LOCK", 2),
                Field("BYP_ADDR_PAR", 4), Field("SRAM_PEF", 8, access=Access.RC_W1),
            )),
            Register("CFGR4", 0x48, fields=(
                *flags("ADC12_EXT2_RMP", "ADC12_EXT3_RMP", "ADC12_EXT5_RMP", "ADC12_EXT13_RMP",
                       "ADC12_EXT15_RMP", "ADC12_JEXT3_RMP", "ADC12_JEXT6_RMP",
                       "ADC12_JEXT13_RMP", "ADC34_EXT5_RMP", "ADC34_EXT6_RMP",
                       "ADC34_EXT15_RMP", "ADC34_JEXT5_RMP", "ADC34_JEXT11_RMP",
                       "ADC34_JEXT14_RMP"),), tagged=True),
            Register("CFGR3", 0x50, fields=(
                Field("SPI1_RX_DMA_RMP", 0, 2), Field("SPI1_TX_DMA_RMP", 2, 2),
                Field("I2C1_RX_DMA_RMP", 4, 2), Field("I2C1_TX_DMA_RMP", 6, 2),
                Field("ADC2_DMA_RMP", 8, 2)), tagged=True),
        ]

    def port_of_line(self, line: int) -> int:
        """Port index (0 = A .. 7 = H) selected for EXTI ``line`` (0..15)."""
        return self._exti_port[line].value

    def _remap(self, old: int, new: int) -> None:
        if self.on_remap is not None and old != new:
            self.on_remap(new)
