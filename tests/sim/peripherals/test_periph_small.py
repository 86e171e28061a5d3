"""PWR, CRC and DBGMCU against RM0316."""
from __future__ import annotations

import binascii

from hypothesis import given, settings
from hypothesis import strategies as st

from hwut.sim.peripherals.crc import Crc
from hwut.sim.peripherals.dbgmcu import Dbgmcu
from hwut.sim.peripherals.pwr import Pwr
from hwut.sim.soc.stm32f303 import soc_args


def crc_unit() -> Crc:
    return Crc("CRC", 0x4002_3000)


def test_pwr_dbp_reads_back_and_flags_clear() -> None:
    p = Pwr("PWR", 0x4000_7000)
    assert p.read(0, 4) == 0 and p.read(4, 4) == 0x8
    p.write(0, 4, 1 << 8)
    assert p.read(0, 4) == 1 << 8
    p.values[4] |= 3                      # as after a wakeup from standby
    p.write(0, 4, (1 << 8) | 0b1100)
    assert p.read(4, 4) == 0x8 and p.read(0, 4) == 1 << 8   # CWUF/CSBF read 0


def test_dbgmcu_idcode() -> None:
    d = Dbgmcu("DBGMCU", 0xE004_2000, **soc_args("DBGMCU"))     # the NUCLEO's F303RE
    assert d.read(0, 4) == 0x1003_6446 and d.read(0, 4) & 0xFFF == 0x446
    d.write(0, 4, 0)
    assert d.read(0, 4) == 0x1003_6446
    d.write(8, 4, 0x1001)
    assert d.read(8, 4) == 0x1001


def test_crc_reset_values() -> None:
    c = crc_unit()
    assert c.read(0x00, 4) == 0xFFFF_FFFF and c.read(0x10, 4) == 0xFFFF_FFFF
    assert c.read(0x14, 4) == 0x04C1_1DB7 and c.read(0x08, 4) == 0


def test_crc32_mpeg2_check_value_by_bytes() -> None:
    c = crc_unit()
    for b in b"123456789":
        c.write(0, 1, b)
    assert c.read(0, 4) == 0x0376_E6E7


def test_crc32_ethernet_with_reversal() -> None:
    c = crc_unit()
    c.write(0x08, 4, (0b01 << 5) | (1 << 7) | 1)   # REV_IN by byte, REV_OUT, RESET
    data = b"123456789"
    for b in data:
        c.write(0, 1, b)
    assert c.read(0, 4) ^ 0xFFFF_FFFF == binascii.crc32(data) == 0xCBF4_3926


@settings(max_examples=100, deadline=None)
@given(st.lists(st.integers(0, 0xFFFF_FFFF), max_size=8))
def test_word_write_equals_its_big_endian_bytes(words: list[int]) -> None:
    a, b = crc_unit(), crc_unit()
    for w in words:
        a.write(0, 4, w)
        for byte in w.to_bytes(4, "big"):
            b.write(0, 1, byte)
    assert a.read(0, 4) == b.read(0, 4)


def test_crc_reset_and_16_bit_polynomial() -> None:
    c = crc_unit()
    c.write(0, 4, 0x1234_5678)
    c.write(0x10, 4, 0xFFFF)
    c.write(0x14, 4, 0x1021)                       # CRC-16/CCITT-FALSE
    c.write(0x08, 4, (0b01 << 3) | 1)
    for b in b"123456789":
        c.write(0, 1, b)
    assert c.read(0, 4) == 0x29B1
