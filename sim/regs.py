"""Registers declared as data, and the peripheral base class that serves them.

A peripheral lists its registers (offset, reset value, fields, what reads and
writes do); the base class does decoding, sub-word access, reset, bus tracing
(register and field names) and the once-per-address note for registers nobody
modelled. The declarations are also the model's state: a :class:`Field` is a
handle whose ``.value`` reads and writes its bits of the stored register, so a
bit is described once (``self.ue.value``, never ``cr1 & UE``).

One write callback signature, on registers and on fields: ``on_write(old, new)``,
called after the stored value was updated. ``new`` is the stored value, except
for action bits (write-only, write to set or to clear), which it carries as
written: a write of 1 to ADSTART is a request even when ADSTART already reads 1. Per-field tags are bits
that are known but not implemented (noted once when touched); reserved bits
keep their reset value; ``writable_when`` guards a register (write protection,
registers locked by an enable bit).
"""
from __future__ import annotations

import enum
from collections.abc import Callable, Iterable
from typing import Protocol

#: "Until something else happens": reads only change through writes or events.
STABLE = 1 << 62

#: The write callback of registers and fields: (old, new) value.
OnWrite = Callable[[int, int], None]


class Access(enum.Enum):
    RW = "rw"        # stored as written
    RO = "r"         # writes ignored; value set by the model
    WO = "w"         # reads as zero; the write only triggers the callback
    RC_W1 = "rc_w1"  # write 1 clears
    RC_W0 = "rc_w0"  # write 0 clears
    W1S = "w1s"      # write 1 sets (clear by the model)
    RS = "rs"        # software may set, only the model clears
    RES = "res"      # reserved: keeps its reset value, writes ignored


class Field:
    """Bits ``lsb .. lsb+width-1`` of a register; once the peripheral is built, a
    handle on them: ``.value`` is the field's current content, assignable."""

    __slots__ = ("name", "lsb", "width", "access", "on_write", "tag", "mask", "_ones",
                 "_values", "_off", "register")

    def __init__(self, name: str, lsb: int, width: int = 1, access: Access = Access.RW,
                 on_write: OnWrite | None = None, *, tag: bool = False) -> None:
        self.name = name
        self.lsb = lsb
        self.width = width
        self.access = access
        #: Called with (old, new) field values after a write that touched this field.
        self.on_write = on_write
        #: Known but not implemented: stored as declared, noted once when touched.
        self.tag = tag
        self._ones = (1 << width) - 1
        self.mask = self._ones << lsb
        self._values: dict[int, int] = {}
        self._off = -1
        self.register: Register | None = None

    def _bind(self, values: dict[int, int], register: Register) -> None:
        if self.register is not None and self.register is not register:
            raise ValueError(f"field {self.name} declared in two registers")
        self._values = values
        self._off = register.offset
        self.register = register

    @property
    def value(self) -> int:
        return (self._values[self._off] >> self.lsb) & self._ones

    @value.setter
    def value(self, v: int) -> None:
        values, off, mask = self._values, self._off, self.mask
        values[off] = (values[off] & ~mask) | ((v << self.lsb) & mask)

    def of(self, word: int) -> int:
        """This field's value in ``word`` (a value written, as write callbacks see it)."""
        return (word & self.mask) >> self.lsb

    def __repr__(self) -> str:
        return f"Field({self.name!r}, {self.lsb}, {self.width}, {self.access.name})"


