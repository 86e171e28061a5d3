"""NVIC registers (ISER/ICER/ISPR/ICPR/IABR/IPR, STIR) over the exception model."""
from __future__ import annotations

from collections.abc import Callable, Iterable

from ..regs import Access, Field, Peripheral, Register
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

        yield Register(f"ISER{w}", 0x000 + 4 * w,
                       on_read=lambda _v: bits(exc.is_enabled),
                       on_write=lambda v: set_bits(v, lambda n: exc.set_enabled(n, True)))
        yield Register(f"ICER{w}", 0x080 + 4 * w,
                       on_read=lambda _v: bits(exc.is_enabled),
                       on_write=lambda v: set_bits(v, lambda n: exc.set_enabled(n, False)))
        yield Register(f"ISPR{w}", 0x100 + 4 * w,
                       on_read=lambda _v: bits(exc.is_pending),
                       on_write=lambda v: set_bits(v, exc.set_pending))
        yield Register(f"ICPR{w}", 0x180 + 4 * w,
                       on_read=lambda _v: bits(exc.is_pending),
                       on_write=lambda v: set_bits(v, exc.clear_pending))
        yield Register(f"IABR{w}", 0x200 + 4 * w,
                       on_read=lambda _v: bits(exc.is_active), write_mask=0)

    def registers(self) -> Iterable[Register]:
        exc = self.exc
        for w in self._words():
            yield from self._bit_registers(w)
        for w in range((self.irq_count + 3) // 4):
            first = IRQ_BASE + 4 * w

            def write_prio(_value: int, first: int = first, off: int = 0x300 + 4 * w) -> None:
                stored = self.values[off]
                for b in range(4):
                    exc.set_priority(first + b, (stored >> (8 * b)) & 0xFF)

            def read_prio(_v: int, first: int = first) -> int:
                return sum(exc.priority_byte(first + b) << (8 * b) for b in range(4))

            yield Register(f"IPR{w}", 0x300 + 4 * w, on_read=read_prio, on_write=write_prio)


class ControlType(Peripheral):
    """ICTR and ACTLR at 0xE000E000: how many interrupt lines the NVIC has."""

    size = 0x10

    def __init__(self, name: str, base: int, *, irq_count: int,
                 note: Callable[[str], None] | None = None) -> None:
        self.irq_count = irq_count
        super().__init__(name, base, note=note)

    def registers(self) -> Iterable[Register]:
        yield Register("ICTR", 0x4, reset=(self.irq_count + 31) // 32 - 1, write_mask=0)
        yield Register("ACTLR", 0x8, write_mask=0x307)


class SoftwareTrigger(Peripheral):
    """STIR at 0xE000EF00, with the FPU context registers next to it."""

    size = 0x100

    def __init__(self, name: str, base: int, *, exceptions: ExceptionModel,
                 note: Callable[[str], None] | None = None) -> None:
        self.exc = exceptions
        super().__init__(name, base, note=note)

    def registers(self) -> Iterable[Register]:
        yield Register("STIR", 0x00, fields=(Field("INTID", 0, 9, Access.WO),),
                       on_write=lambda v: self.exc.set_pending(IRQ_BASE + (v & 0x1FF)))
        yield Register("FPCCR", 0x34, reset=0xC000_0000, write_mask=0xC000_0000)
        yield Register("FPCAR", 0x38, write_mask=0xFFFF_FFF8)
        yield Register("FPDSCR", 0x3C, write_mask=0x07C0_0000)
        for i, value in enumerate((0x04, 0x00, 0x00, 0x00, 0x0C, 0xE0, 0x05, 0xB1)):
            yield Register(f"ID{i}", 0xD0 + 4 * i, reset=value, write_mask=0)
