"""DMA controller of the STM32F303 (RM0316 section 13): DMA1 (7 channels), DMA2 (5).

``HAL_UART_Transmit_DMA`` and friends need it: a peripheral raises a request
(USART TXE with DMAT, timer update with UDE ...) and the channel moves one
data item between the peripheral register and memory, counting CNDTR down and
raising half/complete-transfer flags. Transfers are immediate on request; the
requesting peripheral's own timing (a USART's frame time) paces the stream.
Memory-to-memory channels run to completion when enabled.
"""
from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping

from hwut.sim.regs import Access, Field, Peripheral, Register, word

from .irq import IrqOut

ISR, IFCR = 0x00, 0x04
BusRead = Callable[[int, int], int]
BusWrite = Callable[[int, int, int], None]


def _ch_offset(channel: int) -> int:
    """Offset of CCRx for 1-based ``channel``: CCR, CNDTR, CPAR, CMAR follow it."""
    return 0x08 + 20 * (channel - 1)


class Dma(Peripheral):
    """One DMA controller; ``bus_read``/``bus_write`` reach memory and peripherals.

    ``irqs`` maps 1-based channel numbers to interrupt outputs. The machine
    routes each peripheral's request callback to :meth:`request`.
    """

    def __init__(self, name: str, base: int, *, note: Callable[[str], None] | None = None,
                 channels: int = 7,
                 bus_read: BusRead | None = None, bus_write: BusWrite | None = None,
                 irqs: Mapping[int, IrqOut] | None = None) -> None:
        #: Channels of this controller (DMA1: 7, DMA2: 5); the SoC description gives it.
        self.channels = channels
        self.bus_read = bus_read
        self.bus_write = bus_write
        self.irqs = dict(irqs or {})
        self._remaining: dict[int, int] = {}
        self._pointers: dict[int, tuple[int, int, int]] = {}
        self._queue: list[int] = []
        self._serving = False
        super().__init__(name, base, note=note)

    def registers(self) -> Iterable[Register]:
        #: Per channel: its registers by kind (CCR, CNDTR, CPAR, CMAR).
        self._chan: dict[int, dict[str, Register]] = {}
        isr_fields = []
        for ch in range(1, self.channels + 1):
            for i, flag in enumerate(("GIF", "TCIF", "HTIF", "TEIF")):
                isr_fields.append(Field(f"{flag}{ch}", 4 * (ch - 1) + i, access=Access.RO))
        self.isr = Register("ISR", ISR, fields=tuple(isr_fields))
        yield self.isr
        yield Register("IFCR", IFCR, fields=tuple(
            Field(f"C{f.name}", f.lsb, access=Access.WO) for f in isr_fields),
            on_write=self._ifcr_written)
        for ch in range(1, self.channels + 1):
            off = _ch_offset(ch)

            def ccr_written(old: int, new: int, ch: int = ch) -> None:
                self._ccr_written(ch)

            def idle(ch: int = ch) -> bool:
                return ch not in self._pointers

            ccr = Register(f"CCR{ch}", off, fields=(
                Field("EN", 0), Field("TCIE", 1), Field("HTIE", 2), Field("TEIE", 3),
                Field("DIR", 4), Field("CIRC", 5), Field("PINC", 6), Field("MINC", 7),
                Field("PSIZE", 8, 2), Field("MSIZE", 10, 2), Field("PL", 12, 2),
                Field("MEM2MEM", 14),
            ), on_write=ccr_written)
            # CNDTR is read-only while the channel is enabled.
            cndtr = Register(f"CNDTR{ch}", off + 4, fields=(Field("NDT", 0, 16),),
                             writable_when=idle)
            cpar = Register(f"CPAR{ch}", off + 8, fields=word("PA"))
            cmar = Register(f"CMAR{ch}", off + 12, fields=word("MA"))
            self._chan[ch] = {"CCR": ccr, "CNDTR": cndtr, "CPAR": cpar, "CMAR": cmar}
            yield from (ccr, cndtr, cpar, cmar)

    def reset(self) -> None:
        self._remaining = {}
        self._pointers = {}
        self._queue = []
        super().reset()
        self._update_irq()

    # -- configuration -------------------------------------------------------------
    def _flag(self, name: str, ch: int) -> Field:
        return self.isr[f"{name}{ch}"]

    def _ccr_written(self, ch: int) -> None:
        regs = self._chan[ch]
        ccr = regs["CCR"]
        if ccr["EN"].value and ch not in self._pointers:
            # Enabling latches the addresses and the count (RM0316 13.4.3).
            total = regs["CNDTR"]["NDT"].value
            self._pointers[ch] = (regs["CPAR"].value, regs["CMAR"].value, total)
            self._remaining[ch] = total
            if ccr["MEM2MEM"].value:
                while ch in self._pointers and self._remaining.get(ch):
                    self._transfer(ch)
        elif not ccr["EN"].value:
            self._pointers.pop(ch, None)
        self._update_irq()

    def _ifcr_written(self, old: int, value: int) -> None:
        for ch in range(1, self.channels + 1):
            if value & self.regs["IFCR"][f"CGIF{ch}"].mask:   # CGIF clears all four flags
                for flag in ("GIF", "TCIF", "HTIF", "TEIF"):
                    self._flag(flag, ch).value = 0
        self.isr.value &= ~value        # each CxxIF clears the flag at its position
        self._update_irq()

    # -- requests ----------------------------------------------------------------
    def request(self, channel: int) -> None:
        """A peripheral asks ``channel`` (1-based) for one data item.

        A request raised while a transfer is under way (writing TDR makes the
        USART ask for the next byte at once) is served after it, in order, as
        the controller serves requests one at a time.
        """
        self._queue.append(channel)
        if self._serving:
            return
        self._serving = True
        try:
            while self._queue:
                ch = self._queue.pop(0)
                if ch in self._pointers and self._remaining.get(ch):
                    self._transfer(ch)
        finally:
            self._serving = False
        self._update_irq()

    def _transfer(self, ch: int) -> None:
        regs = self._chan[ch]
        ccr = regs["CCR"]
        psize = 1 << ccr["PSIZE"].value
        msize = 1 << ccr["MSIZE"].value
        par, mar, total = self._pointers[ch]
        done = total - self._remaining[ch]
        paddr = par + (done * psize if ccr["PINC"].value else 0)
        maddr = mar + (done * msize if ccr["MINC"].value else 0)
        src, ssize, dst, dsize = ((maddr, msize, paddr, psize) if ccr["DIR"].value
                                  else (paddr, psize, maddr, msize))
        if self.bus_read is None or self.bus_write is None:
            self._error(ch)
            return
        try:
            value = self.bus_read(src, ssize)
            self.bus_write(dst, dsize, value & ((1 << 8 * dsize) - 1))
        except Exception as exc:  # a bus fault on a DMA access is the transfer error flag
            self.note(f"channel {ch}: bus error ({exc}); channel disabled")
            self._error(ch)
            return
        self._remaining[ch] -= 1
        left = self._remaining[ch]
        if left == total // 2:
            self._flag("GIF", ch).value = self._flag("HTIF", ch).value = 1
        if left == 0:
            self._flag("GIF", ch).value = self._flag("TCIF", ch).value = 1
            if ccr["CIRC"].value and not ccr["MEM2MEM"].value:
                self._remaining[ch] = total
        regs["CNDTR"]["NDT"].value = self._remaining[ch]

    def _error(self, ch: int) -> None:
        self._flag("GIF", ch).value = self._flag("TEIF", ch).value = 1
        self._chan[ch]["CCR"]["EN"].value = 0
        self._pointers.pop(ch, None)

    def _update_irq(self) -> None:
        """A channel's line is high while an enabled flag of it is set."""
        for ch, out in self.irqs.items():
            ccr = self._chan[ch]["CCR"] if ch in self._chan else None
            out.set(ccr is not None and any(
                self._flag(flag, ch).value and ccr[flag[:-1] + "E"].value
                for flag in ("TCIF", "HTIF", "TEIF")))
