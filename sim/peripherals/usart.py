"""F3-style USART (RM0316 section 29), also used for UART4/UART5.

Transmission is paced in virtual time: one transmit data register (TDR) and
one shift register, as on the chip, so TXE, TC and the bytes reaching the host
come at the moments the board would produce them. A byte is handed to ``tx``
when its stop bit ends, which is what makes a job log stream. Received bytes
arrive back to back, one character time apart, and overrun (ORE) like the chip.
"""
from __future__ import annotations

from collections import deque
from collections.abc import Callable

from hwut.sim.regs import Access, Field, Peripheral, Register, flags
from hwut.sim.signals import ClockTree
from hwut.sim.vclock import Event, VirtualClock

from .irq import IrqOut, NoIrq

RO, WO = Access.RO, Access.WO

# Offsets, kept as names for the model's own hot paths.
CR1, CR2, CR3, BRR, GTPR, RTOR, RQR, ISR, ICR, RDR, TDR = (
    0x00, 0x04, 0x08, 0x0C, 0x10, 0x14, 0x18, 0x1C, 0x20, 0x24, 0x28)

# CR1 bits
UE, RE, TE, IDLEIE, RXNEIE, TCIE, TXEIE, PEIE = (1 << b for b in (0, 2, 3, 4, 5, 6, 7, 8))
PCE, M0, CMIE, OVER8, RTOIE, EOBIE, M1 = (1 << b for b in (10, 12, 14, 15, 26, 27, 28))
# ISR bits
PE, FE, NF, ORE, IDLE, RXNE, TC, TXE = (1 << b for b in range(8))
LBDF, CTSIF, RTOF, EOBF, CMF, WUF = (1 << b for b in (8, 9, 11, 12, 17, 20))
BUSY, TEACK, REACK = 1 << 16, 1 << 21, 1 << 22
# CR3 bits
EIE, DMAR, DMAT, CTSIE, OVRDIS, WUFIE = (1 << b for b in (0, 6, 7, 10, 12, 22))
# ICR bits that clear ISR bits of the same position.
ICR_MASK = PE | FE | NF | ORE | IDLE | TC | LBDF | CTSIF | RTOF | EOBF | CMF | WUF

#: STM32F303xE serial ports: base address and NVIC interrupt (RM0316 memory map, vector table).
PORTS: dict[str, tuple[int, int]] = {
    "USART1": (0x4001_3800, 37), "USART2": (0x4000_4400, 38), "USART3": (0x4000_4800, 39),
    "UART4": (0x4000_4C00, 52), "UART5": (0x4000_5000, 53),
}
#: Kernel clock when RCC does not publish ``<name>CLK`` (USART1 is on APB2).
_DEFAULT_CLOCK = {"USART1": "PCLK2"}

#: Stop bits in half bits, by CR2.STOP: 1, 0.5, 2, 1.5.
_STOP_HALF_BITS = (2, 1, 4, 3)


