"""ITM stimulus ports (0xE0000000): what firmware writes there is the trace a
debugger would collect over SWO; the job keeps it as its ``other`` file.

On the bench the ITM is half the firmware's and half the debugger's. Firmware
typically sets DEMCR.TRCENA and ITM_TER and writes stimulus port 0 (CMSIS
``ITM_SendChar`` first checks ITM_TCR.ITMENA and TER bit 0); the debugger's
SWV capture (STM32CubeIDE, pyOCD, OpenOCD ``itm port 0 on``) is what unlocks
the ITM, sets ITM_TCR.ITMENA and the trace clock and enables the ports it
captures. ``Itm(..., swv_ports=...)`` is that debugger: see :data:`SWV_TCR`
and :meth:`Itm.reset`. :class:`SwvConsole` is the capture window: it shows
the captured ports' data the way an ITM console shows text.
"""
from __future__ import annotations

from collections.abc import Callable, Iterable

from ..regs import Access, Field, Peripheral, Register, flags, per_pin, word

#: ITM_TCR as a debugger's SWV capture leaves it, the value pyOCD's ``ITM.enable``
#: writes: ITMENA (bit 0), TSENA (bit 1), TXENA (bit 3, DWT packets forwarded),
#: TSPrescale /1 and TraceBusID 1 (bits 22:16). Timestamps and DWT packets are not
#: produced; the TPIU (SWO prescaler, NRZ protocol) and DBGMCU_CR.TRACE_IOEN, the
#: trace clock, are not modelled: the ITM does not wait for them.
SWV_TCR = 0x0001_000B
TCR_ITMENA = 1


class Itm(Peripheral):
    """The ITM. ``out`` receives (port, bytes) for every stimulus write let
    through: 1, 2 or 4 bytes, little-endian, as the SWO packet carries them.

    ``swv_ports`` is the mask of stimulus ports a debugger capturing SWV enables
    (0: no debugger capturing). With one, every power-on reset leaves ITM_TCR =
    :data:`SWV_TCR` and ITM_TER = ``swv_ports`` before the first instruction, as
    a debugger that resets the target and starts the trace before resuming it
    does; firmware may change both afterwards (its own TER write wins). A system
    reset (SYSRESETREQ) keeps the ITM as it is: it is in the debug domain, reset
    only at power-on.
    """

    size = 0x1000

    def __init__(self, name: str, base: int, *, out: Callable[[int, bytes], None] | None = None,
                 swv_ports: int = 0, note: Callable[[str], None] | None = None) -> None:
        #: Receives (port, bytes) for every stimulus write that the ITM lets through.
        self.out = out or (lambda port, data: None)
        self.swv_ports = swv_ports & 0xFFFF_FFFF
        super().__init__(name, base, note=note)

    def registers(self) -> Iterable[Register]:
        for port in range(32):
            # A write is a packet (see ``write``); a read says FIFOREADY.
            yield Register(f"STIM{port}", 4 * port, on_read=lambda _v: 1, stable=True,
                           fields=(Field("STIMULUS", 0, 32, Access.WO),))
        self.ter = Register("TER", 0xE00, fields=per_pin("STIMENA", 32, 1))
        self.tcr = Register("TCR", 0xE80, fields=(
            *flags("ITMENA", "TSENA", "SYNCENA", "TXENA", "SWOENA"),
            Field("TSPrescale", 8, 2), Field("GTSFREQ", 10, 2), Field("TraceBusID", 16, 7),
            Field("BUSY", 23, access=Access.RO)))
        self.itmena = self.tcr["ITMENA"]
        yield self.ter
        yield Register("TPR", 0xE40, fields=(Field("PRIVMASK", 0, 4),))
        yield self.tcr
        yield Register("LAR", 0xFB0, fields=word("KEY", Access.WO))
        yield Register("LSR", 0xFB4, fields=(
            Field("SLI", 0, access=Access.RO), Field("SLK", 1, access=Access.RO),
            Field("nTT", 2, access=Access.RO)))

    def reset(self) -> None:
        super().reset()
        if self.swv_ports:  # the debugger starts its SWV capture
            self.set("TCR", SWV_TCR)
            self.set("TER", self.swv_ports)

    def system_reset(self, cause: str = "software") -> None:
        """Debug domain: a system reset leaves the ITM's configuration alone."""

    def write(self, offset: int, size: int, value: int) -> None:
        port = offset >> 2
        if offset < 0x80:
            # A stimulus write is a packet of 1, 2 or 4 bytes, not a register update.
            if self.itmena.value and self.ter.value >> port & 1:
                self.out(port, (value & ((1 << (8 * size)) - 1)).to_bytes(size, "little"))
            return
        super().write(offset, size, value)


def console_text(packet: bytes) -> bytes:
    """What an ITM console shows for one stimulus write (``packet`` as the SWO
    carries it: 1, 2 or 4 bytes, least significant first).

    An 8-bit write is its byte, whatever it is (``ITM_SendChar`` sends exactly
    one character). A 16- or 32-bit write is its bytes in order *without the
    zero bytes at its top end*: a printf port writing one character per 32-bit
    word (``ITM->PORT[0].u32 = ch``) shows that character, not it and three
    NULs; a port packing four characters to a word shows all four; a packed
    tail ("ab" in 0x00006261) shows its one to three characters; a word of 0
    shows nothing. A zero byte below a character (0x00410000) stays: the
    firmware put it there.
    """
    if len(packet) == 1:
        return packet
    return packet.rstrip(b"\0")


class SwvConsole:
    """The debugger's ITM console on the host: the captured ports' text, decoded
    by :func:`console_text`, to ``sink(port, text)``. Writes to ports the
    capture does not show (not in ``ports``) are on the wire but not displayed."""

    def __init__(self, sink: Callable[[int, bytes], None], ports: int = 1) -> None:
        self.sink = sink
        self.ports = ports

    def __call__(self, port: int, packet: bytes) -> None:
        if self.ports >> port & 1:
            text = console_text(packet)
            if text:
                self.sink(port, text)
