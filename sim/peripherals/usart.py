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

from hwut.sim.regs import Access, Field, Peripheral, Register, flags, tag
from hwut.sim.signals import ClockTree
from hwut.sim.vclock import Event, VirtualClock

from .irq import IrqOut, NoIrq

RO, WO = Access.RO, Access.WO

# Offsets, kept as names for the declarations.
CR1, CR2, CR3, BRR, GTPR, RTOR, RQR, ISR, ICR, RDR, TDR = (
    0x00, 0x04, 0x08, 0x0C, 0x10, 0x14, 0x18, 0x1C, 0x20, 0x24, 0x28)

#: Interrupt sources: ISR flag, register and field of its enable.
_IRQ_SOURCES = (("TXE", "CR1", "TXEIE"), ("TC", "CR1", "TCIE"), ("RXNE", "CR1", "RXNEIE"),
                ("ORE", "CR1", "RXNEIE"), ("IDLE", "CR1", "IDLEIE"), ("PE", "CR1", "PEIE"),
                ("RTOF", "CR1", "RTOIE"), ("CMF", "CR1", "CMIE"), ("EOBF", "CR1", "EOBIE"),
                ("CTSIF", "CR3", "CTSIE"), ("WUF", "CR3", "WUFIE"))
#: Error flags that interrupt with CR3.EIE while DMA receives (DMAR).
_ERROR_FLAGS = ("FE", "NF", "ORE")

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
                 dma_rx_request: Callable[[], None] | None = None,
                 default_clock: str = "PCLK1") -> None:
        self.clock = clock
        self.clocks = clocks
        self.irq = irq or NoIrq()
        self.tx = tx or (lambda data: None)
        #: ClockTree name of the kernel clock. Default: RCC's ``<name>CLK`` (which
        #: follows CFGR3.USARTxSW) if published, else PCLK2 for USART1, PCLK1 others.
        self.clock_name = clock_name
        #: The APB clock of the port's bus, when neither applies (USART1: PCLK2).
        self.default_clock = default_clock
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
        cr1 = Register("CR1", CR1, fields=(
            *flags("UE", "UESM", "RE", "TE", "IDLEIE", "RXNEIE", "TCIE", "TXEIE", "PEIE",
                   "PS", "PCE", "WAKE", "M0", "MME", "CMIE", "OVER8"),
            Field("DEDT", 16, 5), Field("DEAT", 21, 5),
            *flags("RTOIE", "EOBIE", "M1", start=26),
        ), on_write=self._cr1_written)
        cr2 = Register("CR2", CR2, fields=(
            Field("ADDM7", 4), Field("LBDL", 5), Field("LBDIE", 6), Field("LBCL", 8),
            Field("CPHA", 9), Field("CPOL", 10), Field("CLKEN", 11), Field("STOP", 12, 2),
            *flags("LINEN", "SWAP", "RXINV", "TXINV", "DATAINV", "MSBFIRST", "ABREN",
                   start=14),
            Field("ABRMOD", 21, 2), Field("RTOEN", 23), Field("ADD", 24, 8),
        ))
        cr3 = Register("CR3", CR3, fields=(
            *flags("EIE", "IREN", "IRLP", "HDSEL", "NACK", "SCEN", "DMAR", "DMAT", "RTSE",
                   "CTSE", "CTSIE", "ONEBIT", "OVRDIS", "DDRE", "DEM", "DEP"),
            Field("SCARCNT", 17, 3), Field("WUS", 20, 2), Field("WUFIE", 22),
        ), on_write=self._cr3_written)
        brr = Register("BRR", BRR, fields=(Field("BRR", 0, 16),))
        rqr = Register("RQR", RQR, fields=(
            Field("ABRRQ", 0, access=WO), tag("SBKRQ", 1, access=WO), tag("MMRQ", 2, access=WO),
            Field("RXFRQ", 3, access=WO, on_write=self._rxfrq),
            Field("TXFRQ", 4, access=WO, on_write=self._txfrq)),
            on_write=lambda old, new: self._update_irq())
        isr = Register("ISR", ISR, fields=(
            *flags("PE", "FE", "NF", "ORE", "IDLE", "RXNE", "TC", "TXE", "LBDF", "CTSIF",
                   "CTS", "RTOF", "EOBF", "", "ABRE", "ABRF", "BUSY", "CMF", "SBKF", "RWU",
                   "WUF", "TEACK", "REACK", access=RO),
        ))
        isr.reset = isr["TXE"].mask | isr["TC"].mask
        icr = Register("ICR", ICR, fields=(
            *flags("PECF", "FECF", "NCF", "ORECF", "IDLECF", "", "TCCF", "", "LBDCF",
                   "CTSCF", "", "RTOCF", "EOBCF", access=WO),
            Field("CMCF", 17, access=WO), Field("WUCF", 20, access=WO),
        ), on_write=self._icr_written)
        tdr = Register("TDR", TDR, fields=(Field("TDR", 0, 9),), on_write=self._tdr_written)
        # The model's state, by field.
        self.ue, self.re, self.te = cr1["UE"], cr1["RE"], cr1["TE"]
        self.m0, self.m1, self.over8 = cr1["M0"], cr1["M1"], cr1["OVER8"]
        self.txeie, self.tcie, self.rxneie = cr1["TXEIE"], cr1["TCIE"], cr1["RXNEIE"]
        self.idleie, self.peie, self.rtoie = cr1["IDLEIE"], cr1["PEIE"], cr1["RTOIE"]
        self.cmie, self.eobie = cr1["CMIE"], cr1["EOBIE"]
        self.stop = cr2["STOP"]
        self.eie, self.dmar, self.dmat = cr3["EIE"], cr3["DMAR"], cr3["DMAT"]
        self.ctsie, self.ovrdis, self.wufie = cr3["CTSIE"], cr3["OVRDIS"], cr3["WUFIE"]
        self.brr = brr["BRR"]
        self.isr = isr
        self.txe, self.tc, self.rxne = isr["TXE"], isr["TC"], isr["RXNE"]
        self.ore, self.teack = isr["ORE"], isr["TEACK"]
        self.idle, self.pe, self.fe, self.nf = isr["IDLE"], isr["PE"], isr["FE"], isr["NF"]
        self.rtof, self.cmf, self.eobf = isr["RTOF"], isr["CMF"], isr["EOBF"]
        self.ctsif, self.wuf, self.busy = isr["CTSIF"], isr["WUF"], isr["BUSY"]
        self.tdr = tdr["TDR"]
        enables = {"CR1": cr1, "CR3": cr3}
        self._irq_sources = tuple((isr[flag].mask, enables[reg].offset, enables[reg][name].mask)
                                  for flag, reg, name in _IRQ_SOURCES)
        self._irq_flags = sum({f for f, _, _ in self._irq_sources}) | sum(
            isr[n].mask for n in _ERROR_FLAGS)
        self._error_flags = sum(isr[n].mask for n in _ERROR_FLAGS)
        self._error_enables = cr3["EIE"].mask | cr3["DMAR"].mask
        return [
            cr1, cr2, cr3, brr,
            Register("GTPR", GTPR, fields=(Field("PSC", 0, 8), Field("GT", 8, 8)), tagged=True),
            Register("RTOR", RTOR, fields=(Field("RTO", 0, 24), Field("BLEN", 24, 8)),
                     tagged=True),
            rqr, isr, icr,
            Register("RDR", RDR, fields=(Field("RDR", 0, 9, access=RO),), on_read=self._rdr_read),
            tdr,
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
        word = 9 if self.m0.value else (7 if self.m1.value else 8)
        half_bits = 2 * (1 + word) + _STOP_HALF_BITS[self.stop.value]
        brr = self.brr.value
        fck = self.clocks.get(self.kernel_clock()) or self.clocks.get("HCLK") or self.clock.hz
        hclk = self.clocks.get("HCLK") or self.clock.hz
        if self.over8.value:
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
        return own if self.clocks.get(own) else self.default_clock

    # -- interrupts ----------------------------------------------------------------
    def _update_irq(self) -> None:
        """The one place the interrupt level is decided (RM0316, USART interrupt requests):
        a flag with its enable (``_IRQ_SOURCES``), or an error flag with EIE while DMA
        receives. The masks are the declared fields', gathered once (a hot path)."""
        v = self.values
        isr = v[ISR]
        level = False
        if isr & self._irq_flags:
            for flag, off, enable in self._irq_sources:
                if isr & flag and v[off] & enable:
                    level = True
                    break
            else:
                level = bool(isr & self._error_flags
                             and v[CR3] & self._error_enables == self._error_enables)
        self.irq.set(level)

    # -- control -------------------------------------------------------------
    def _cr1_written(self, old: int, new: int) -> None:
        enabled = bool(self.ue.value)
        tx_on = enabled and bool(self.te.value)
        rx_on = enabled and bool(self.re.value)
        was_tx_on = bool(self.teack.value)
        self.teack.value = tx_on
        self.isr["REACK"].value = rx_on
        if not enabled:
            # UE=0 stops the USART at once: current operations are discarded
            # and every ISR flag returns to its reset value (RM0316, CR1.UE).
            for ev in (self._tx_event, self._idle_event):
                if ev is not None:
                    ev.cancel()
            self._tx_event = self._idle_event = None
            self._shift_busy = False
            self._tdr_full = False
            self.isr.value = self.isr.reset
        elif tx_on and not was_tx_on and not self._shift_busy:
            # Setting TE sends an idle frame before the first data frame.
            self._start_shift(None)
        if rx_on:
            self._schedule_rx()
        self._update_irq()

    def _cr3_written(self, old: int, new: int) -> None:
        # DMA requests are levels on the chip: enabling DMAT with TXE already set
        # (HAL_UART_Transmit_DMA does exactly that) requests the first byte at once.
        if self.dmat.value and self.txe.value and self.te.value and self.dma_tx_request:
            self.dma_tx_request()
        if self.dmar.value and self.rxne.value and self.dma_rx_request:
            self.dma_rx_request()
        self._update_irq()

    def _rxfrq(self, old: int, new: int) -> None:
        if new:   # discard the received byte
            self.rxne.value = 0
            self._schedule_rx()

    def _txfrq(self, old: int, new: int) -> None:
        if new:   # discard the byte waiting in TDR
            self._tdr_full = False
            self.txe.value = 1

    def _icr_written(self, old: int, new: int) -> None:
        # Each ICR clear bit sits at the position of the ISR flag it clears.
        self.isr.value &= ~new
        self._update_irq()

    # -- transmitter -----------------------------------------------------------
    def _tdr_written(self, old: int, new: int) -> None:
        if not (self.ue.value and self.te.value):
            return  # the chip ignores data written while the transmitter is off
        data = self.tdr.value
        self._tdr = data if self.m0.value else data & 0xFF if not self.m1.value else data & 0x7F
        self._tdr_full = True
        self.txe.value = 0
        if not self._shift_busy:
            self._load_shift()
        self._update_irq()

    def _load_shift(self) -> None:
        self._tdr_full = False
        self.txe.value = 1
        self._start_shift(self._tdr)
        if self.dmat.value and self.dma_tx_request is not None:
            self.dma_tx_request()

    def _start_shift(self, byte: int | None) -> None:
        self._shift = byte
        self._shift_busy = True
        if byte is not None:
            self.tc.value = 0
        self._tx_event = self.clock.after(self.char_cycles(), self._frame_sent)

    def _frame_sent(self) -> None:
        self._tx_event = None
        self._shift_busy = False
        if self._shift is not None:
            self.tx(bytes((self._shift & 0xFF,)))
        if self._tdr_full:
            self._load_shift()
        elif self._shift is not None:
            self.tc.value = 1
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
        return bool(self.ue.value and self.re.value)

    def _schedule_rx(self) -> None:
        if self._rx_event is None and self._rx_queue and self._rx_enabled():
            self.busy.value = 1
            self._rx_event = self.clock.after(self.char_cycles(), self._byte_arrived)

    def _byte_arrived(self) -> None:
        self._rx_event = None
        if not self._rx_enabled():
            self.busy.value = 0
            return
        byte = self._rx_queue.popleft()
        if self.rxne.value:
            if not self.ovrdis.value:
                self.ore.value = 1   # the new byte is lost, RDR keeps the old one
        else:
            self._rdr = byte
            self.rxne.value = 1
            if self.dmar.value and self.dma_rx_request is not None:
                self.dma_rx_request()
        if self._idle_event is not None:
            self._idle_event.cancel()
            self._idle_event = None
        if self._rx_queue:
            if not (self._paced and self.rxne.value):
                self._schedule_rx()     # a paced host waits until RDR is read
        else:
            self.busy.value = 0
            self._idle_event = self.clock.after(self.char_cycles(), self._line_idle)
        self._update_irq()

    def _line_idle(self) -> None:
        self._idle_event = None
        self.idle.value = 1
        self._update_irq()

    def _rdr_read(self, stored: int) -> int:
        if self.rxne.value:
            self.rxne.value = 0
            self._update_irq()
            if self._paced and self._rx_queue:
                self._schedule_rx()
        return self._rdr
