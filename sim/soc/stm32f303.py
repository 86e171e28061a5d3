"""STM32F303 (RM0316; DS9118 for xB/xC, DS10362 for xD/xE): memory map, peripherals and their IRQ numbers.

The F303 parts differ in memory sizes only as far as our models go: ``stm32f303``
builds the spec from the sizes, and each part is one call (variants are data).
"""
from __future__ import annotations

import struct
from collections.abc import Callable
from typing import Any

from .spec import MemorySpec, PeripheralSpec, SocSpec

KIB = 1024
FLASH_BASE = 0x0800_0000
SRAM_BASE = 0x2000_0000
CCM_BASE = 0x1000_0000
SYSMEM_BASE, SYSMEM_SIZE = 0x1FFF_D800, 0x2800  # system memory, UID, flash size, option bytes
#: Where the chip reports its flash size in KiB (RM0316 34.2, "Memory size data register").
FLASH_SIZE_REGISTER = 0x1FFF_F7CC
UID_ADDRESS = 0x1FFF_F7AC
OPTION_BYTES_ADDRESS = 0x1FFF_F800

# Option bytes: RDP level 0 (0xAA/0x55), USER 0x7F, data bytes and WRP erased.
_OPTION_BYTES = bytes([0xAA, 0x55, 0x7F, 0x80, 0xFF, 0x00, 0xFF, 0x00,
                       0xFF, 0x00, 0xFF, 0x00, 0xFF, 0x00, 0xFF, 0x00])
_UID = struct.pack("<III", 0x0033_0021, 0x3436_5111, 0x3036_3538)  # a plausible lot/wafer/xy

CORE = "core"
P = "peripherals"


def _core_peripherals() -> tuple[PeripheralSpec, ...]:
    return (
        PeripheralSpec("ICTR", f"{CORE}.nvic:ControlType", 0xE000_E000),
        PeripheralSpec("SysTick", f"{CORE}.systick:SysTick", 0xE000_E010),
        PeripheralSpec("NVIC", f"{CORE}.nvic:Nvic", 0xE000_E100),
        PeripheralSpec("SCB", f"{CORE}.scb:Scb", 0xE000_ED00),
        PeripheralSpec("CoreDebug", f"{CORE}.dwt:CoreDebug", 0xE000_EDF0),
        PeripheralSpec("STIR", f"{CORE}.nvic:SoftwareTrigger", 0xE000_EF00),
        PeripheralSpec("DWT", f"{CORE}.dwt:Dwt", 0xE000_1000),
        PeripheralSpec("ITM", f"{CORE}.itm:Itm", 0xE000_0000),
    )


#: GPIO reset values that differ from 0 (RM0316 11.4): the debug pins are
#: configured at reset (PA13/14/15, PB3/4).
GPIO_RESETS: dict[str, dict[str, int]] = {
    "GPIOA": {"MODER": 0xA800_0000, "OSPEEDR": 0x0C00_0000, "PUPDR": 0x6400_0000},
    "GPIOB": {"MODER": 0x0000_0280, "PUPDR": 0x0000_0100},
}


#: NVIC interrupt of each EXTI line (RM0316 table 82, EXTI line connections in 14.2.5);
#: lines 5..9 and 10..15 share one each.
EXTI_IRQ_OF_LINE: dict[int, int] = {
    0: 6, 1: 7, 2: 8, 3: 9, 4: 10,
    **{line: 23 for line in range(5, 10)},
    **{line: 40 for line in range(10, 16)},
    16: 1,    # PVD
    17: 41,   # RTC alarm
    18: 42,   # USB wakeup
    19: 2,    # RTC tamper/timestamp
    20: 3,    # RTC wakeup
    21: 64, 22: 64, 29: 64,   # COMP1/2, COMP3 (COMP1_2_3)
    30: 65, 31: 65, 32: 65,   # COMP4/5/6 (COMP4_5_6)
    33: 66,   # COMP7
}
#: Direct EXTI lines (the I2C and U(S)ART wakeups): no edge detection, no pending bit.
EXTI_DIRECT_LINES = frozenset({23, 24, 25, 26, 27, 28, 34, 35})


