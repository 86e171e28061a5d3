"""bxCAN of the STM32F303 (RM0316 section 31): mode handshakes, mailboxes, filters.

HAL's ``HAL_CAN_Init``/``HAL_CAN_Start`` wait for INAK and SLAK to follow
INRQ and SLEEP; self-test code sends frames in loopback (optionally silent)
mode and expects them back in a receive FIFO. Frames take their bit time on
the bus (from BTR and PCLK1). In normal mode a frame is acknowledged only if
the host side listens (``tx``); with nobody on the bus the chip sees an ACK
error, which is what this model reports.
"""
from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from hwut.sim.regs import Access, Field, Peripheral, Register, flags, per_pin, word
from hwut.sim.signals import ClockTree
from hwut.sim.vclock import Event, VirtualClock

from .irq import IrqOut, NoIrq

MCR, MSR, TSR, RF0R, RF1R, IER, ESR, BTR = 0x00, 0x04, 0x08, 0x0C, 0x10, 0x14, 0x18, 0x1C
TX_BASE, RX_BASE = 0x180, 0x1B0
FMR, FM1R, FS1R, FFA1R, FA1R, FILTERS = 0x200, 0x204, 0x20C, 0x214, 0x21C, 0x240
INRQ, SLEEP, NART, RESET = 1, 2, 16, 1 << 15
INAK, SLAK, ERRI, WKUI, SLAKI = 1, 2, 4, 8, 16
TXRQ = 1
LBKM, SILM = 1 << 30, 1 << 31
BANKS = 28
#: NVIC interrupts: TX (shared with USB_HP), RX0 (shared with USB_LP), RX1, SCE.


def _id_fields(request: str, access: Access = Access.RW) -> tuple[Field, ...]:
    """TIxR/RIxR: STID/EXID, IDE, RTR and (TIxR) the transmit request bit."""
    first = (Field(request, 0, access=access),) if request else ()
    return (*first, Field("RTR", 1, access=access), Field("IDE", 2, access=access),
            Field("EXID", 3, 18, access), Field("STID", 21, 11, access))


def _data_fields(first: int, access: Access = Access.RW) -> tuple[Field, ...]:
    return tuple(Field(f"DATA{first + i}", 8 * i, 8, access) for i in range(4))


@dataclass(frozen=True)
class CanFrame:
    """A frame as the mailbox registers hold it (RIxR layout for ``id_reg``)."""

    id_reg: int        # STID 31:21, EXID 20:3, IDE 2, RTR 1
    dlc: int
    data: bytes

    @classmethod
    def standard(cls, stid: int, data: bytes, rtr: bool = False) -> CanFrame:
        return cls((stid & 0x7FF) << 21 | int(rtr) << 1, len(data), bytes(data[:8]))

    @classmethod
    def extended(cls, exid: int, data: bytes, rtr: bool = False) -> CanFrame:
        return cls((exid & 0x1FFF_FFFF) << 3 | 4 | int(rtr) << 1, len(data), bytes(data[:8]))


