"""FLASH interface against RM0316: ACR read-back, unlock sequence, erase, program."""
from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from hwut.sim.peripherals.flash_if import FlashInterface
from hwut.sim.soc.stm32f303 import FLASH_BASE

ACR, KEYR, OPTKEYR, SR, CR, AR, OBR, WRPR = 0x00, 0x04, 0x08, 0x0C, 0x10, 0x14, 0x1C, 0x20
PG, PER, MER, STRT, LOCK, OPTWRE = 1, 2, 4, 64, 128, 512
EOP, PGERR = 32, 4


class Array:
    """A flash array of real bytes (what the machine will hand over)."""

    def __init__(self, size: int) -> None:
        self.data = bytearray(b"\x00" * size)

    def read(self, address: int, size: int) -> bytes:
        off = address - FLASH_BASE
        return bytes(self.data[off:off + size])

    def write(self, address: int, data: bytes) -> None:
        off = address - FLASH_BASE
        self.data[off:off + len(data)] = data


def make(size: int = 16 * 2048) -> tuple[FlashInterface, Array]:
    mem = Array(size)
    return FlashInterface("FLASH", 0x4002_2000,
                          memory=mem, flash_base=FLASH_BASE, flash_size=size), mem


def unlock(f: FlashInterface) -> None:
    f.write(KEYR, 4, 0x4567_0123)
    f.write(KEYR, 4, 0xCDEF_89AB)


def test_reset_values_and_acr_readback() -> None:
    f, _ = make()
    assert f.read(CR, 4) == LOCK and f.read(SR, 4) == 0
    assert f.read(ACR, 4) == 0x30                  # prefetch on, PRFTBS set
    f.write(ACR, 4, 0x12)                          # LATENCY 2, PRFTBE (as Cube writes)
    assert f.read(ACR, 4) == 0x32
    f.write(ACR, 4, 0x02)
    assert f.read(ACR, 4) == 0x02                  # PRFTBS follows PRFTBE off


def test_cr_is_locked_until_the_key_sequence() -> None:
    f, _ = make()
    f.write(CR, 4, PER)
    assert f.read(CR, 4) == LOCK
    unlock(f)
    assert f.read(CR, 4) == 0
    f.write(CR, 4, PER)
    assert f.read(CR, 4) == PER
    f.write(CR, 4, LOCK)
    assert f.read(CR, 4) & LOCK
    unlock(f)                                       # can be unlocked again
    assert not f.read(CR, 4) & LOCK


def test_wrong_key_locks_until_reset() -> None:
    f, _ = make()
    f.write(KEYR, 4, 0x4567_0123)
    f.write(KEYR, 4, 0x1234_5678)
    unlock(f)
    assert f.read(CR, 4) & LOCK
    f.reset()
    unlock(f)
    assert not f.read(CR, 4) & LOCK


def test_page_erase_and_mass_erase() -> None:
    f, mem = make()
    unlock(f)
    f.write(CR, 4, PER)
    f.write(AR, 4, FLASH_BASE + 2048 + 100)
    f.write(CR, 4, PER | STRT)
    assert mem.data[2048:4096] == b"\xff" * 2048
    assert mem.data[0:2048] == b"\x00" * 2048 and mem.data[4096] == 0
    assert f.read(SR, 4) & EOP and not f.read(CR, 4) & STRT
    assert f.read(AR, 4) == 0                       # write-only
    f.write(SR, 4, EOP)
    assert not f.read(SR, 4) & EOP
    f.write(CR, 4, MER)
    f.write(CR, 4, MER | STRT)
    assert mem.data == bytearray(b"\xff" * len(mem.data))


def test_program_halfword_rules() -> None:
    f, mem = make()
    assert not f.program_halfword(FLASH_BASE, 0x1234)      # locked
    unlock(f)
    f.write(CR, 4, PER)
    f.write(AR, 4, FLASH_BASE)
    f.write(CR, 4, PER | STRT)
    f.write(CR, 4, PG)
    f.write(SR, 4, 0xFF)
    assert f.program_halfword(FLASH_BASE + 2, 0xBEEF)
    assert mem.data[2:4] == b"\xef\xbe" and f.read(SR, 4) & EOP
    assert not f.program_halfword(FLASH_BASE + 2, 0x1111)  # not erased
    assert f.read(SR, 4) & PGERR and mem.data[2:4] == b"\xef\xbe"
    assert f.program_halfword(FLASH_BASE + 2, 0)            # zero is always allowed
    assert mem.data[2:4] == b"\x00\x00"


def test_option_key_sets_optwre_and_software_clears_it() -> None:
    f, _ = make()
    unlock(f)
    f.write(OPTKEYR, 4, 0x4567_0123)
    f.write(OPTKEYR, 4, 0xCDEF_89AB)
    assert f.read(CR, 4) & OPTWRE
    f.write(CR, 4, OPTWRE)                            # writing 1 keeps it
    assert f.read(CR, 4) & OPTWRE
    f.write(CR, 4, 0)
    assert not f.read(CR, 4) & OPTWRE
    assert f.read(OBR, 4) == 0xFFFF_7F00 and f.read(WRPR, 4) == 0xFFFF_FFFF


@settings(max_examples=150, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 0x24).map(lambda x: x & ~3), st.integers(0, 0xFFFF_FFFF)),
                max_size=30))
def test_any_sequence_never_raises(ops: list[tuple[int, int]]) -> None:
    f, _ = make()
    unlock(f)
    for off, value in ops:
        f.write(off, 4, value)
        f.read(off, 4)
        f.program_halfword(FLASH_BASE + (value & 0x7FFE), value)