def _device_peripherals(gpio_ports: str, idcode: int) -> tuple[PeripheralSpec, ...]:
    gpio = tuple(PeripheralSpec(f"GPIO{port}", f"{P}.gpio:GpioPort", 0x4800_0000 + 0x400 * i,
                                args={"resets": GPIO_RESETS.get(f"GPIO{port}", {})})
                 for i, port in enumerate(gpio_ports))
    serial = (
        PeripheralSpec("USART1", f"{P}.usart:Usart", 0x4001_3800, {"irq": 37},
                       {"clock_name": "USART1CLK", "default_clock": "PCLK2"}),
        PeripheralSpec("USART2", f"{P}.usart:Usart", 0x4000_4400, {"irq": 38},
                       {"clock_name": "USART2CLK"}),
        PeripheralSpec("USART3", f"{P}.usart:Usart", 0x4000_4800, {"irq": 39},
                       {"clock_name": "USART3CLK"}),
        PeripheralSpec("UART4", f"{P}.usart:Usart", 0x4000_4C00, {"irq": 52},
                       {"clock_name": "UART4CLK"}),
        PeripheralSpec("UART5", f"{P}.usart:Usart", 0x4000_5000, {"irq": 53},
                       {"clock_name": "UART5CLK"}),
    )
    def timer(name: str, base: int, irqs: dict, kind: str, clock_name: str) -> PeripheralSpec:
        return PeripheralSpec(name, f"{P}.timer:Timer", base, irqs,
                              {"kind": kind, "clock_name": clock_name})

    timers = (
        timer("TIM2", 0x4000_0000, {"irq": 28}, "general32", "TIMCLK1"),
        timer("TIM3", 0x4000_0400, {"irq": 29}, "general16", "TIMCLK1"),
        timer("TIM4", 0x4000_0800, {"irq": 30}, "general16", "TIMCLK1"),
        timer("TIM6", 0x4000_1000, {"irq": 54}, "basic", "TIMCLK1"),
        timer("TIM7", 0x4000_1400, {"irq": 55}, "basic", "TIMCLK1"),
        timer("TIM1", 0x4001_2C00, {"irq_brk": 24, "irq_up": 25, "irq_trg_com": 26, "irq_cc": 27},
              "advanced", "TIMCLK2"),
        timer("TIM8", 0x4001_3400, {"irq_brk": 43, "irq_up": 44, "irq_trg_com": 45, "irq_cc": 46},
              "advanced", "TIMCLK2"),
        timer("TIM15", 0x4001_4000, {"irq": 24}, "tim15", "TIMCLK2"),
        timer("TIM16", 0x4001_4400, {"irq": 25}, "tim16", "TIMCLK2"),
        timer("TIM17", 0x4001_4800, {"irq": 26}, "tim16", "TIMCLK2"),
    )
    analog = (
        PeripheralSpec("ADC12_COMMON", f"{P}.adc:AdcCommon", 0x5000_0300),
        PeripheralSpec("ADC34_COMMON", f"{P}.adc:AdcCommon", 0x5000_0700),
        # ``common``: the name of the instance's common block (built before it).
        PeripheralSpec("ADC1", f"{P}.adc:Adc", 0x5000_0000, {"irq": 18},
                       {"clock_name": "ADC12CLK", "common": "ADC12_COMMON"}),
        PeripheralSpec("ADC2", f"{P}.adc:Adc", 0x5000_0100, {"irq": 18},
                       {"clock_name": "ADC12CLK", "common": "ADC12_COMMON"}),
        PeripheralSpec("ADC3", f"{P}.adc:Adc", 0x5000_0400, {"irq": 47},
                       {"clock_name": "ADC34CLK", "common": "ADC34_COMMON"}),
        PeripheralSpec("ADC4", f"{P}.adc:Adc", 0x5000_0500, {"irq": 61},
                       {"clock_name": "ADC34CLK", "common": "ADC34_COMMON"}),
    )
    return (
        PeripheralSpec("RCC", f"{P}.rcc:Rcc", 0x4002_1000, {"irq": 5}),
        *timers,
        *analog,
        PeripheralSpec("DMA1", f"{P}.dma:Dma", 0x4002_0000,
                       {"irqs": {ch: 10 + ch for ch in range(1, 8)}}, {"channels": 7}),
        PeripheralSpec("DMA2", f"{P}.dma:Dma", 0x4002_0400,
                       {"irqs": {ch: 55 + ch for ch in range(1, 6)}}, {"channels": 5}),
        PeripheralSpec("CAN", f"{P}.bxcan:BxCan", 0x4000_6400,
                       {"irq_tx": 19, "irq_rx0": 20, "irq_rx1": 21, "irq_sce": 22}),
        PeripheralSpec("RTC", f"{P}.rtc:Rtc", 0x4000_2800),
        PeripheralSpec("PWR", f"{P}.pwr:Pwr", 0x4000_7000),
        PeripheralSpec("CRC", f"{P}.crc:Crc", 0x4002_3000),
        PeripheralSpec("DBGMCU", f"{P}.dbgmcu:Dbgmcu", 0xE004_2000, args={"idcode": idcode}),
        *gpio,
        *serial,
        # The array it programs is the "flash" memory (the builder passes its place).
        PeripheralSpec("FLASH", f"{P}.flash_if:FlashInterface", 0x4002_2000, {"irq": 4}),
        PeripheralSpec("SYSCFG", f"{P}.syscfg:Syscfg", 0x4001_0000),
        PeripheralSpec("EXTI", f"{P}.exti:Exti", 0x4001_0400,
                       {"irqs": tuple(sorted(set(EXTI_IRQ_OF_LINE.values())))},
                       {"irq_of_line": EXTI_IRQ_OF_LINE, "direct_lines": EXTI_DIRECT_LINES}),
    )


