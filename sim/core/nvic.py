"""NVIC registers (ISER/ICER/ISPR/ICPR/IABR/IPR, STIR) over the exception model."""
from __future__ import annotations

from collections.abc import Callable, Iterable

from ..regs import Access, Field, Peripheral, Register, word
from .exceptions import IRQ_BASE, ExceptionModel


class Nvic(Peripheral):
    """0xE000E100..0xE000E4EF; 82 interrupts on the STM32F303xE (8 words of bits)."""

    size = 0x400

    def __init__(self, name: str, base: int, *, exceptions: ExceptionModel, irq_count: int,
                 note: Callable[[str], None] | None = None) -> None:
        self.exc = exceptions
        self.irq_count = irq_count
        super().__init__(name, base, note=note)

    def _words(self) -> range:
        return range((self.irq_count + 31) // 32)

    def _bit_registers(self, w: int) -> Iterable[Register]:
        """ISER/ICER/ISPR/ICPR/IABR word ``w``: one bit per interrupt line."""
        exc = self.exc
        irqs = [w * 32 + b for b in range(32) if w * 32 + b < self.irq_count]

        def bits(pred: Callable[[int], bool]) -> int:
            return sum(1 << (i % 32) for i in irqs if pred(i + IRQ_BASE))

        def set_bits(value: int, action: Callable[[int], None]) -> None:
            for i in irqs:
                if value >> (i % 32) & 1:
                    action(i + IRQ_BASE)

        def lines(prefix: str, access: Access) -> tuple[Field, ...]:
            """One bit per interrupt line; the state is the exception model's (reads
            are computed), so writes are actions: write 1 to set or to clear."""
            return tuple(Field(f"{prefix}{i}", i % 32, access=access) for i in irqs)

        yield Register(f"ISER{w}", 0x000 + 4 * w, fields=lines("SETENA", Access.WO),
                       on_read=lambda _v: bits(exc.is_enabled),
                       on_write=lambda old, new: set_bits(new, lambda n: exc.set_enabled(n, True)))
        yield Register(f"ICER{w}", 0x080 + 4 * w, fields=lines("CLRENA", Access.WO),
                       on_read=lambda _v: bits(exc.is_enabled),
                       on_write=lambda old, new: set_bits(new, lambda n: exc.set_enabled(n, False)))
        yield Register(f"ISPR{w}", 0x100 + 4 * w, fields=lines("SETPEND", Access.WO),
                       on_read=lambda _v: bits(exc.is_pending),
                       on_write=lambda old, new: set_bits(new, exc.set_pending))
        yield Register(f"ICPR{w}", 0x180 + 4 * w, fields=lines("CLRPEND", Access.WO),
                       on_read=lambda _v: bits(exc.is_pending),
                       on_write=lambda old, new: set_bits(new, exc.clear_pending))
        yield Register(f"IABR{w}", 0x200 + 4 * w, fields=lines("ACTIVE", Access.RO),
                       on_read=lambda _v: bits(exc.is_active))

    def registers(self) -> Iterable[Register]:
        exc = self.exc
        for w in self._words():
            yield from self._bit_registers(w)
        for w in range((self.irq_count + 3) // 4):
            first = IRQ_BASE + 4 * w

            def write_prio(old: int, new: int, first: int = first) -> None:
                for b in range(4):
                    exc.set_priority(first + b, (new >> (8 * b)) & 0xFF)

            def read_prio(_v: int, first: int = first) -> int:
                return sum(exc.priority_byte(first + b) << (8 * b) for b in range(4))

            yield Register(f"IPR{w}", 0x300 + 4 * w, on_read=read_prio, on_write=write_prio,
                           fields=tuple(Field(f"PRI_{4 * w + b}", 8 * b, 8) for b in range(4)))


class ControlType(Peripheral):
    """ICTR and ACTLR at 0xE000E000: how many interrupt lines the NVIC has."""

    size = 0x10

    def __init__(self, name: str, base: int, *, irq_count: int,
                 note: Callable[[str], None] | None = None) -> None:
        self.irq_count = irq_count
        super().__init__(name, base, note=note)

    def registers(self) -> Iterable[Register]:
        yield Register("ICTR", 0x4, reset=(self.irq_count + 31) // 32 - 1,
                       fields=(Field("INTLINESNUM", 0, 4, Access.RO),))
        yield Register("ACTLR", 0x8, fields=(
            Field("DISMCYCINT", 0), Field("DISDEFWBUF", 1), Field("DISFOLD", 2),
            Field("DISFPCA", 8), Field("DISOOFP", 9)))


class SoftwareTrigger(Peripheral):
    """STIR at 0xE000EF00, with the FPU context registers next to it."""

    size = 0x100

    def __init__(self, name: str, base: int, *, exceptions: ExceptionModel,
                 note: Callable[[str], None] | None = None) -> None:
        self.exc = exceptions
        super().__init__(name, base, note=note)

    def registers(self) -> Iterable[Register]:
        yield Register("STIR", 0x00, fields=(Field("INTID", 0, 9, Access.WO),),
                       on_write=lambda old, new: self.exc.set_pending(IRQ_BASE + (new & 0x1FF)))
        # The FPU's lazy stacking is not modelled: LSPACT .. MONRDY read 0.
        yield Register("FPCCR", 0x34, reset=0xC000_0000, fields=(
            *(Field(n, b, access=Access.RO) for n, b in (
                ("LSPACT", 0), ("USER", 1), ("THREAD", 3), ("HFRDY", 4), ("MMRDY", 5),
                ("BFRDY", 6), ("MONRDY", 8))),
            Field("LSPEN", 30), Field("ASPEN", 31)))
        yield Register("FPCAR", 0x38, fields=(Field("ADDRESS", 3, 29),))
        yield Register("FPDSCR", 0x3C, fields=(
            Field("RMode", 22, 2), Field("FZ", 24), Field("DN", 25), Field("AHP", 26)))
        for i, value in enumerate((0x04, 0x00, 0x00, 0x00, 0x0C, 0xE0, 0x05, 0xB1)):
            yield Register(f"ID{i}", 0xD0 + 4 * i, reset=value, fields=word("ID", Access.RO))