class Register:
    """One register: declaration, and once the peripheral is built a handle whose
    ``.value`` is the stored word and ``reg["FIELD"]`` one of its fields."""

    __slots__ = ("name", "offset", "reset", "fields", "on_read", "on_write", "stable",
                 "writable_when", "rw_mask", "clear1_mask", "clear0_mask", "set_mask",
                 "wo_mask", "action_mask", "tag_mask", "_watched", "_by_name", "_values")

    def __init__(self, name: str, offset: int, reset: int = 0, fields: Iterable[Field] = (), *,
                 on_read: Callable[[int], int] | None = None, on_write: OnWrite | None = None,
                 stable: bool = False, writable_when: Callable[[], bool] | None = None,
                 tagged: bool = False) -> None:
        self.name = name
        self.offset = offset
        self.reset = reset
        self.fields: tuple[Field, ...] = tuple(fields)
        #: Computes the value a read returns (the stored value is passed in).
        self.on_read = on_read
        #: Called with (old, new) stored value after a write (write-only bits as written).
        self.on_write = on_write
        #: ``on_read`` depends only on model state, never on the time of the read,
        #: so the value can change only through writes or clock events.
        self.stable = stable
        #: Writes are ignored (and noted once) while this returns False.
        self.writable_when = writable_when
        if tagged:  # the whole register is known but not implemented
            for f in self.fields:
                f.tag = True
        by_access: dict[Access, int] = {}
        seen = 0
        for f in self.fields:
            if f.mask & seen:
                raise ValueError(f"{name}.{f.name} overlaps another field")
            seen |= f.mask
            by_access[f.access] = by_access.get(f.access, 0) | f.mask
        self.rw_mask = by_access.get(Access.RW, 0)
        self.clear1_mask = by_access.get(Access.RC_W1, 0)
        self.clear0_mask = by_access.get(Access.RC_W0, 0)
        self.set_mask = by_access.get(Access.W1S, 0) | by_access.get(Access.RS, 0)
        self.wo_mask = by_access.get(Access.WO, 0)
        #: Bits whose write is an action (write-only, write to set or clear): callbacks
        #: see them as written rather than as stored.
        self.action_mask = self.wo_mask | self.set_mask | self.clear1_mask | self.clear0_mask
        self.tag_mask = sum(f.mask for f in self.fields if f.tag)
        self._watched = tuple(f for f in self.fields if f.on_write is not None)
        self._by_name = {f.name: f for f in self.fields if f.name}
        self._values: dict[int, int] = {}

    def __getitem__(self, name: str) -> Field:
        return self._by_name[name]

    def __contains__(self, name: object) -> bool:
        return name in self._by_name

    @property
    def value(self) -> int:
        return self._values[self.offset]

    @value.setter
    def value(self, v: int) -> None:
        self._values[self.offset] = v & 0xFFFF_FFFF

    def compose(self, **fields: int) -> int:
        """The word holding ``fields`` (name=value; fields not named are 0)."""
        word = 0
        for name, v in fields.items():
            f = self._by_name[name]
            word |= (v << f.lsb) & f.mask
        return word

    def apply_write(self, old: int, value: int, mask: int) -> int:
        """The stored value after writing ``value`` to the bits in ``mask``."""
        m = self.rw_mask & mask
        new = (old & ~m) | (value & m)
        if self.clear1_mask:
            new &= ~(value & self.clear1_mask & mask)
        if self.clear0_mask:
            new &= ~(~value & self.clear0_mask & mask)
        if self.set_mask:
            new |= value & self.set_mask & mask
        return new & 0xFFFF_FFFF

    def describe(self, value: int) -> str:
        """The non-zero fields of ``value`` by name (for bus tracing)."""
        parts = []
        for f in self.fields:
            if f.access is Access.RES or not f.name:
                continue
            v = (value & f.mask) >> f.lsb
            if v:
                parts.append(f.name if f.width == 1 else f"{f.name}=0x{v:x}")
        return " ".join(parts)


def reserved(lsb: int, width: int = 1) -> Field:
    """Reserved bits: keep their reset value, writes ignored."""
    return Field("", lsb, width, Access.RES)


def tag(name: str, lsb: int, width: int = 1, access: Access = Access.RW) -> Field:
    """A field known but not implemented: stored as declared, noted once when touched."""
    return Field(name, lsb, width, access, tag=True)


class Tracer(Protocol):
    def __call__(self, line: str, /) -> None: ...


