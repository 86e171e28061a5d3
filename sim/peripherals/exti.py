"""EXTI controller of the STM32F303 (RM0316 section 14).

Edges on a line set its pending bit when that edge is selected and the line is
unmasked; pending lines drive their NVIC interrupts (lines 5..9 and 10..15
share one each). GPIO pins reach lines 0..15 through SYSCFG's port selection,
wired by :func:`connect_gpio_exti`. Which NVIC interrupt each line drives and
which lines are direct are the SoC's (``sim/soc``), passed in by the builder.
"""
from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from functools import partial
from typing import Protocol

from hwut.sim.regs import Access, Field, Peripheral, Register, per_pin

from .irq import IrqOut

# (IMR, EMR, RTSR, FTSR, SWIER, PR) offsets for lines 0..31 and 32..63.
_BANKS = ((0x00, 0x04, 0x08, 0x0C, 0x10, 0x14), (0x20, 0x24, 0x28, 0x2C, 0x30, 0x34))


class Exti(Peripheral):
    """External interrupt/event controller.

    ``irq_of_line`` maps each EXTI line to the NVIC interrupt it drives (several
    lines may share one); ``irqs`` maps those interrupt numbers to their outputs.
    ``direct_lines`` have no edge detection and no pending bit; they are unmasked
    at reset (IMR's reset value).
    """

    def __init__(self, name: str, base: int, *, irq_of_line: Mapping[int, int],
                 direct_lines: Iterable[int] = (),
                 note: Callable[[str], None] | None = None,
                 irqs: Mapping[int, IrqOut] | None = None,
                 on_event: Callable[[int], None] | None = None) -> None:
        self.irq_of_line = dict(irq_of_line)
        self.direct_lines = frozenset(direct_lines)
        self.irqs = dict(irqs or {})
        #: Called with the line number for an unmasked event (EMR): wakes WFE.
        self.on_event = on_event
        super().__init__(name, base, note=note)

    def _imr_reset(self, bank: int) -> int:
        return sum(1 << (line & 31) for line in self.direct_lines if line >> 5 == bank)

    def registers(self) -> Iterable[Register]:
        regs: list[Register] = []
        for bank, (imr, emr, rtsr, ftsr, swier, pr) in enumerate(_BANKS):
            n = bank + 1
            swier_reg = Register(f"SWIER{n}", swier, 0, tuple(
                Field(f"SWIER{i}", i, on_write=partial(self._swier_written, 32 * bank + i))
                for i in range(32)))
            regs += [
                Register(f"IMR{n}", imr, self._imr_reset(bank), per_pin("MR", 32, 1),
                         on_write=lambda old, new: self._update_irq()),
                Register(f"EMR{n}", emr, 0, per_pin("MR", 32, 1)),
                Register(f"RTSR{n}", rtsr, 0, per_pin("TR", 32, 1)),
                Register(f"FTSR{n}", ftsr, 0, per_pin("TR", 32, 1)),
                swier_reg,
                Register(f"PR{n}", pr, 0, per_pin("PR", 32, 1, Access.RC_W1),
                         on_write=partial(self._pr_written, swier_reg)),
            ]
        by_name = {r.name: r for r in regs}
        #: Per line 0..63: the offsets of its IMR, EMR, RTSR, FTSR and PR, and the mask
        #: of its field in them (the same bit in each: the line's fields are declared
        #: alike), gathered once for the path every pin change takes.
        self._line_at: list[tuple[int, int, int, int, int, int]] = []
        for line in range(64):
            at = [by_name[f"{reg}{line // 32 + 1}"] for reg in ("IMR", "EMR", "RTSR", "FTSR", "PR")]
            masks = {r.fields[line % 32].mask for r in at}
            assert len(masks) == 1, f"EXTI line {line}: its fields differ in position"
            imr, emr, rtsr, ftsr, pr = (r.offset for r in at)
            self._line_at.append((imr, emr, rtsr, ftsr, pr, masks.pop()))
        # Each NVIC interrupt's pending bits, gathered from the PR fields of its lines
        # ((offset, mask) per bank), in the order the SoC lists the lines.
        pending: dict[int, dict[int, int]] = {}
        for line, irq in self.irq_of_line.items():
            pr_reg = by_name[f"PR{line // 32 + 1}"]
            bits = pending.setdefault(irq, {})
            bits[pr_reg.offset] = bits.get(pr_reg.offset, 0) | pr_reg.fields[line % 32].mask
        self._pending_bits = tuple((irq, tuple(bits.items())) for irq, bits in pending.items())
        return regs

    # -- inputs ------------------------------------------------------------------
    def line_edge(self, line: int, rising: bool) -> None:
        """An edge arrived on ``line``; pends it if that edge is selected."""
        if line in self.direct_lines or not 0 <= line < 64:
            return
        _, _, rtsr, ftsr, _, bit = self._line_at[line]
        if not self.values[rtsr if rising else ftsr] & bit:
            return
        self._trigger(line)

    def _trigger(self, line: int) -> None:
        imr, emr, _, _, pr, bit = self._line_at[line]
        values = self.values
        if values[imr] & bit:
            values[pr] |= bit
        if values[emr] & bit and self.on_event is not None:
            self.on_event(line)
        self._update_irq()

    def _swier_written(self, line: int, old: int, new: int) -> None:
        # Writing 1 to a SWIER bit that is 0 triggers the line (RM0316 14.3.5).
        if new and not old:
            self._trigger(line)

    def _pr_written(self, swier: Register, old: int, new: int) -> None:
        # Clearing a PR bit clears the SWIER bit at its position too.
        swier.value &= ~new
        self._update_irq()

    def _update_irq(self) -> None:
        """Each NVIC line is high while any of its lines is pending."""
        values, irqs = self.values, self.irqs
        for irq, bits in self._pending_bits:
            out = irqs.get(irq)
            if out is not None:
                level = False
                for off, mask in bits:
                    if values[off] & mask:
                        level = True
                        break
                out.set(level)


class InputPort(Protocol):
    def on_input_change(self, callback: Callable[[int, int], None]) -> None: ...


class PortSelect(Protocol):
    def port_of_line(self, line: int) -> int: ...


def connect_gpio_exti(ports: Mapping[int, InputPort] | Iterable[InputPort], syscfg: PortSelect,
                      exti: Exti) -> None:
    """Route GPIO pin edges to EXTI lines 0..15 through SYSCFG's EXTICR selection.

    ``ports`` is a sequence of GPIO ports in order A, B, C... or a mapping from
    port index (0 = A) to port; each must offer ``on_input_change``.
    """
    items = ports.items() if isinstance(ports, Mapping) else enumerate(ports)
    for index, port in items:
        def changed(pin: int, level: int, index: int = index) -> None:
            if syscfg.port_of_line(pin) == index:
                exti.line_edge(pin, bool(level))
        port.on_input_change(changed)
