"""CRC calculation unit of the STM32F303 (RM0316 section 6).

Libraries use it to check images and packets and compare against values
computed on the host, so the result must be the chip's bit for bit:
MSB-first CRC over each word, half-word or byte written to DR (the access
size is the data size), programmable polynomial and size, input and output
bit reversal.
"""
from __future__ import annotations

from collections.abc import Callable

from hwut.sim.regs import Access, Field, Peripheral, Register, word

DR, IDR, CR, INIT, POL = 0x00, 0x04, 0x08, 0x10, 0x14
#: POLYSIZE encodings: 32, 16, 8, 7 bits.
_POLY_BITS = (32, 16, 8, 7)


def _reverse(value: int, bits: int) -> int:
    return int(f"{value:0{bits}b}"[::-1], 2)


class Crc(Peripheral):
    """CRC unit; DR reads the running CRC, writes feed data."""

    def __init__(self, name: str, base: int, *, note: Callable[[str], None] | None = None) -> None:
        self._crc = 0xFFFF_FFFF
        self._size = 4
        self._lane = 0
        super().__init__(name, base, note=note)

    def registers(self) -> list[Register]:
        return [
            Register("DR", DR, reset=0xFFFF_FFFF, fields=(Field("DR", 0, 32, Access.WO),),
                     on_read=self._dr_read, on_write=self._dr_written, stable=True),
            Register("IDR", IDR, fields=(Field("IDR", 0, 8),)),
            Register("CR", CR, fields=(
                Field("RESET", 0, access=Access.WO), Field("POLYSIZE", 3, 2),
                Field("REV_IN", 5, 2), Field("REV_OUT", 7),
            ), on_write=self._cr_written),
            Register("INIT", INIT, reset=0xFFFF_FFFF, fields=word("CRC_INIT")),
            Register("POL", POL, reset=0x04C1_1DB7, fields=word("POL")),
        ]

    def reset(self) -> None:
        super().reset()
        self._crc = 0xFFFF_FFFF

    def write(self, offset: int, size: int, value: int) -> None:
        # The data size of a DR write is the access size, which no register sees.
        self._size = size
        self._lane = offset & 3
        super().write(offset, size, value)

    def _bits(self) -> int:
        return _POLY_BITS[self.regs["CR"]["POLYSIZE"].value]

    def _cr_written(self, old: int, value: int) -> None:
        if value & 1:
            self._crc = self.regs["INIT"].value & ((1 << self._bits()) - 1)

    def _dr_written(self, old: int, value: int) -> None:
        width = 8 * self._size
        data = (value >> 8 * self._lane) & ((1 << width) - 1)
        rev_in = self.regs["CR"]["REV_IN"].value
        if rev_in:
            unit = min(width, 8 << (rev_in - 1))
            data = sum(_reverse((data >> s) & ((1 << unit) - 1), unit) << s
                       for s in range(0, width, unit))
        n = self._bits()
        mask = (1 << n) - 1
        poly = self.regs["POL"].value & mask
        crc = self._crc & mask
        for i in range(width - 1, -1, -1):
            feedback = ((crc >> (n - 1)) & 1) ^ ((data >> i) & 1)
            crc = (crc << 1) & mask
            if feedback:
                crc ^= poly
        self._crc = crc

    def _dr_read(self, stored: int) -> int:
        n = self._bits()
        return _reverse(self._crc, n) if self.regs["CR"]["REV_OUT"].value else self._crc
