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
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial

from hwut.sim.regs import Access, Field, Peripheral, Register, flags, per_pin, reserved, word
from hwut.sim.signals import ClockTree
from hwut.sim.vclock import Event, VirtualClock

from .irq import IrqOut, NoIrq

MCR, MSR, TSR, RF0R, RF1R, IER, ESR, BTR = 0x00, 0x04, 0x08, 0x0C, 0x10, 0x14, 0x18, 0x1C
TX_BASE, RX_BASE = 0x180, 0x1B0
FMR, FM1R, FS1R, FFA1R, FA1R, FILTERS = 0x200, 0x204, 0x20C, 0x214, 0x21C, 0x240
BANKS = 28
#: NVIC interrupts: TX (shared with USB_HP), RX0 (shared with USB_LP), RX1, SCE.


def _id_fields(request: str, access: Access = Access.RW) -> tuple[Field, ...]:
    """TIxR/RIxR: STID/EXID, IDE, RTR and (TIxR) the transmit request bit."""
    first = (Field(request, 0, access=access),) if request else ()
    return (*first, Field("RTR", 1, access=access), Field("IDE", 2, access=access),
            Field("EXID", 3, 18, access), Field("STID", 21, 11, access))


def _data_fields(first: int, access: Access = Access.RW) -> tuple[Field, ...]:
    return tuple(Field(f"DATA{first + i}", 8 * i, 8, access) for i in range(4))


#: The identifier word of a mailbox (TIxR/RIxR without TXRQ): frames carry it as is.
_ID_WORD = Register("RIxR", 0, fields=_id_fields(""))


