"""The declarative register base: field access kinds, sub-word access, unmodelled notes."""
from __future__ import annotations

import pytest

from hwut.sim.regs import Access, Field, Peripheral, Register, reserved, tag, word


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


class Guarded(Peripheral):
    """Handles, (old, new) callbacks, tags, reserved bits and a write guard."""

    def __init__(self, notes: list[str]) -> None:
        self.calls: list[tuple[str, int, int]] = []
        self.unlocked = False
        super().__init__("G", 0x4000_0000, note=notes.append)

    def registers(self):
        self.cr = Register("CR", 0x0, fields=(
            Field("EN", 0, on_write=lambda o, n: self.calls.append(("EN", o, n))),
            Field("MODE", 4, 3), tag("FANCY", 8, 2), reserved(12, 4),
            Field("GO", 16, access=Access.RS)),
            on_write=lambda o, n: self.calls.append(("CR", o, n)))
        self.en, self.mode = self.cr["EN"], self.cr["MODE"]
        yield self.cr
        yield Register("KEY", 0x4, fields=word("KEY"), writable_when=lambda: self.unlocked)
        yield Register("ICR", 0x8, fields=(Field("CF", 0, access=Access.WO),),
                       on_write=lambda o, n: self.calls.append(("ICR", o, n)))


def test_fields_are_handles_on_the_stored_word():
    p = Guarded([])
    p.write(0x0, 4, 0x51)
    assert (p.en.value, p.mode.value) == (1, 5)
    p.mode.value = 2
    assert p.read(0x0, 4) == 0x21 and p.regs["CR"].value == 0x21
    p.reset()
    assert p.en.value == 0   # the handles follow a reset


def test_one_callback_signature_old_and_new():
    p = Guarded([])
    p.write(0x0, 4, 0x1)
    p.write(0x0, 4, 0x10000)       # GO is an action: seen as written though EN went to 0
    assert p.calls == [("EN", 0, 1), ("CR", 0, 0x1), ("EN", 1, 0), ("CR", 0x1, 0x10000)]
    p.calls.clear()
    p.write(0x0, 4, 0x10000)       # GO written again while it reads 1: still a request
    assert p.calls == [("EN", 0, 0), ("CR", 0x10000, 0x10000)]   # EN was written (0 again)
    p.write(0x8, 4, 1)              # write-only bits reach the callback as written
    assert p.calls[-1] == ("ICR", 0, 1) and p.read(0x8, 4) == 0


def test_reserved_bits_keep_their_value_and_tags_are_noted_once():
    notes: list[str] = []
    p = Guarded(notes)
    p.write(0x0, 4, 0xF000)         # reserved: ignored
    assert p.read(0x0, 4) == 0
    p.write(0x0, 4, 0x100)
    p.write(0x0, 4, 0x200)
    p.write(0x0, 4, 0x300)
    assert p.read(0x0, 4) == 0x300  # a tag stores what was written
    assert [n for n in notes if "FANCY" in n] == [
        "G: CR.FANCY (read at 0x40000000) known but not modelled; kept as memory"]


def test_writable_when_guards_a_register():
    notes: list[str] = []
    p = Guarded(notes)
    p.write(0x4, 4, 0x1234)
    p.write(0x4, 4, 0x5678)
    assert p.read(0x4, 4) == 0
    assert notes == ["G: write to KEY ignored while it is write-protected"]
    p.unlocked = True
    p.write(0x4, 4, 0x1234)
    assert p.read(0x4, 4) == 0x1234


def test_registers_by_name_and_fields_declared_once():
    p = Guarded([])
    assert list(p.regs) == ["CR", "KEY", "ICR"] and p.regs["CR"]["GO"].lsb == 16
    shared = Field("X", 0)

    class Twice(Peripheral):
        def registers(self):
            return [Register("A", 0x0, fields=(shared,)), Register("B", 0x4, fields=(shared,))]
    with pytest.raises(ValueError, match="two registers"):
        Twice("T", 0)
    with pytest.raises(ValueError, match="overlaps"):
        Register("C", 0x0, fields=(Field("A", 0, 4), Field("B", 3)))


def test_tracing_names_the_bits():
    lines: list[str] = []
    p = Guarded([])
    p.trace = lines.append
    p.write(0x0, 4, 0x31)
    assert lines == ["G.CR write32 <- 0x31 [EN MODE=0x3]"]


class Tagged(Peripheral):
    """A register with several tagged fields beside a modelled one (DWT.CTRL's shape)."""

    def __init__(self, notes: list[str]) -> None:
        super().__init__("T", 0xE000_1000, note=notes.append)

    def registers(self):
        yield Register("CTRL", 0x0, fields=(
            Field("ENA", 0), tag("EVT1", 16), tag("EVT2", 17), tag("EVT3", 18)))
        yield Register("CNT", 0x4, fields=word("CNT", width=8), tagged=True)


def test_tagged_fields_are_noted_in_one_line_per_register():
    notes: list[str] = []
    p = Tagged(notes)
    p.read(0x0, 4)                  # reading the register touches all its tagged fields
    p.read(0x0, 4)
    p.write(0x0, 4, 0x7_0001)
    assert notes == ["T: CTRL fields EVT1, EVT2, EVT3 (read at 0xe0001000) known but not "
                     "modelled; kept as memory"]
    p.write(0x4, 4, 5)
    assert notes[1:] == ["T: CNT.CNT (write at 0xe0001004) known but not modelled; "
                         "kept as memory"]


def test_a_tagged_field_touched_later_gets_its_own_line():
    notes: list[str] = []
    p = Tagged(notes)
    p.write(0x0, 4, 1 << 16)        # only EVT1 changes
    p.write(0x0, 4, 0b111 << 16)    # then EVT2 and EVT3, noted together
    assert [n.split(" (")[0] for n in notes] == ["T: CTRL.EVT1", "T: CTRL fields EVT2, EVT3"]
