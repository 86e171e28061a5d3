"""ITM stimulus ports (0xE0000000): what firmware writes there is the trace a
debugger would collect over SWO; the job keeps it as its ``other`` file."""
from __future__ import annotations

from collections.abc import Callable, Iterable

from ..regs import Peripheral, Register


class Itm(Peripheral):
    size = 0x1000

    def __init__(self, name: str, base: int, *, out: Callable[[int, bytes], None] | None = None,
                 note: Callable[[str], None] | None = None) -> None:
        #: Receives (port, bytes) for every stimulus write that the ITM lets through.
        self.out = out or (lambda port, data: None)
        super().__init__(name, base, note=note)

    def registers(self) -> Iterable[Register]:
        for port in range(32):
            yield Register(f"STIM{port}", 4 * port, on_read=lambda _v: 1,  # FIFOREADY
                           write_mask=0, stable=True)
        yield Register("TER", 0xE00)
        yield Register("TPR", 0xE40, write_mask=0xF)
        yield Register("TCR", 0xE80, write_mask=0x00FF_FF3F)
        yield Register("LAR", 0xFB0, write_mask=0)
        yield Register("LSR", 0xFB4, write_mask=0)

    def write(self, offset: int, size: int, value: int) -> None:
        port = offset >> 2
        if offset < 0x80:
            # A stimulus write is a packet of 1, 2 or 4 bytes, not a register update.
            if self.get("TCR") & 1 and self.get("TER") >> port & 1:
                self.out(port, (value & ((1 << (8 * size)) - 1)).to_bytes(size, "little"))
            return
        super().write(offset, size, value)