@dataclass(frozen=True)
class CanFrame:
    """A frame as the mailbox registers hold it (RIxR layout for ``id_reg``)."""

    id_reg: int        # STID, EXID, IDE, RTR as _ID_WORD declares them
    dlc: int
    data: bytes

    @classmethod
    def standard(cls, stid: int, data: bytes, rtr: bool = False) -> CanFrame:
        return cls(_ID_WORD.compose(STID=stid, RTR=int(rtr)), len(data), bytes(data[:8]))

    @classmethod
    def extended(cls, exid: int, data: bytes, rtr: bool = False) -> CanFrame:
        """29-bit identifier: its 11 high bits in STID, its 18 low bits in EXID."""
        exid_bits = _ID_WORD["EXID"].width
        word = _ID_WORD.compose(STID=exid >> exid_bits, EXID=exid, IDE=1, RTR=int(rtr))
        return cls(word, len(data), bytes(data[:8]))

    @property
    def ide(self) -> int:
        """1 for an extended (29-bit) identifier."""
        return _ID_WORD["IDE"].of(self.id_reg)

    @property
    def rtr(self) -> int:
        """1 for a remote frame (no data on the bus)."""
        return _ID_WORD["RTR"].of(self.id_reg)


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
    def registers(self) -> list[Register]:
        regs: list[Register] = []
        mcr = Register("MCR", MCR, reset=0x0001_0002, fields=(
            *flags("INRQ", "SLEEP", "TXFP", "RFLM", "NART", "AWUM", "ABOM", "TTCM"),
            Field("RESET", 15, access=Access.RS), Field("DBF", 16)), on_write=self._mcr_written)
        msr = Register("MSR", MSR, reset=0x0000_0C02, fields=(
            Field("INAK", 0, access=Access.RO), Field("SLAK", 1, access=Access.RO),
            *flags("ERRI", "WKUI", "SLAKI", start=2, access=Access.RC_W1),
            *flags("TXM", "RXM", "SAMP", "RX", start=8, access=Access.RO)),
            on_write=lambda old, new: self._update_irq())
        tsr_fields: list[Field] = []
        for n in range(3):
            tsr_fields += [
                Field(f"RQCP{n}", 8 * n, access=Access.RC_W1,
                      on_write=partial(self._rqcp_written, n)),
                Field(f"TXOK{n}", 8 * n + 1, access=Access.RO),
                Field(f"ALST{n}", 8 * n + 2, access=Access.RO),
                Field(f"TERR{n}", 8 * n + 3, access=Access.RO),
                Field(f"ABRQ{n}", 8 * n + 7, access=Access.RS,
                      on_write=partial(self._abrq_written, n))]
        tsr_fields += [Field("CODE", 24, 2, access=Access.RO),
                       *flags("TME0", "TME1", "TME2", "LOW0", "LOW1", "LOW2", start=26,
                              access=Access.RO)]
        tsr = Register("TSR", TSR, reset=0x1C00_0000, fields=tuple(tsr_fields),
                       on_write=lambda old, new: self._update_irq())
        regs += [mcr, msr, tsr]
        rfrs = []
        for n, off in enumerate((RF0R, RF1R)):
            rfrs.append(Register(f"RF{n}R", off, fields=(
                Field(f"FMP{n}", 0, 2, access=Access.RO), Field(f"FULL{n}", 3, access=Access.RC_W1),
                Field(f"FOVR{n}", 4, access=Access.RC_W1), Field(f"RFOM{n}", 5, access=Access.RS)),
                on_write=partial(self._rfr_written, n)))
        regs += rfrs
        ier = Register("IER", IER, fields=(
            *flags("TMEIE", "FMPIE0", "FFIE0", "FOVIE0", "FMPIE1", "FFIE1", "FOVIE1"),
            *flags("EWGIE", "EPVIE", "BOFIE", "LECIE", start=8), Field("ERRIE", 15),
            Field("WKUIE", 16), Field("SLKIE", 17)), on_write=lambda old, new: self._update_irq())
        esr = Register("ESR", ESR, fields=(
            *flags("EWGF", "EPVF", "BOFF", access=Access.RO), Field("LEC", 4, 3),
            Field("TEC", 16, 8, access=Access.RO), Field("REC", 24, 8, access=Access.RO)))
        btr = Register("BTR", BTR, reset=0x0123_0000, fields=(
            Field("BRP", 0, 10), Field("TS1", 16, 4), Field("TS2", 20, 3), Field("SJW", 24, 2),
            Field("LBKM", 30), Field("SILM", 31)),
            # BTR can only change in initialisation mode (RM0316 31.9.2).
            writable_when=lambda: bool(self.inak.value))
        regs += [ier, esr, btr]
        mailboxes = []
        for n in range(3):
            off = TX_BASE + 0x10 * n
            box = (Register(f"TI{n}R", off, fields=_id_fields("TXRQ"),
                            on_write=partial(self._tir_written, n)),
                   Register(f"TDT{n}R", off + 4, fields=(
                       Field("DLC", 0, 4), Field("TGT", 8), Field("TIME", 16, 16))),
                   Register(f"TDL{n}R", off + 8, fields=_data_fields(0)),
                   Register(f"TDH{n}R", off + 12, fields=_data_fields(4)))
            mailboxes.append(box)
            regs += box
        for n in range(2):
            off = RX_BASE + 0x10 * n
            for i, reg in enumerate(("RI", "RDT", "RDL", "RDH")):
                fields = (_id_fields("", Access.RO) if i == 0 else
                          (Field("DLC", 0, 4, Access.RO), Field("FMI", 8, 8, Access.RO),
                           Field("TIME", 16, 16, Access.RO)) if i == 1 else
                          _data_fields(4 * (i - 2), Access.RO))
                regs.append(Register(f"{reg}{n}R", off + 4 * i, fields=fields,
                                     on_read=partial(self._rx_word, n, i)))
        fmr = Register("FMR", FMR, reset=0x2A1C_0E01, fields=(
            Field("FINIT", 0), reserved(1, 7), Field("CAN2SB", 8, 6), reserved(14, 18)))
        banks = [Register(name, off, fields=per_pin(name[:-2] + "x", BANKS, 1))
                 for name, off in (("FM1R", FM1R), ("FS1R", FS1R), ("FFA1R", FFA1R),
                                   ("FA1R", FA1R))]
        regs += [fmr, *banks]
        #: Per filter bank: its two words (FxR1, FxR2).
        self.filter_words = tuple(
            (Register(f"F{bank}R1", FILTERS + 8 * bank, fields=word("FB")),
             Register(f"F{bank}R2", FILTERS + 8 * bank + 4, fields=word("FB")))
            for bank in range(BANKS))
        regs += [r for pair in self.filter_words for r in pair]
        # The model's state, by field.
        self.inrq, self.sleep, self.rflm = mcr["INRQ"], mcr["SLEEP"], mcr["RFLM"]
        self.nart, self.reset_request = mcr["NART"], mcr["RESET"]
        self.inak, self.slak = msr["INAK"], msr["SLAK"]
        self.erri, self.wkui, self.slaki = msr["ERRI"], msr["WKUI"], msr["SLAKI"]
        #: Per mailbox: its TSR fields by kind (RQCP, TXOK, ALST, TERR, ABRQ, TME).
        self.mailbox_status = tuple({kind: tsr[f"{kind}{n}"] for kind in
                                     ("RQCP", "TXOK", "ALST", "TERR", "ABRQ", "TME")}
                                    for n in range(3))
        #: Per mailbox: (TIxR, TDTxR, TDLxR, TDHxR).
        self.mailboxes = tuple(mailboxes)
        #: Per receive FIFO: FMP, FULL, FOVR, RFOM.
        self.fifo_status = tuple(tuple(r[f"{k}{n}"] for k in ("FMP", "FULL", "FOVR", "RFOM"))
                                 for n, r in enumerate(rfrs))
        self.ier, self.lec = ier, esr["LEC"]
        #: Interrupt sources: (enable, flag) field pairs of TX, RX0, RX1 and SCE.
        rqcp = [status["RQCP"] for status in self.mailbox_status]
        self._irq_sources = (
            tuple((ier["TMEIE"], f) for f in rqcp),
            *(((ier[f"FMPIE{n}"], fmp), (ier[f"FFIE{n}"], full), (ier[f"FOVIE{n}"], fovr))
              for n, (fmp, full, fovr, _) in enumerate(self.fifo_status)),
            ((ier["ERRIE"], self.erri), (ier["WKUIE"], self.wkui), (ier["SLKIE"], self.slaki)))
        self.brp, self.ts1, self.ts2 = btr["BRP"], btr["TS1"], btr["TS2"]
        self.lbkm, self.silm = btr["LBKM"], btr["SILM"]
        self.finit = fmr["FINIT"]
        #: FM1R, FS1R, FFA1R, FA1R: one field per filter bank.
        self.filter_mode, self.filter_scale, self.filter_fifo, self.filter_active = (
            r.fields for r in banks)
        return regs

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
        if self.reset_request.value:
            self.reset()
            return
        inak = bool(self.inrq.value)
        slak = bool(self.sleep.value) and not inak
        if slak and not self.slak.value:
            self.slaki.value = 1
        self.inak.value, self.slak.value = inak, slak
        if self._running():
            self._flush_requests()
        self._update_irq()

    def _running(self) -> bool:
        return not (self.inak.value or self.slak.value)

    # -- transmit --------------------------------------------------------------
    def bit_cycles(self) -> int:
        """Core cycles per CAN bit: (1 + TS1+1 + TS2+1) time quanta of (BRP+1) PCLK1 cycles."""
        tq = self.brp.value + 1
        bits = 1 + self.ts1.value + 1 + self.ts2.value + 1
        hclk = self.clocks.get("HCLK") or self.clock.hz
        pclk = self.clocks.get("PCLK1") or hclk
        return max(1, -(-tq * bits * hclk // pclk))

    def _tir_written(self, n: int, old: int, new: int) -> None:
        tme = self.mailbox_status[n]["TME"]
        if not self.mailboxes[n][0]["TXRQ"].value or not tme.value:
            return
        tme.value = 0
        if not self._running():
            return            # sent once the controller leaves init/sleep
        self._start(n)

    def _start(self, n: int) -> None:
        frame = self._frame(n)
        # SOF + arbitration/control (19 std, 39 ext) + data + CRC/ACK/EOF (25) + IFS (3)
        overhead = 47 if not frame.ide else 67
        bits = overhead + (0 if frame.rtr else 8 * frame.dlc)
        self._pending[n] = self.clock.after(bits * self.bit_cycles(), lambda: self._sent(n))

    def _frame(self, n: int) -> CanFrame:
        tir, tdtr, tdlr, tdhr = self.mailboxes[n]
        dlc = min(tdtr["DLC"].value, 8)
        data = (tdlr.value | tdhr.value << 32).to_bytes(8, "little")
        return CanFrame(tir.value & ~tir["TXRQ"].mask, dlc, data[:dlc])

    def _sent(self, n: int) -> None:
        self._pending.pop(n, None)
        frame = self._frame(n)
        status = self.mailbox_status[n]
        loopback = self.lbkm.value
        acked = bool(loopback) or self.bus_tx is not None
        if acked:
            if not self.silm.value and self.bus_tx is not None:
                self.bus_tx(frame)
            if loopback:
                self._accept(frame)
            status["RQCP"].value = status["TXOK"].value = 1
        else:
            self.lec.value = 3                                 # LEC: ACK error
            if not self.nart.value:
                self._start(n)        # retransmitted until acknowledged, as the chip does
                self._update_irq()
                return
            status["RQCP"].value = status["TERR"].value = 1
        self.mailboxes[n][0]["TXRQ"].value = 0
        status["TME"].value = 1
        self._update_irq()

    def _rqcp_written(self, n: int, old: int, new: int) -> None:
        if new:        # clearing RQCP clears TXOK, ALST, TERR
            status = self.mailbox_status[n]
            for kind in ("RQCP", "TXOK", "ALST", "TERR"):
                status[kind].value = 0

    def _abrq_written(self, n: int, old: int, new: int) -> None:
        if new:        # abort a pending request
            ev = self._pending.pop(n, None)
            if ev is not None:
                ev.cancel()
            self.mailboxes[n][0]["TXRQ"].value = 0
            status = self.mailbox_status[n]
            status["ABRQ"].value = 0
            status["TME"].value = status["RQCP"].value = 1

    # -- receive ---------------------------------------------------------------
    def receive(self, frame: CanFrame) -> None:
        """Host side: a frame on the bus; kept if a filter accepts it."""
        if self._running() and not self.lbkm.value:
            self._accept(frame)

    def _accept(self, frame: CanFrame) -> None:
        match = self._filter(frame)
        if match is None:
            return
        fifo, index = match
        queue = self._fifos[fifo]
        if len(queue) == 3:
            self.fifo_status[fifo][2].value = 1               # FOVR
            if not self.rflm.value:                           # RFLM=0: the last one is replaced
                queue.pop()
                queue.append((frame, index))
        else:
            queue.append((frame, index))
        self._fifo_flags(fifo)

    def _filter(self, frame: CanFrame) -> tuple[int, int] | None:
        """(FIFO, filter match index) of the first active bank accepting ``frame``.

        The filter words are compared with the frame's identifier word (RIxR layout),
        bit 0 left out."""
        if self.finit.value:
            return None                                      # filters in init mode: none active
        index = 0
        ident = frame.id_reg & ~1
        for bank in range(BANKS):
            if not self.filter_active[bank].value:
                continue
            r1, r2 = (r.value for r in self.filter_words[bank])
            id_list = self.filter_mode[bank].value
            if self.filter_scale[bank].value:                 # one 32-bit filter
                hit = (ident == r1 & ~1 or ident == r2 & ~1) if id_list \
                    else ident & r2 & ~1 == r1 & r2 & ~1
            else:
                hit = True   # 16-bit scale filters are not decoded: accept
            if hit:
                return self.filter_fifo[bank].value, index
            index += 2 if (id_list or not self.filter_scale[bank].value) else 1
        return None

    def _fifo_flags(self, fifo: int) -> None:
        fmp, full, _, rfom = self.fifo_status[fifo]
        count = len(self._fifos[fifo])
        fmp.value = count
        rfom.value = 0
        if count == 3:
            full.value = 1
        self._update_irq()

    def _rfr_written(self, fifo: int, old: int, new: int) -> None:
        rfom = self.fifo_status[fifo][3]
        if rfom.value:                                       # RFOM: release the output mailbox
            if self._fifos[fifo]:
                self._fifos[fifo].popleft()
            rfom.value = 0
        self._fifo_flags(fifo)

    def _rx_word(self, fifo: int, word: int, _stored: int) -> int:
        """RIxR, RDTxR, RDLxR, RDHxR of the frame at the head of ``fifo``."""
        if not self._fifos[fifo]:
            return 0
        frame, index = self._fifos[fifo][0]
        data = frame.data.ljust(8, b"\0")
        rdtr = self.regs[f"RDT{fifo}R"]
        return (frame.id_reg & ~1, rdtr.compose(DLC=frame.dlc, FMI=index),
                int.from_bytes(data[:4], "little"), int.from_bytes(data[4:], "little"))[word]

    # -- interrupts --------------------------------------------------------------
    def _update_irq(self) -> None:
        """The four CAN interrupt outputs, decided in one place."""
        for out, sources in zip((self.irq_tx, self.irq_rx0, self.irq_rx1, self.irq_sce),
                                self._irq_sources):
            level = False
            for enable, flag in sources:
                if enable.value and flag.value:
                    level = True
                    break
            out.set(level)

    # -- leaving init mode sends what was requested ------------------------------
    def _flush_requests(self) -> None:
        for n in range(3):
            if self.mailboxes[n][0]["TXRQ"].value and n not in self._pending:
                self._start(n)