def _gpio_ports(peripherals: dict) -> dict[int, Any]:
    """The part's GPIO ports by index (0 = A .. 7 = H; A-F, or A-H on the xD/xE)."""
    return {i: peripherals[f"GPIO{p}"] for i, p in enumerate("ABCDEFGH")
            if f"GPIO{p}" in peripherals}


def _connect_exti(peripherals: dict) -> None:
    from ..peripherals.exti import connect_gpio_exti
    exti = peripherals["EXTI"]
    # EXTICR codes 0b110/0b111 select PG/PH, where the part has them (RM0316, SYSCFG_EXTICRx)
    connect_gpio_exti(_gpio_ports(peripherals), peripherals["SYSCFG"], exti)
    rtc = peripherals["RTC"]
    rtc.on_wakeup = lambda: exti.line_edge(20, True)
    rtc.on_alarm = lambda: exti.line_edge(17, True)


#: Timer inputs on pins (DS9118 alternate-function table): (port, pin, AF) → timer, channel
TIMER_INPUTS = {
    ("GPIOA", 0, 1): ("TIM2", 1), ("GPIOA", 5, 1): ("TIM2", 1), ("GPIOA", 15, 1): ("TIM2", 1),
    ("GPIOA", 1, 1): ("TIM2", 2), ("GPIOB", 3, 1): ("TIM2", 2),
    ("GPIOA", 2, 1): ("TIM2", 3), ("GPIOB", 10, 1): ("TIM2", 3),
    ("GPIOA", 3, 1): ("TIM2", 4), ("GPIOB", 11, 1): ("TIM2", 4),
    ("GPIOA", 6, 2): ("TIM3", 1), ("GPIOB", 4, 2): ("TIM3", 1), ("GPIOC", 6, 2): ("TIM3", 1),
    ("GPIOA", 7, 2): ("TIM3", 2), ("GPIOB", 5, 2): ("TIM3", 2), ("GPIOC", 7, 2): ("TIM3", 2),
    ("GPIOB", 0, 2): ("TIM3", 3), ("GPIOC", 8, 2): ("TIM3", 3),
    ("GPIOB", 1, 2): ("TIM3", 4), ("GPIOC", 9, 2): ("TIM3", 4),
    ("GPIOB", 6, 2): ("TIM4", 1), ("GPIOB", 7, 2): ("TIM4", 2),
    ("GPIOB", 8, 2): ("TIM4", 3), ("GPIOB", 9, 2): ("TIM4", 4),
    ("GPIOA", 2, 9): ("TIM15", 1), ("GPIOA", 3, 9): ("TIM15", 2),
    ("GPIOA", 6, 1): ("TIM16", 1), ("GPIOB", 4, 1): ("TIM16", 1), ("GPIOB", 8, 1): ("TIM16", 1),
    ("GPIOA", 7, 1): ("TIM17", 1), ("GPIOB", 9, 1): ("TIM17", 1),
}


