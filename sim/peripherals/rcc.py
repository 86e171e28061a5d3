"""RCC of the STM32F303xE (RM0316 section 9): oscillators, PLL, prescalers, gates.

Firmware waits on ready flags (HAL's ``HAL_RCC_OscConfig``, ChibiOS waiting
for LSIRDY) and on SWS after writing SW, so those follow their enables at once.
The model's other job is arithmetic: it derives every bus frequency from the
registers and publishes it on the ClockTree, which sets the core clock (virtual
time per instruction), baud rates and timer rates.
"""
from __future__ import annotations

from collections.abc import Callable

from hwut.sim.regs import Access, Field, Peripheral, Register, flags
from hwut.sim.signals import ClockTree
from hwut.sim.vclock import VirtualClock

from .irq import IrqOut, NoIrq

HSI_HZ = 8_000_000
LSI_HZ = 40_000
LSE_HZ = 32_768

RO = Access.RO
WO = Access.WO

#: HPRE encodings 0b1000.. divide by these; 0b0xxx is /1.
_AHB_DIV = (2, 4, 8, 16, 64, 128, 256, 512)
#: Reset causes for :meth:`Rcc.system_reset`, as the CSR flags they set (with the pin's).
RESET_FLAG = {
    "pin": ("PINRSTF",),
    "software": ("SFTRSTF", "PINRSTF"),
    "iwdg": ("IWDGRSTF", "PINRSTF"),
    "wwdg": ("WWDGRSTF", "PINRSTF"),
    "low-power": ("LPWRRSTF", "PINRSTF"),
    "option-bytes": ("OBLRSTF", "PINRSTF"),
}
# Enable/reset register names per bus, for ``enabled()`` and reset hooks.
_ENR = {"AHB": "AHBENR", "APB1": "APB1ENR", "APB2": "APB2ENR"}
_RSTR = {"AHB": "AHBRSTR", "APB1": "APB1RSTR", "APB2": "APB2RSTR"}

# USARTxSW encodings (CFGR3): 00 PCLK (of the port's bus), 01 SYSCLK, 10 LSE, 11 HSI.


