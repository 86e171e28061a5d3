"""Registers declared as data, and the peripheral base class that serves them.

A peripheral lists its registers (offset, reset value, fields, what reads and
writes do); the base class does decoding, sub-word access, reset, bus tracing
and the once-per-address note for registers nobody modelled. Behaviour lives in
field callbacks, never in chains of ``if offset == ...``.
"""
from __future__ import annotations

import enum
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Protocol

#: "Until something else happens": reads only change through writes or events.
STABLE = 1 << 62


class Access(enum.Enum):
    RW = "rw"        # stored as written
    RO = "r"         # writes ignored; value set by the model
    WO = "w"         # reads as zero; the write only triggers the callback
    RC_W1 = "rc_w1"  # write 1 clears
    RC_W0 = "rc_w0"  # write 0 clears
    W1S = "w1s"      # write 1 sets (clear by the model)
    RS = "rs"        # software may set, only the model clears


@dataclass(frozen=True)
class Field:
    name: str
    lsb: int
    width: int = 1
    access: Access = Access.RW
    #: Called with (old, new) field values after a write that touched this field.
    on_write: Callable[[int, int], None] | None = None

    @property
    def mask(self) -> int:
        return ((1 << self.width) - 1) << self.lsb


@dataclass
class Register:
    name: str
    offset: int
    reset: int = 0
    fields: tuple[Field, ...] = ()
    #: Computes the value a read returns (the stored value is passed in).
    on_read: Callable[[int], int] | None = None
    #: Called with the bits written (shifted into place) after the stored value
    #: was updated; the model reads the stored value from ``Peripheral.values``.
    on_write: Callable[[int], None] | None = None
    #: Without fields: which bits a write stores (the rest keep their value).
    write_mask: int = 0xFFFF_FFFF
    #: Registers that are not modelled beyond storage (logged once when touched).
    tagged: bool = False
    #: ``on_read`` depends only on model state, never on the time of the read,
    #: so the value can change only through writes or clock events.
    stable: bool = False
    _by_access: dict[Access, int] = field(default_factory=dict, init=False, repr=False)

    def __post_init__(self) -> None:
        for f in self.fields:
            self._by_access[f.access] = self._by_access.get(f.access, 0) | f.mask
        if self.fields:
            self.write_mask = self._by_access.get(Access.RW, 0)

    def apply_write(self, old: int, value: int, mask: int) -> int:
        """The stored value after writing ``value`` to the bits in ``mask``."""
        if not self.fields:
            m = self.write_mask & mask
            return (old & ~m) | (value & m)
        acc = self._by_access
        new = old
        m = acc.get(Access.RW, 0) & mask
        new = (new & ~m) | (value & m)
        m = acc.get(Access.RC_W1, 0) & mask
        new &= ~(value & m)
        m = acc.get(Access.RC_W0, 0) & mask
        new &= ~(~value & m)
        m = (acc.get(Access.W1S, 0) | acc.get(Access.RS, 0)) & mask
        new |= value & m
        return new & 0xFFFF_FFFF


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
        self._regs: dict[int, Register] = {}
        for reg in self.registers():
            if reg.offset in self._regs:
                raise ValueError(f"{name}: two registers at offset 0x{reg.offset:x}")
            self._regs[reg.offset] = reg
        self.values: dict[int, int] = {}
        self._noted: set[int] = set()
        self.reset()

    def registers(self) -> Iterable[Register]:
        return ()

    def reset(self) -> None:
        self.values = {off: reg.reset for off, reg in self._regs.items()}

    def stable_until(self, offset: int) -> int | None:
        """The cycle before which a read of ``offset`` cannot change without a write or
        a clock event (``STABLE``), or None if reads depend on time itself."""
        reg = self._regs.get(offset & ~3)
        if reg is None or reg.on_read is None or reg.stable:
            return STABLE
        return None

    # -- helpers for models ------------------------------------------------
    def reg(self, name: str) -> Register:
        for reg in self._regs.values():
            if reg.name == name:
                return reg
        raise KeyError(name)

    def get(self, name: str) -> int:
        return self.values[self.reg(name).offset]

    def set(self, name: str, value: int) -> None:
        self.values[self.reg(name).offset] = value & 0xFFFF_FFFF

    def set_bits(self, name: str, mask: int, on: bool = True) -> None:
        off = self.reg(name).offset
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
            elif Access.WO in reg._by_access:
                value &= ~reg._by_access[Access.WO]
            if reg.tagged:
                self._unmodelled(word_off, "read")
        shift = (offset & 3) * 8
        result = (value >> shift) & ((1 << (size * 8)) - 1)
        if self.trace is not None:
            self.trace(f"{self.name}.{reg.name if reg else hex(word_off)} read{size * 8} -> 0x{result:x}")
        return result

    def write(self, offset: int, size: int, value: int) -> None:
        word_off = offset & ~3
        shift = (offset & 3) * 8
        mask = (((1 << (size * 8)) - 1) << shift) & 0xFFFF_FFFF
        value = (value << shift) & mask
        reg = self._regs.get(word_off)
        if self.trace is not None:
            self.trace(f"{self.name}.{reg.name if reg else hex(word_off)} write{size * 8} <- 0x{value >> shift:x}")
        if reg is None:
            self._unmodelled(word_off, "write")
            old = self.values.get(word_off, 0)
            self.values[word_off] = (old & ~mask) | value
            return
        if reg.tagged:
            self._unmodelled(word_off, "write")
        old = self.values[word_off]
        new = reg.apply_write(old, value, mask)
        self.values[word_off] = new
        for f in reg.fields:
            if f.on_write is not None and f.mask & mask:
                src = value if f.access is Access.WO else new
                f.on_write((old & f.mask) >> f.lsb, (src & f.mask) >> f.lsb)
        if reg.on_write is not None:
            reg.on_write(value)

    def _unmodelled(self, word_off: int, what: str) -> None:
        if word_off not in self._noted:
            self._noted.add(word_off)
            self.note(f"unmodelled register at 0x{self.base + word_off:08x} ({what}); kept as memory")


def flags(*names: str, start: int = 0, access: Access = Access.RW) -> tuple[Field, ...]:
    """Consecutive one-bit fields, for registers that are rows of flags."""
    return tuple(Field(n, start + i, 1, access) for i, n in enumerate(names) if n)


def per_pin(prefix: str, count: int, width: int, access: Access = Access.RW,
            on_write: Callable[[int, int], None] | None = None) -> tuple[Field, ...]:
    """Repeated fields (16 pins, 4 bits each ...), generated rather than spelt out."""
    return tuple(Field(f"{prefix}{i}", i * width, width, access, on_write) for i in range(count))