class Peripheral:
    """Base for memory-mapped peripherals: ``registers()`` returns the declarations."""

    #: Size of the address window; accesses past the declared registers are
    #: kept and noted once.
    size: int = 0x400

    def __init__(self, name: str, base: int, *, note: Callable[[str], None] | None = None) -> None:
        self.name = name
        self.base = base
        self._note = note or (lambda line: None)
        self.trace: Tracer | None = None
        #: The stored register words by offset: the one place the state lives
        #: (register and field handles are views onto it).
        self.values: dict[int, int] = {}
        self._regs: dict[int, Register] = {}
        #: Registers by name.
        self.regs: dict[str, Register] = {}
        for reg in self.registers():
            if reg.offset in self._regs:
                raise ValueError(f"{name}: two registers at offset 0x{reg.offset:x}")
            if reg.name in self.regs:
                raise ValueError(f"{name}: two registers called {reg.name}")
            self._regs[reg.offset] = reg
            self.regs[reg.name] = reg
            reg._values = self.values
            for f in reg.fields:
                f._bind(self.values, reg)
        self._noted: set[int] = set()
        self._noted_locked: set[int] = set()
        self.reset()

    def registers(self) -> Iterable[Register]:
        return ()

    def reset(self) -> None:
        values = self.values   # updated in place: the handles hold this dict
        values.clear()
        values.update((off, reg.reset) for off, reg in self._regs.items())

    def stable_until(self, offset: int) -> int | None:
        """The cycle before which a read of ``offset`` cannot change without a write or
        a clock event (``STABLE``), or None if reads depend on time itself."""
        reg = self._regs.get(offset & ~3)
        if reg is None or reg.on_read is None or reg.stable:
            return STABLE
        return None

    def plain_word(self, offset: int) -> int | None:
        """What a word read of ``offset`` returns, where taking that read would change
        nothing and note nothing (no read hook, no tagged field, no trace): for a model
        to say its reads ahead of time (``read_backs``). None elsewhere."""
        reg = self._regs.get(offset)
        if reg is None or reg.on_read is not None or reg.tag_mask or self.trace is not None:
            return None
        return self.values[offset] & ~reg.wo_mask

    # -- helpers for models ------------------------------------------------
    def reg(self, name: str) -> Register:
        return self.regs[name]

    def get(self, name: str) -> int:
        return self.values[self.regs[name].offset]

    def set(self, name: str, value: int) -> None:
        self.values[self.regs[name].offset] = value & 0xFFFF_FFFF

    def set_bits(self, name: str, mask: int, on: bool = True) -> None:
        off = self.regs[name].offset
        self.values[off] = (self.values[off] | mask) if on else (self.values[off] & ~mask)

    def note(self, line: str) -> None:
        self._note(f"{self.name}: {line}")

    # -- bus side ------------------------------------------------------------
    def read(self, offset: int, size: int) -> int:
        word_off = offset & ~3
        reg = self._regs.get(word_off)
        if reg is None:
            self._unmodelled(word_off, "read")
            value = self.values.get(word_off, 0)
        else:
            value = self.values[word_off]
            if reg.on_read is not None:
                value = reg.on_read(value)
            elif reg.wo_mask:
                value &= ~reg.wo_mask
            if reg.tag_mask & ~reg.wo_mask:
                self._tagged(reg, ~reg.wo_mask, "read")
        shift = (offset & 3) * 8
        result = (value >> shift) & ((1 << (size * 8)) - 1)
        if self.trace is not None:
            self._trace(reg, word_off, f"read{size * 8} -> 0x{result:x}", value)
        return result

    def write(self, offset: int, size: int, value: int) -> None:
        word_off = offset & ~3
        if size == 4 and not offset & 3:
            mask = 0xFFFF_FFFF
            shift = 0
        else:
            shift = (offset & 3) * 8
            mask = (((1 << (size * 8)) - 1) << shift) & 0xFFFF_FFFF
            value = (value << shift) & mask
        reg = self._regs.get(word_off)
        if self.trace is not None:
            self._trace(reg, word_off, f"write{size * 8} <- 0x{value >> shift:x}", value)
        if reg is None:
            self._unmodelled(word_off, "write")
            old = self.values.get(word_off, 0)
            self.values[word_off] = (old & ~mask) | value
            return
        if reg.writable_when is not None and not reg.writable_when():
            if word_off not in self._noted_locked:
                self._noted_locked.add(word_off)
                self.note(f"write to {reg.name} ignored while it is write-protected")
            return
        values = self.values
        old = values[word_off]
        new = reg.apply_write(old, value, mask)
        values[word_off] = new
        action = reg.action_mask
        if action:
            new = (new & ~action) | (value & action)
        if reg.tag_mask and (old ^ new) & reg.tag_mask & mask:
            self._tagged(reg, (old ^ new) & mask, "write")
        for f in reg._watched:
            if f.mask & mask:
                f.on_write((old & f.mask) >> f.lsb, (new & f.mask) >> f.lsb)  # type: ignore[misc]
        if reg.on_write is not None:
            reg.on_write(old, new)

    def _trace(self, reg: Register | None, word_off: int, what: str, word: int) -> None:
        assert self.trace is not None
        if reg is None:
            self.trace(f"{self.name}.{hex(word_off)} {what}")
            return
        bits = reg.describe(word)
        self.trace(f"{self.name}.{reg.name} {what}" + (f" [{bits}]" if bits else ""))

    def _tagged(self, reg: Register, bits: int, what: str) -> None:
        """Note once the tagged fields among ``bits`` (a write that changed them or wrote
        write-only ones, a read of a register that holds them): one line per register."""
        fields = [f for f in reg.fields if f.tag and f.mask & bits & reg.tag_mask]
        if not fields:
            return
        for f in fields:
            reg.tag_mask &= ~f.mask     # noted: no more cost on this register
        names = (f"{reg.name}.{fields[0].name}" if len(fields) == 1
                 else f"{reg.name} fields {', '.join(f.name for f in fields)}")
        self.note(f"{names} ({what} at 0x{self.base + reg.offset:08x}) "
                  "known but not modelled; kept as memory")

    def _unmodelled(self, word_off: int, what: str) -> None:
        if word_off not in self._noted:
            self._noted.add(word_off)
            self.note(f"unmodelled register at 0x{self.base + word_off:08x} ({what}); kept as memory")


def flags(*names: str, start: int = 0, access: Access = Access.RW) -> tuple[Field, ...]:
    """Consecutive one-bit fields, for registers that are rows of flags."""
    return tuple(Field(n, start + i, 1, access) for i, n in enumerate(names) if n)


def per_pin(prefix: str, count: int, width: int, access: Access = Access.RW,
            on_write: OnWrite | None = None) -> tuple[Field, ...]:
    """Repeated fields (16 pins, 4 bits each ...), generated rather than spelt out."""
    return tuple(Field(f"{prefix}{i}", i * width, width, access, on_write) for i in range(count))


def word(name: str, access: Access = Access.RW, width: int = 32, lsb: int = 0) -> tuple[Field, ...]:
    """A register that is one value (a data, count or address register)."""
    return (Field(name, lsb, width, access),)