class Rcc(Peripheral):
    """Reset and clock control; publishes SYSCLK/HCLK/PCLKx/TIMCLKx on ``clocks``.

    Extra clock names published: ``PLLCLK``, ``USART1CLK`` .. ``UART5CLK``
    (the kernel clock chosen by CFGR3, PCLK by default) and ``ADC12CLK``/
    ``ADC34CLK`` (PLL/ADCxPRES, 0 when the AHB clock is selected).
    """

    def __init__(self, name: str, base: int, *, clock: VirtualClock, clocks: ClockTree,
                 note: Callable[[str], None] | None = None, hse_hz: int = 8_000_000,
                 irq: IrqOut | None = None,
                 on_peripheral_reset: Callable[[str, int], None] | None = None) -> None:
        self.clock = clock
        self.clocks = clocks
        self.hse_hz = hse_hz
        self.irq = irq or NoIrq()
        #: Called with (bus, bit) when firmware pulses a bit of an xRSTR register.
        self.on_peripheral_reset = on_peripheral_reset
        self._pending_sw: int | None = None
        super().__init__(name, base, note=note)

    # -- declarations --------------------------------------------------------
    def registers(self) -> list[Register]:
        cr = Register("CR", 0x00, reset=0x0000_0083 | (0x80 << 8), fields=(
            Field("HSION", 0, on_write=self._osc_changed),
            Field("HSIRDY", 1, access=RO),
            Field("HSITRIM", 3, 5),
            Field("HSICAL", 8, 8, access=RO),
            Field("HSEON", 16, on_write=self._osc_changed),
            Field("HSERDY", 17, access=RO),
            Field("HSEBYP", 18, on_write=self._osc_changed),
            Field("CSSON", 19),
            Field("PLLON", 24, on_write=self._osc_changed),
            Field("PLLRDY", 25, access=RO),
        ))
        cfgr = Register("CFGR", 0x04, fields=(
            Field("SW", 0, 2, on_write=self._sw_written),
            Field("SWS", 2, 2, access=RO),
            Field("HPRE", 4, 4, on_write=self._recompute),
            Field("PPRE1", 8, 3, on_write=self._recompute),
            Field("PPRE2", 11, 3, on_write=self._recompute),
            Field("PLLSRC", 15, 2, on_write=self._recompute),
            Field("PLLXTPRE", 17, on_write=self._pllxtpre_written),
            Field("PLLMUL", 18, 4, on_write=self._recompute),
            Field("USBPRE", 22),
            Field("I2SSRC", 23),
            Field("MCO", 24, 3),
            Field("MCOPRE", 28, 3),  # F303xD/E; MCOF on the smaller parts
            Field("PLLNODIV", 31),
        ))
        cir = Register("CIR", 0x08, fields=(
            *flags("LSIRDYF", "LSERDYF", "HSIRDYF", "HSERDYF", "PLLRDYF", access=RO),
            Field("CSSF", 7, access=RO),
            *flags("LSIRDYIE", "LSERDYIE", "HSIRDYIE", "HSERDYIE", "PLLRDYIE", start=8),
            *flags("LSIRDYC", "LSERDYC", "HSIRDYC", "HSERDYC", "PLLRDYC", start=16, access=WO),
            Field("CSSC", 23, access=WO),
        ), on_write=self._cir_written)
        self.cr, self.cfgr, self.cir = cr, cfgr, cir
        apb2 = ("SYSCFG", 0), ("TIM1", 11), ("SPI1", 12), ("TIM8", 13), ("USART1", 14), \
            ("SPI4", 15), ("TIM15", 16), ("TIM16", 17), ("TIM17", 18), ("TIM20", 20)
        apb1 = ("TIM2", 0), ("TIM3", 1), ("TIM4", 2), ("TIM6", 4), ("TIM7", 5), ("WWDG", 11), \
            ("SPI2", 14), ("SPI3", 15), ("USART2", 17), ("USART3", 18), ("UART4", 19), \
            ("UART5", 20), ("I2C1", 21), ("I2C2", 22), ("USB", 23), ("CAN", 25), \
            ("DAC2", 26), ("PWR", 28), ("DAC1", 29), ("I2C3", 30)
        ahb = ("DMA1", 0), ("DMA2", 1), ("SRAM", 2), ("FLITF", 4), ("FMC", 5), ("CRC", 6), \
            ("IOPH", 16), ("IOPA", 17), ("IOPB", 18), ("IOPC", 19), ("IOPD", 20), \
            ("IOPE", 21), ("IOPF", 22), ("IOPG", 23), ("TSC", 24), ("ADC12", 28), ("ADC34", 29)
        # AHBRSTR has the AHB bits from FMC (bit 5) on, less CRC (RM0316 9.4.11).
        ahb_rst = tuple((n, b) for n, b in ahb if b == 5 or b >= 16)

        def gate(reg: str, off: int, bits: tuple[tuple[str, int], ...], suffix: str,
                 reset: int = 0, bus: str | None = None) -> Register:
            hook = (lambda old, new, bus=bus: self._rst_written(bus, new)) if bus else None
            return Register(reg, off, reset=reset,
                            fields=tuple(Field(n + suffix, b) for n, b in bits), on_write=hook)

        bdcr = Register("BDCR", 0x20, reset=0x18, fields=(
            Field("LSEON", 0, on_write=self._osc_changed),
            Field("LSERDY", 1, access=RO),
            Field("LSEBYP", 2),
            Field("LSEDRV", 3, 2),
            Field("RTCSEL", 8, 2, on_write=self._recompute),
            Field("RTCEN", 15),
            Field("BDRST", 16, on_write=self._bdrst),
        ))
        csr = Register("CSR", 0x24, fields=(
            Field("LSION", 0, on_write=self._osc_changed),
            Field("LSIRDY", 1, access=RO),
            Field("V18PWRRSTF", 23, access=RO),
            Field("RMVF", 24, access=WO, on_write=self._rmvf),
            *flags("OBLRSTF", "PINRSTF", "PORRSTF", "SFTRSTF", "IWDGRSTF", "WWDGRSTF",
                   "LPWRRSTF", start=25, access=RO),
        ))
        cfgr2 = Register("CFGR2", 0x2C, fields=(
            Field("PREDIV", 0, 4, on_write=self._prediv_written),
            Field("ADC12PRES", 4, 5, on_write=self._recompute),
            Field("ADC34PRES", 9, 5, on_write=self._recompute),
        ))
        cfgr3 = Register("CFGR3", 0x30, fields=(
            Field("USART1SW", 0, 2, on_write=self._recompute),
            Field("I2C1SW", 4), Field("I2C2SW", 5), Field("I2C3SW", 6),
            Field("TIM1SW", 8), Field("TIM8SW", 9), Field("TIM15SW", 10),
            Field("TIM16SW", 11), Field("TIM17SW", 13), Field("TIM20SW", 15),
            Field("USART2SW", 16, 2, on_write=self._recompute),
            Field("USART3SW", 18, 2, on_write=self._recompute),
            Field("UART4SW", 20, 2, on_write=self._recompute),
            Field("UART5SW", 22, 2, on_write=self._recompute),
            Field("TIM2SW", 24), Field("TIM34SW", 25),
        ))
        csr.reset = csr["PORRSTF"].mask | csr["PINRSTF"].mask     # power-on
        self.bdcr, self.csr, self.cfgr2, self.cfgr3 = bdcr, csr, cfgr2, cfgr3
        return [
            cr, cfgr, cir,
            gate("APB2RSTR", 0x0C, apb2, "RST", bus="APB2"),
            gate("APB1RSTR", 0x10, apb1, "RST", bus="APB1"),
            gate("AHBENR", 0x14, ahb, "EN", reset=0x14),
            gate("APB2ENR", 0x18, apb2, "EN"),
            gate("APB1ENR", 0x1C, apb1, "EN"),
            bdcr, csr,
            gate("AHBRSTR", 0x28, ahb_rst, "RST", bus="AHB"),
            cfgr2, cfgr3,
        ]

    # -- lifecycle -----------------------------------------------------------
    def reset(self) -> None:
        """Power-on reset: every register, backup domain included."""
        super().reset()
        self._pending_sw = None
        self._recompute()

    def system_reset(self, cause: str = "software") -> None:
        """A system reset keeps the backup domain (BDCR) and LSI and adds a reset flag."""
        bdcr = self.bdcr.value
        flags = {f.name: f.value for f in self.csr.fields if f.name.endswith("RSTF")}
        super().reset()
        self._pending_sw = None
        self.bdcr.value = bdcr
        for name in flags:
            self.csr[name].value = flags[name] or name in RESET_FLAG.get(cause, ("PINRSTF",))
        self._recompute()

    # -- queries for other models -------------------------------------------
    def enabled(self, bus: str, bit: int) -> bool:
        """Whether the clock gate ``bit`` of ``bus`` (AHB, APB1, APB2) is open."""
        return bool(self.get(_ENR[bus]) >> bit & 1)

    # -- behaviour -----------------------------------------------------------
    def _ready(self, source: int) -> bool:
        """Whether SW encoding ``source`` (0 HSI, 1 HSE, 2 PLL) is running."""
        flag = {0: "HSIRDY", 1: "HSERDY", 2: "PLLRDY"}.get(source)
        return flag is not None and bool(self.cr[flag].value)

    def _osc_changed(self, old: int = 0, new: int = 0) -> None:
        cr, cfgr, cir = self.cr, self.cfgr, self.cir
        sws = cfgr["SWS"].value
        pll_src_hsi = cfgr["PLLSRC"].value in (0, 1)
        was = {n: cr[n].value for n in ("HSIRDY", "HSERDY", "PLLRDY")}
        was["LSIRDY"], was["LSERDY"] = self.csr["LSIRDY"].value, self.bdcr["LSERDY"].value
        # The chip refuses to stop the clock it runs on (RM0316 9.4.1).
        if sws == 0 or (sws == 2 and pll_src_hsi):
            cr["HSION"].value = 1
        if sws == 2:
            cr["PLLON"].value = 1
        if sws == 1 or (sws == 2 and not pll_src_hsi):
            cr["HSEON"].value = 1
        cr["HSIRDY"].value = cr["HSION"].value
        cr["HSERDY"].value = cr["HSEON"].value
        cr["PLLRDY"].value = bool(cr["PLLON"].value and (
            cr["HSIRDY"].value if pll_src_hsi else cr["HSERDY"].value))
        self.bdcr["LSERDY"].value = self.bdcr["LSEON"].value
        self.csr["LSIRDY"].value = self.csr["LSION"].value
        now = {n: cr[n].value for n in ("HSIRDY", "HSERDY", "PLLRDY")}
        now["LSIRDY"], now["LSERDY"] = self.csr["LSIRDY"].value, self.bdcr["LSERDY"].value
        for ready in now:   # a ready flag rising with its interrupt enabled sets xRDYF
            if now[ready] and not was[ready] and cir[ready + "IE"].value:
                cir[ready + "F"].value = 1
        if self._pending_sw is not None and self._ready(self._pending_sw):
            self._switch(self._pending_sw)
        self._recompute()

    def _sw_written(self, old: int, new: int) -> None:
        if self._ready(new):
            self._switch(new)
        else:
            self._pending_sw = new  # the chip switches once the source is ready
        self._recompute()

    def _switch(self, source: int) -> None:
        self._pending_sw = None
        self.cfgr["SWS"].value = source

    def _pllxtpre_written(self, old: int, new: int) -> None:
        # PLLXTPRE is the same bit as PREDIV[0] (RM0316 9.4.2).
        prediv = self.cfgr2["PREDIV"]
        prediv.value = (prediv.value & ~1) | new
        self._recompute()

    def _prediv_written(self, old: int, new: int) -> None:
        self.cfgr["PLLXTPRE"].value = new & 1
        self._recompute()

    def _cir_written(self, old: int, new: int) -> None:
        cir = self.cir
        for f in cir.fields:      # xxxC clears xxxF
            if f.access is WO and new & f.mask:
                cir[f.name[:-1] + "F"].value = 0
        self._update_irq()

    def _rmvf(self, old: int, new: int) -> None:
        if new:
            for f in self.csr.fields:
                if f.name.endswith("RSTF"):
                    f.value = 0

    def _bdrst(self, old: int, new: int) -> None:
        if new:  # backup domain reset: BDCR back to its reset value, BDRST kept
            self.bdcr.value = self.bdcr.reset
            self.bdcr["BDRST"].value = 1
            self._recompute()

    def _rst_written(self, bus: str, value: int) -> None:
        if self.on_peripheral_reset is None:
            return
        for bit in range(32):
            if value >> bit & 1:
                self.on_peripheral_reset(bus, bit)

    def _update_irq(self) -> None:
        cir = self.cir
        self.irq.set(any(cir[f + "F"].value and (f == "CSS" or cir[f + "IE"].value)
                         for f in ("LSIRDY", "LSERDY", "HSIRDY", "HSERDY", "PLLRDY", "CSS")))

    # -- the clock tree --------------------------------------------------------
    def pll_hz(self) -> int:
        """PLL output; 0 while the PLL is off."""
        if not self.cr["PLLRDY"].value:
            return 0
        src = self.cfgr["PLLSRC"].value
        prediv = self.cfgr2["PREDIV"].value + 1
        if src == 0:
            vin = HSI_HZ // 2
        elif src == 1:
            vin = HSI_HZ // prediv
        else:
            vin = self.hse_hz // prediv
        mul = min(self.cfgr["PLLMUL"].value + 2, 16)
        return vin * mul

    def _recompute(self, old: int = 0, new: int = 0) -> None:
        cfgr = self.cfgr
        sws = cfgr["SWS"].value
        pll = self.pll_hz()
        sysclk = {0: HSI_HZ, 1: self.hse_hz, 2: pll}.get(sws, HSI_HZ) or HSI_HZ
        hpre = cfgr["HPRE"].value
        hclk = sysclk // (_AHB_DIV[hpre - 8] if hpre >= 8 else 1)
        ppre1, ppre2 = cfgr["PPRE1"].value, cfgr["PPRE2"].value
        div1 = 1 << (ppre1 - 3) if ppre1 >= 4 else 1
        div2 = 1 << (ppre2 - 3) if ppre2 >= 4 else 1
        pclk1, pclk2 = hclk // div1, hclk // div2
        hz = dict(HSI=HSI_HZ, HSE=self.hse_hz if self.cr["HSERDY"].value else 0,
                  LSI=LSI_HZ if self.csr["LSIRDY"].value else 0,
                  LSE=LSE_HZ if self.bdcr["LSERDY"].value else 0,
                  PLLCLK=pll, SYSCLK=sysclk, HCLK=hclk, PCLK1=pclk1, PCLK2=pclk2,
                  TIMCLK1=pclk1 if div1 == 1 else 2 * pclk1,
                  TIMCLK2=pclk2 if div2 == 1 else 2 * pclk2)
        # RTCSEL: 00 no clock, 01 LSE, 10 LSI, 11 HSE/32.
        hz["RTCCLK"] = (0, hz["LSE"], hz["LSI"], hz["HSE"] // 32)[self.bdcr["RTCSEL"].value]
        kernel = {1: sysclk, 2: hz["LSE"], 3: HSI_HZ}
        apb2 = self.regs["APB2ENR"]
        for sw in self.cfgr3.fields:
            if sw.name.endswith("SW") and "ART" in sw.name:    # USARTxSW, UARTxSW
                port = sw.name[:-2]
                pclk = "PCLK2" if f"{port}EN" in apb2._by_name else "PCLK1"   # its bus
                hz[f"{port}CLK"] = kernel.get(sw.value, hz[pclk])
        for adc in ("ADC12", "ADC34"):
            pres = self.cfgr2[f"{adc}PRES"].value
            hz[f"{adc}CLK"] = pll // _adc_div(pres) if pres & 0x10 else 0
        self.clocks.update(**hz)
        self._update_irq()


def _adc_div(pres: int) -> int:
    """ADCxPRES 1xxxx divides the PLL output by 1, 2, 4, 6, 8, 10, 12, 16, 32, ... 256."""
    table = (1, 2, 4, 6, 8, 10, 12, 16, 32, 64, 128, 256)
    return table[min(pres & 0xF, len(table) - 1)]