def _connect_capture(peripherals: dict) -> None:
    """Edges on a pin in alternate-function mode reach the timer channel it feeds."""
    for gpio in _gpio_ports(peripherals).values():
        gpio.on_input_change(_capture_router(gpio, peripherals))


def _capture_router(gpio: Any, peripherals: dict) -> Callable[[int, int], None]:
    def changed(pin: int, level: int) -> None:
        if (gpio.get("MODER") >> 2 * pin) & 3 != 2:  # not alternate function
            return
        afr = gpio.get("AFRL" if pin < 8 else "AFRH")
        af = (afr >> 4 * (pin & 7)) & 0xF
        target = TIMER_INPUTS.get((gpio.name, pin, af))
        if target is not None:
            peripherals[target[0]].input_edge(target[1], bool(level))
    return changed


#: DMA request lines (RM0316 tables 78/79): peripheral, request → controller, channel
DMA_REQUESTS = {
    ("USART1", "tx"): ("DMA1", 4), ("USART1", "rx"): ("DMA1", 5),
    ("USART2", "tx"): ("DMA1", 7), ("USART2", "rx"): ("DMA1", 6),
    ("USART3", "tx"): ("DMA1", 2), ("USART3", "rx"): ("DMA1", 3),
    ("UART4", "tx"): ("DMA2", 5), ("UART4", "rx"): ("DMA2", 3),
    ("TIM2", "UP"): ("DMA1", 2), ("TIM6", "UP"): ("DMA2", 3), ("TIM7", "UP"): ("DMA2", 4),
    ("ADC1", "adc"): ("DMA1", 1), ("ADC2", "adc"): ("DMA2", 1),
}


def _connect_dma(peripherals: dict) -> None:
    for (name, kind), (controller, channel) in DMA_REQUESTS.items():
        p, dma = peripherals[name], peripherals[controller]
        go = _requester(dma, channel)
        if kind == "tx":
            p.dma_tx_request = go
        elif kind == "rx":
            p.dma_rx_request = go
        elif kind == "UP":  # timers name the request: only the update one goes here
            p.dma_request = _only_update(p.dma_request, go)
        else:
            p.dma_request = go


def _requester(dma: Any, channel: int) -> Callable[..., None]:
    return lambda *_: dma.request(channel)


def _only_update(previous: Callable[[str], None] | None,
                 go: Callable[..., None]) -> Callable[[str], None]:
    def request(which: str) -> None:
        if which == "UP":
            go()
        elif previous is not None:
            previous(which)
    return request


