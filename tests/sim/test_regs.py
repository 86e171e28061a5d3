"""The declarative register base: field access kinds, sub-word access, unmodelled notes."""
from __future__ import annotations

from hwut.sim.regs import Access, Field, Peripheral, Register


class Demo(Peripheral):
    def __init__(self, notes: list[str]) -> None:
        self.writes: list[int] = []
        super().__init__("DEMO", 0x4000_0000, note=notes.append)

    def registers(self):
        yield Register("CR", 0x0, reset=0x10, fields=(
            Field("EN", 0), Field("MODE", 4, 2), Field("RO", 8, access=Access.RO)))
        yield Register("SR", 0x4, reset=0xF, fields=(Field("FLAGS", 0, 4, Access.RC_W1),))
        yield Register("DR", 0x8, fields=(Field("DATA", 0, 8, Access.WO),),
                       on_write=lambda old, new: self.writes.append(new))


def test_reset_values_and_rw_fields():
    p = Demo([])
    assert p.read(0x0, 4) == 0x10
    p.write(0x0, 4, 0xFFFF_FFFF)
    assert p.read(0x0, 4) == 0x31  # EN and MODE only; RO and the rest stay


def test_write_one_to_clear():
    p = Demo([])
    p.write(0x4, 4, 0b0101)
    assert p.read(0x4, 4) == 0b1010


def test_write_only_reads_zero_and_reports_the_write():
    p = Demo([])
    p.write(0x8, 1, 0x41)
    assert p.read(0x8, 4) == 0 and p.writes == [0x41]


def test_byte_access_touches_only_its_byte():
    p = Demo([])
    p.write(0x1, 1, 0xFF)  # bits 15:8: only RO lives there
    assert p.read(0x0, 4) == 0x10
    assert p.read(0x0, 1) == 0x10


def test_unmodelled_offsets_keep_writes_and_are_noted_once():
    notes: list[str] = []
    p = Demo(notes)
    p.write(0x20, 4, 0x1234)
    assert p.read(0x20, 4) == 0x1234
    p.read(0x20, 4)
    assert len(notes) == 1 and "0x40000020" in notes[0]


def test_tracing_names_registers():
    lines: list[str] = []
    p = Demo([])
    p.trace = lines.append
    p.write(0x0, 4, 1)
    p.read(0x4, 4)
    assert lines == ["DEMO.CR write32 <- 0x1 [EN]", "DEMO.SR read32 -> 0xf [FLAGS=0xf]"]