class BxCan(Peripheral):
    """The CAN controller; ``bus_tx`` receives frames sent in normal mode, ``receive`` injects."""

    def __init__(self, name: str, base: int, *, clock: VirtualClock, clocks: ClockTree,
                 note: Callable[[str], None] | None = None,
                 irq_tx: IrqOut | None = None, irq_rx0: IrqOut | None = None,
                 irq_rx1: IrqOut | None = None, irq_sce: IrqOut | None = None,
                 bus_tx: Callable[[CanFrame], None] | None = None) -> None:
        self.clock = clock
        self.clocks = clocks
        self.irq_tx, self.irq_rx0 = irq_tx or NoIrq(), irq_rx0 or NoIrq()
        self.irq_rx1, self.irq_sce = irq_rx1 or NoIrq(), irq_sce or NoIrq()
        #: The host side of the CAN bus: sees frames sent in normal mode and acknowledges them.
        self.bus_tx = bus_tx
        self._fifos: tuple[deque[tuple[CanFrame, int]], deque[tuple[CanFrame, int]]] = (
            deque(), deque())
        self._pending: dict[int, Event] = {}
        super().__init__(name, base, note=note)

    # -- declarations --------------------------------------------------------
    def registers(self) -> Iterable[Register]:
        yield Register("MCR", MCR, reset=0x0001_0002, fields=(
            *flags("INRQ", "SLEEP", "TXFP", "RFLM", "NART", "AWUM", "ABOM", "TTCM"),
            Field("RESET", 15, access=Access.RS), Field("DBF", 16)), on_write=self._mcr_written)
        yield Register("MSR", MSR, reset=0x0000_0C02, fields=(
            Field("INAK", 0, access=Access.RO), Field("SLAK", 1, access=Access.RO),
            *flags("ERRI", "WKUI", "SLAKI", start=2, access=Access.RC_W1),
            *flags("TXM", "RXM", "SAMP", "RX", start=8, access=Access.RO)),
            on_write=lambda old, new: self._update_irq())
        tsr: list[Field] = []
        for n in range(3):
            tsr += [Field(f"RQCP{n}", 8 * n, access=Access.RC_W1),
                    Field(f"TXOK{n}", 8 * n + 1, access=Access.RO),
                    Field(f"ALST{n}", 8 * n + 2, access=Access.RO),
                    Field(f"TERR{n}", 8 * n + 3, access=Access.RO),
                    Field(f"ABRQ{n}", 8 * n + 7, access=Access.RS)]
        tsr += [Field("CODE", 24, 2, access=Access.RO),
                *flags("TME0", "TME1", "TME2", "LOW0", "LOW1", "LOW2", start=26, access=Access.RO)]
        yield Register("TSR", TSR, reset=0x1C00_0000, fields=tuple(tsr), on_write=self._tsr_written)
        for n, off in enumerate((RF0R, RF1R)):
            def rfr_written(old: int, new: int, n: int = n) -> None:
                self._rfr_written(n)

            yield Register(f"RF{n}R", off, fields=(
                Field(f"FMP{n}", 0, 2, access=Access.RO), Field(f"FULL{n}", 3, access=Access.RC_W1),
                Field(f"FOVR{n}", 4, access=Access.RC_W1), Field(f"RFOM{n}", 5, access=Access.RS)),
                on_write=rfr_written)
        yield Register("IER", IER, fields=(
            *flags("TMEIE", "FMPIE0", "FFIE0", "FOVIE0", "FMPIE1", "FFIE1", "FOVIE1"),
            *flags("EWGIE", "EPVIE", "BOFIE", "LECIE", start=8), Field("ERRIE", 15),
            Field("WKUIE", 16), Field("SLKIE", 17)), on_write=lambda old, new: self._update_irq())
        yield Register("ESR", ESR, fields=(
            *flags("EWGF", "EPVF", "BOFF", access=Access.RO), Field("LEC", 4, 3),
            Field("TEC", 16, 8, access=Access.RO), Field("REC", 24, 8, access=Access.RO)))
        yield Register("BTR", BTR, reset=0x0123_0000, fields=(
            Field("BRP", 0, 10), Field("TS1", 16, 4), Field("TS2", 20, 3), Field("SJW", 24, 2),
            Field("LBKM", 30), Field("SILM", 31)),
            # BTR can only change in initialisation mode (RM0316 31.9.2).
            writable_when=lambda: bool(self.values[MSR] & INAK))
        for n in range(3):
            off = TX_BASE + 0x10 * n

            def tir_written(old: int, new: int, n: int = n) -> None:
                self._tir_written(n)

            yield Register(f"TI{n}R", off, fields=_id_fields("TXRQ"), on_write=tir_written)
            yield Register(f"TDT{n}R", off + 4, fields=(
                Field("DLC", 0, 4), Field("TGT", 8), Field("TIME", 16, 16)))
            yield Register(f"TDL{n}R", off + 8, fields=_data_fields(0))
            yield Register(f"TDH{n}R", off + 12, fields=_data_fields(4))
        for n in range(2):
            off = RX_BASE + 0x10 * n
            for i, reg in enumerate(("RI", "RDT", "RDL", "RDH")):
                def rx_word(_stored: int, n: int = n, i: int = i) -> int:
                    return self._rx_word(n, i)

                fields = (_id_fields("", Access.RO) if i == 0 else
                          (Field("DLC", 0, 4, Access.RO), Field("FMI", 8, 8, Access.RO),
                           Field("TIME", 16, 16, Access.RO)) if i == 1 else
                          _data_fields(4 * (i - 2), Access.RO))
                yield Register(f"{reg}{n}R", off + 4 * i, fields=fields, on_read=rx_word)
        yield Register("FMR", FMR, reset=0x2A1C_0E01, fields=(
            Field("FINIT", 0), Field("CAN2SB", 8, 6)))
        for name, off in (("FM1R", FM1R), ("FS1R", FS1R), ("FFA1R", FFA1R), ("FA1R", FA1R)):
            yield Register(name, off, fields=per_pin(name[:-2] + "x", BANKS, 1))
        for bank in range(BANKS):
            yield Register(f"F{bank}R1", FILTERS + 8 * bank, fields=word("FB"))
            yield Register(f"F{bank}R2", FILTERS + 8 * bank + 4, fields=word("FB"))

    def reset(self) -> None:
        for ev in self._pending.values():
            ev.cancel()
        self._pending = {}
        self._fifos[0].clear()
        self._fifos[1].clear()
        super().reset()
        self._update_irq()

    # -- modes ---------------------------------------------------------------
    def _mcr_written(self, old: int, new: int) -> None:
        mcr = self.values[MCR]
        if mcr & RESET:
            self.reset()
            return
        msr = self.values[MSR]
        inak = bool(mcr & INRQ)
        slak = bool(mcr & SLEEP) and not inak
        if slak and not msr & SLAK:
            msr |= SLAKI
        msr = (msr & ~(INAK | SLAK)) | (INAK if inak else 0) | (SLAK if slak else 0)
        self.values[MSR] = msr
        if self._running():
            self._flush_requests()
        self._update_irq()

    def _running(self) -> bool:
        return not self.values[MSR] & (INAK | SLAK)

    # -- transmit --------------------------------------------------------------
    def bit_cycles(self) -> int:
        """Core cycles per CAN bit: (1 + TS1+1 + TS2+1) time quanta of (BRP+1) PCLK1 cycles."""
        btr = self.values[BTR]
        tq = (btr & 0x3FF) + 1
        bits = 1 + ((btr >> 16) & 0xF) + 1 + ((btr >> 20) & 7) + 1
        hclk = self.clocks.get("HCLK") or self.clock.hz
        pclk = self.clocks.get("PCLK1") or hclk
        return max(1, -(-tq * bits * hclk // pclk))

    def _tir_written(self, n: int) -> None:
        tir = self.values[TX_BASE + 0x10 * n]
        tme = 1 << (26 + n)
        if not tir & TXRQ or not self.values[TSR] & tme:
            return
        self.values[TSR] &= ~tme
        if not self._running():
            return            # sent once the controller leaves init/sleep
        self._start(n)

    def _start(self, n: int) -> None:
        frame = self._frame(n)
        # SOF + arbitration/control (19 std, 39 ext) + data + CRC/ACK/EOF (25) + IFS (3)
        overhead = 47 if not frame.id_reg & 4 else 67
        bits = overhead + (0 if frame.id_reg & 2 else 8 * frame.dlc)
        self._pending[n] = self.clock.after(bits * self.bit_cycles(), lambda: self._sent(n))

    def _frame(self, n: int) -> CanFrame:
        off = TX_BASE + 0x10 * n
        dlc = min(self.values[off + 4] & 0xF, 8)
        data = (self.values[off + 8] | self.values[off + 12] << 32).to_bytes(8, "little")
        return CanFrame(self.values[off] & ~TXRQ, dlc, data[:dlc])

    def _sent(self, n: int) -> None:
        self._pending.pop(n, None)
        off = TX_BASE + 0x10 * n
        frame = self._frame(n)
        btr = self.values[BTR]
        acked = bool(btr & LBKM) or self.bus_tx is not None
        shift = 8 * n
        if acked:
            if not btr & SILM and self.bus_tx is not None:
                self.bus_tx(frame)
            if btr & LBKM:
                self._accept(frame)
            self.values[TSR] |= (1 | 2) << shift
        else:
            self.values[ESR] = (self.values[ESR] & ~0x70) | (3 << 4)   # LEC: ACK error
            if not self.values[MCR] & NART:
                self._start(n)        # retransmitted until acknowledged, as the chip does
                self._update_irq()
                return
            self.values[TSR] |= (1 | 8) << shift
        self.values[off] &= ~TXRQ
        self.values[TSR] |= 1 << (26 + n)
        self._update_irq()

    def _tsr_written(self, old: int, value: int) -> None:
        for n in range(3):
            if value >> (8 * n) & 1:        # clearing RQCP clears TXOK, ALST, TERR
                self.values[TSR] &= ~(0xF << 8 * n)
            if value >> (8 * n + 7) & 1:    # ABRQ: abort a pending request
                ev = self._pending.pop(n, None)
                if ev is not None:
                    ev.cancel()
                self.values[TX_BASE + 0x10 * n] &= ~TXRQ
                self.values[TSR] = (self.values[TSR] & ~(0x80 << 8 * n)) | (1 << (26 + n)) \
                    | (1 << 8 * n)
        self._update_irq()

    # -- receive ---------------------------------------------------------------
    def receive(self, frame: CanFrame) -> None:
        """Host side: a frame on the bus; kept if a filter accepts it."""
        if self._running() and not self.values[BTR] & LBKM:
            self._accept(frame)

    def _accept(self, frame: CanFrame) -> None:
        match = self._filter(frame)
        if match is None:
            return
        fifo, index = match
        queue = self._fifos[fifo]
        rfr = RF0R if fifo == 0 else RF1R
        if len(queue) == 3:
            self.values[rfr] |= 1 << 4                       # FOVR
            if not self.values[MCR] & 8:                      # RFLM=0: the last one is replaced
                queue.pop()
                queue.append((frame, index))
        else:
            queue.append((frame, index))
        self._fifo_flags(fifo)

    def _filter(self, frame: CanFrame) -> tuple[int, int] | None:
        """(FIFO, filter match index) of the first active bank accepting ``frame``."""
        if self.values[FMR] & 1:
            return None                                      # filters in init mode: none active
        active, mode, scale, assign = (self.values[r] for r in (FA1R, FM1R, FS1R, FFA1R))
        index = 0
        ident = frame.id_reg & ~1
        for bank in range(BANKS):
            if not active >> bank & 1:
                continue
            r1, r2 = self.values[FILTERS + 8 * bank], self.values[FILTERS + 8 * bank + 4]
            if scale >> bank & 1:                             # one 32-bit filter
                hit = (ident == r1 & ~1 or ident == r2 & ~1) if mode >> bank & 1 \
                    else ident & r2 & ~1 == r1 & r2 & ~1
            else:
                hit = True   # 16-bit scale filters are not decoded: accept
            if hit:
                return (assign >> bank) & 1, index
            index += 2 if (mode >> bank & 1 or not scale >> bank & 1) else 1
        return None

    def _fifo_flags(self, fifo: int) -> None:
        rfr = RF0R if fifo == 0 else RF1R
        count = len(self._fifos[fifo])
        full = 8 if count == 3 else 0
        self.values[rfr] = (self.values[rfr] & ~0x23) | count | (self.values[rfr] & 8 or full)
        self._update_irq()

    def _rfr_written(self, fifo: int) -> None:
        rfr = RF0R if fifo == 0 else RF1R
        if self.values[rfr] & 0x20:                           # RFOM: release the output mailbox
            if self._fifos[fifo]:
                self._fifos[fifo].popleft()
            self.values[rfr] &= ~0x20
        self._fifo_flags(fifo)

    def _rx_word(self, fifo: int, word: int) -> int:
        if not self._fifos[fifo]:
            return 0
        frame, index = self._fifos[fifo][0]
        data = frame.data.ljust(8, b"\0")
        return (frame.id_reg & ~1, frame.dlc | index << 8, int.from_bytes(data[:4], "little"),
                int.from_bytes(data[4:], "little"))[word]

    # -- interrupts --------------------------------------------------------------
    def _update_irq(self) -> None:
        """The four CAN interrupt outputs, decided in one place."""
        ier, tsr, msr = self.values[IER], self.values[TSR], self.values[MSR]
        self.irq_tx.set(bool(ier & 1 and tsr & 0x0001_0101))
        for n, (out, rfr) in enumerate(((self.irq_rx0, RF0R), (self.irq_rx1, RF1R))):
            r = self.values[rfr]
            shift = 1 + 3 * n
            out.set(bool(ier >> shift & 1 and r & 3 or ier >> (shift + 1) & 1 and r & 8
                         or ier >> (shift + 2) & 1 and r & 16))
        sce = (ier >> 15 & 1 and msr & ERRI) or (ier >> 16 & 1 and msr & WKUI) \
            or (ier >> 17 & 1 and msr & SLAKI)
        self.irq_sce.set(bool(sce))

    # -- leaving init mode sends what was requested ------------------------------
    def _flush_requests(self) -> None:
        for n in range(3):
            if self.values[TX_BASE + 0x10 * n] & TXRQ and n not in self._pending:
                self._start(n)