class Usart(Peripheral):
    """One USART/UART; ``tx`` receives each byte as its frame completes."""

    def __init__(self, name: str, base: int, *, clock: VirtualClock, clocks: ClockTree,
                 note: Callable[[str], None] | None = None,
                 irq: IrqOut | None = None,
                 tx: Callable[[bytes], None] | None = None,
                 clock_name: str | None = None,
                 dma_tx_request: Callable[[], None] | None = None,
                 dma_rx_request: Callable[[], None] | None = None) -> None:
        self.clock = clock
        self.clocks = clocks
        self.irq = irq or NoIrq()
        self.tx = tx or (lambda data: None)
        #: ClockTree name of the kernel clock. Default: RCC's ``<name>CLK`` (which
        #: follows CFGR3.USARTxSW) if published, else PCLK2 for USART1, PCLK1 others.
        self.clock_name = clock_name
        #: Called whenever TXE rises with CR3.DMAT set (the DMA then writes TDR).
        self.dma_tx_request = dma_tx_request
        #: Called whenever RXNE rises with CR3.DMAR set (the DMA then reads RDR).
        self.dma_rx_request = dma_rx_request
        self._tdr_full = False
        self._tdr = 0
        self._shift: int | None = None      # byte in the shift register (None: idle frame)
        self._shift_busy = False
        self._tx_event: Event | None = None
        self._rx_queue: deque[int] = deque()
        self._rx_event: Event | None = None
        self._idle_event: Event | None = None
        self._rdr = 0
        self._paced = False
        super().__init__(name, base, note=note)

    # -- declarations --------------------------------------------------------
    def registers(self) -> list[Register]:
        return [
            Register("CR1", CR1, fields=(
                *flags("UE", "UESM", "RE", "TE", "IDLEIE", "RXNEIE", "TCIE", "TXEIE", "PEIE",
                       "PS", "PCE", "WAKE", "M0", "MME", "CMIE", "OVER8"),
                Field("DEDT", 16, 5), Field("DEAT", 21, 5),
                *flags("RTOIE", "EOBIE", "M1", start=26),
            ), on_write=self._cr1_written),
            Register("CR2", CR2, fields=(
                Field("ADDM7", 4), Field("LBDL", 5), Field("LBDIE", 6), Field("LBCL", 8),
                Field("CPHA", 9), Field("CPOL", 10), Field("CLKEN", 11), Field("STOP", 12, 2),
                *flags("LINEN", "SWAP", "RXINV", "TXINV", "DATAINV", "MSBFIRST", "ABREN",
                       start=14),
                Field("ABRMOD", 21, 2), Field("RTOEN", 23), Field("ADD", 24, 8),
            )),
            Register("CR3", CR3, fields=(
                *flags("EIE", "IREN", "IRLP", "HDSEL", "NACK", "SCEN", "DMAR", "DMAT", "RTSE",
                       "CTSE", "CTSIE", "ONEBIT", "OVRDIS", "DDRE", "DEM", "DEP"),
                Field("SCARCNT", 17, 3), Field("WUS", 20, 2), Field("WUFIE", 22),
            ), on_write=self._cr3_written),
            Register("BRR", BRR, fields=(Field("BRR", 0, 16),)),
            Register("GTPR", GTPR, fields=(Field("PSC", 0, 8), Field("GT", 8, 8)), tagged=True),
            Register("RTOR", RTOR, fields=(Field("RTO", 0, 24), Field("BLEN", 24, 8)),
                     tagged=True),
            Register("RQR", RQR, fields=flags("ABRRQ", "SBKRQ", "MMRQ", "RXFRQ", "TXFRQ",
                                              access=WO), on_write=self._rqr_written),
            Register("ISR", ISR, reset=TXE | TC, fields=(
                *flags("PE", "FE", "NF", "ORE", "IDLE", "RXNE", "TC", "TXE", "LBDF", "CTSIF",
                       "CTS", "RTOF", "EOBF", "", "ABRE", "ABRF", "BUSY", "CMF", "SBKF", "RWU",
                       "WUF", "TEACK", "REACK", access=RO),
            )),
            Register("ICR", ICR, fields=(
                *flags("PECF", "FECF", "NCF", "ORECF", "IDLECF", "", "TCCF", "", "LBDCF",
                       "CTSCF", "", "RTOCF", "EOBCF", access=WO),
                Field("CMCF", 17, access=WO), Field("WUCF", 20, access=WO),
            ), on_write=self._icr_written),
            Register("RDR", RDR, fields=(Field("RDR", 0, 9, access=RO),), on_read=self._rdr_read),
            Register("TDR", TDR, fields=(Field("TDR", 0, 9),), on_write=self._tdr_written),
        ]

    def reset(self) -> None:
        for ev in (self._tx_event, self._rx_event, self._idle_event):
            if ev is not None:
                ev.cancel()
        self._tx_event = self._rx_event = self._idle_event = None
        self._tdr_full = False
        self._shift_busy = False
        self._rx_queue.clear()
        super().reset()
        self._update_irq()

    # -- timing ------------------------------------------------------------------
    def char_cycles(self) -> int:
        """Core cycles one frame takes: (start + word + stop bits) x bit time.

        The word length from M1:M0 (7, 8 or 9 bits) includes the parity bit
        when PCE is set, as RM0316 defines it, so parity adds no bit here.
        Bit time is BRR/fck with 16x oversampling and USARTDIV/(2 fck) with 8x,
        where USARTDIV = BRR[15:4]:BRR[2:0]<<1.
        """
        cr1 = self.values[CR1]
        word = 9 if cr1 & M0 else (7 if cr1 & M1 else 8)
        half_bits = 2 * (1 + word) + _STOP_HALF_BITS[(self.values[CR2] >> 12) & 3]
        brr = self.values[BRR] & 0xFFFF
        fck = self.clocks.get(self.kernel_clock()) or self.clocks.get("HCLK") or self.clock.hz
        hclk = self.clocks.get("HCLK") or self.clock.hz
        if cr1 & OVER8:
            div = (brr & ~0xF) | ((brr & 0x7) << 1)
            num, den = half_bits * max(div, 8) * hclk, 4 * fck
        else:
            num, den = half_bits * max(brr, 16) * hclk, 2 * fck
        return max(1, -(-num // den))

    def kernel_clock(self) -> str:
        """The ClockTree name this port's baud rate is derived from."""
        if self.clock_name:
            return self.clock_name
        own = f"{self.name}CLK"
        return own if self.clocks.get(own) else _DEFAULT_CLOCK.get(self.name, "PCLK1")

    # -- ISR helpers ---------------------------------------------------------------
    def _isr(self, mask: int, on: bool) -> None:
        self.values[ISR] = (self.values[ISR] | mask) if on else (self.values[ISR] & ~mask)

    def _update_irq(self) -> None:
        """The one place the interrupt level is decided (RM0316, USART interrupt requests)."""
        isr, cr1, cr3 = self.values[ISR], self.values[CR1], self.values[CR3]
        level = ((cr1 & TXEIE and isr & TXE) or (cr1 & TCIE and isr & TC)
                 or (cr1 & RXNEIE and isr & (RXNE | ORE)) or (cr1 & IDLEIE and isr & IDLE)
                 or (cr1 & PEIE and isr & PE)
                 or (cr3 & EIE and cr3 & DMAR and isr & (FE | NF | ORE))
                 or (cr1 & RTOIE and isr & RTOF) or (cr1 & CMIE and isr & CMF)
                 or (cr1 & EOBIE and isr & EOBF) or (cr3 & CTSIE and isr & CTSIF)
                 or (cr3 & WUFIE and isr & WUF))
        self.irq.set(bool(level))

    # -- control -------------------------------------------------------------
    def _cr1_written(self, value: int) -> None:
        cr1 = self.values[CR1]
        enabled = bool(cr1 & UE)
        tx_on = enabled and bool(cr1 & TE)
        rx_on = enabled and bool(cr1 & RE)
        was_tx_on = bool(self.values[ISR] & TEACK)
        self._isr(TEACK, tx_on)
        self._isr(REACK, rx_on)
        if not enabled:
            # UE=0 stops the USART at once: current operations are discarded
            # and every ISR flag returns to its reset value (RM0316, CR1.UE).
            for ev in (self._tx_event, self._idle_event):
                if ev is not None:
                    ev.cancel()
            self._tx_event = self._idle_event = None
            self._shift_busy = False
            self._tdr_full = False
            self.values[ISR] = TXE | TC
        elif tx_on and not was_tx_on and not self._shift_busy:
            # Setting TE sends an idle frame before the first data frame.
            self._start_shift(None)
        if rx_on:
            self._schedule_rx()
        self._update_irq()

    def _cr3_written(self, value: int) -> None:
        # DMA requests are levels on the chip: enabling DMAT with TXE already set
        # (HAL_UART_Transmit_DMA does exactly that) requests the first byte at once.
        isr, cr3 = self.values[ISR], self.values[CR3]
        if cr3 & DMAT and isr & TXE and self.values[CR1] & TE and self.dma_tx_request:
            self.dma_tx_request()
        if cr3 & DMAR and isr & RXNE and self.dma_rx_request:
            self.dma_rx_request()
        self._update_irq()

    def _rqr_written(self, value: int) -> None:
        if value & (1 << 3):   # RXFRQ: discard the received byte
            self._isr(RXNE, False)
            self._schedule_rx()
        if value & (1 << 4):   # TXFRQ: discard the byte waiting in TDR
            self._tdr_full = False
            self._isr(TXE, True)
        if value & (1 << 1):
            self.note("send break (SBKRQ) not modelled")
        self._update_irq()

    def _icr_written(self, value: int) -> None:
        self._isr(value & ICR_MASK, False)
        self._update_irq()

    # -- transmitter -----------------------------------------------------------
    def _tdr_written(self, value: int) -> None:
        cr1 = self.values[CR1]
        if not (cr1 & UE and cr1 & TE):
            return  # the chip ignores data written while the transmitter is off
        self._tdr = self.values[TDR] & (0x1FF if cr1 & M0 else 0xFF if not cr1 & M1 else 0x7F)
        self._tdr_full = True
        self._isr(TXE, False)
        if not self._shift_busy:
            self._load_shift()
        self._update_irq()

    def _load_shift(self) -> None:
        self._tdr_full = False
        self._isr(TXE, True)
        self._start_shift(self._tdr)
        if self.values[CR3] & DMAT and self.dma_tx_request is not None:
            self.dma_tx_request()

    def _start_shift(self, byte: int | None) -> None:
        self._shift = byte
        self._shift_busy = True
        if byte is not None:
            self._isr(TC, False)
        self._tx_event = self.clock.after(self.char_cycles(), self._frame_sent)

    def _frame_sent(self) -> None:
        self._tx_event = None
        self._shift_busy = False
        if self._shift is not None:
            self.tx(bytes((self._shift & 0xFF,)))
        if self._tdr_full:
            self._load_shift()
        elif self._shift is not None:
            self._isr(TC, True)
        self._update_irq()

    # -- receiver --------------------------------------------------------------
    def receive(self, data: bytes, paced: bool = False) -> None:
        """Host side: queue bytes that arrive back to back, one frame time apart.

        Bytes wait while the receiver is disabled (UE and RE), so input that a
        job supplies at start is not lost to the firmware's own bring-up time.
        ``paced``: the host sends each byte only once the previous one was read
        from RDR (a person typing, not a burst), so slow firmware loses nothing.
        """
        self._paced = paced
        self._rx_queue.extend(data)
        self._schedule_rx()

    def _rx_enabled(self) -> bool:
        cr1 = self.values[CR1]
        return bool(cr1 & UE and cr1 & RE)

    def _schedule_rx(self) -> None:
        if self._rx_event is None and self._rx_queue and self._rx_enabled():
            self._isr(BUSY, True)
            self._rx_event = self.clock.after(self.char_cycles(), self._byte_arrived)

    def _byte_arrived(self) -> None:
        self._rx_event = None
        if not self._rx_enabled():
            self._isr(BUSY, False)
            return
        byte = self._rx_queue.popleft()
        if self.values[ISR] & RXNE:
            if not self.values[CR3] & OVRDIS:
                self._isr(ORE, True)   # the new byte is lost, RDR keeps the old one
        else:
            self._rdr = byte
            self._isr(RXNE, True)
            if self.values[CR3] & DMAR and self.dma_rx_request is not None:
                self.dma_rx_request()
        if self._idle_event is not None:
            self._idle_event.cancel()
            self._idle_event = None
        if self._rx_queue:
            if not (self._paced and self.values[ISR] & RXNE):
                self._schedule_rx()     # a paced host waits until RDR is read
        else:
            self._isr(BUSY, False)
            self._idle_event = self.clock.after(self.char_cycles(), self._line_idle)
        self._update_irq()

    def _line_idle(self) -> None:
        self._idle_event = None
        self._isr(IDLE, True)
        self._update_irq()

    def _rdr_read(self, stored: int) -> int:
        if self.values[ISR] & RXNE:
            self._isr(RXNE, False)
            self._update_irq()
            if self._paced and self._rx_queue:
                self._schedule_rx()
        return self._rdr