def stm32f303(name: str, *, flash_kib: int, sram_kib: int, ccm_kib: int,
              idcode: int, gpio_ports: str = "ABCDEF") -> SocSpec:
    """One F303 part: the same core, peripherals and map, with its memory sizes and
    GPIO ports.

    The flash size register (0x1FFFF7CC) reads the part's flash in KiB, as on the chip.
    ``gpio_ports`` are the ports the die has, from 0x48000000 at 0x400 apart: the
    xD/xE die has A-H (GPIOG 0x48001800, GPIOH 0x48001C00, clocked by RCC_AHBENR
    IOPGEN bit 23 and IOPHEN bit 16, RM0316 9.4.6), the xB/xC die A-F, where
    0x48001800 upwards is reserved and a BusFault. ``idcode`` is what DBGMCU_IDCODE
    reads: REV_ID in bits 31:16, DEV_ID (0x446 xD/xE, 0x422 xB/xC) in 11:0.
    """
    flash_size, sram_size, ccm_size = flash_kib * KIB, sram_kib * KIB, ccm_kib * KIB
    return SocSpec(
        name=name,
        cpu="cortex-m4f",
        irq_count=82,
        priority_bits=4,
        memories=(
            MemorySpec("flash", FLASH_BASE, flash_size, writable=False, fill=0xFF,
                       aliases=(0x0,)),
            MemorySpec("sram", SRAM_BASE, sram_size),
            MemorySpec("ccmram", CCM_BASE, ccm_size),
            MemorySpec("system", SYSMEM_BASE, SYSMEM_SIZE, writable=False, fill=0xFF, content=(
                (UID_ADDRESS - SYSMEM_BASE, _UID),
                (FLASH_SIZE_REGISTER - SYSMEM_BASE, struct.pack("<H", flash_kib)),
                (OPTION_BYTES_ADDRESS - SYSMEM_BASE, _OPTION_BYTES),
            )),
        ),
        peripherals=_core_peripherals() + _device_peripherals(gpio_ports, idcode),
        wiring=(_connect_exti, _connect_dma, _connect_capture),
        peripheral_space=(
            (0x4000_0000, 0x0002_4400),  # APB1, APB2, AHB1
            (0x4800_0000, 0x400 * len(gpio_ports)),  # AHB2: the GPIO ports
            (0x5000_0000, 0x0000_0800),  # AHB3: ADC1-4
            (0xE000_0000, 0x0010_0000),  # private peripheral bus (ITM, DWT, SCS, TPIU...)
        ),
        bitband=((0x2200_0000, SRAM_BASE, 0x10_0000), (0x4200_0000, 0x4000_0000, 0x10_0000)),
    )


#: NUCLEO-F303RE's part (DS10362, "xE"): 512 KiB flash, 64 KiB SRAM, 16 KiB CCM SRAM.
#: The xD/xE die has GPIOG and GPIOH; in the 64-pin package of the RE their pins
#: are not bonded out, but the registers answer (ChibiOS initialises every port).
STM32F303RE = stm32f303("stm32f303re", flash_kib=512, sram_kib=64, ccm_kib=16,
                        idcode=0x1003_6446, gpio_ports="ABCDEFGH")
#: STM32F3DISCOVERY's part (DS9118, "xC"): 256 KiB flash, 40 KiB SRAM, 8 KiB CCM SRAM.
STM32F303VC = stm32f303("stm32f303vc", flash_kib=256, sram_kib=40, ccm_kib=8,
                        idcode=0x1003_6422)

SOCS: dict[str, SocSpec] = {s.name: s for s in (STM32F303RE, STM32F303VC)}


def soc_args(name: str, soc: SocSpec = STM32F303RE) -> dict[str, Any]:
    """The per-instance constructor arguments the SoC description gives ``name``
    (timer kind and clock, GPIO reset values ...): what a test building one model
    alone passes, so that the description stays the only source."""
    for p in soc.peripherals:
        if p.name == name:
            return dict(p.args)
    raise KeyError(f"{soc.name} has no peripheral {name!r}")
