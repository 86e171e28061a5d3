"""Precharging's bookkeeping, beside the counter it speeds up.

Exact timing counts every instruction before it runs. Precharging keeps that
result and counts most flash code once per translated block instead: flash is
mapped twice, code at its own address (0x08000000) runs without the
per-instruction hook and has its block's instructions added when the block
starts (``hwut_block_exact`` in sim/native/counter.c decides which block may),
and the same code at the alias (0x00000000) runs counted instruction by
instruction. This module holds what Python keeps for it: which flash is
precharged, the marks (one bit per flash half-word: this instruction always
runs counted), the two views of an address, and the rewind of a block that an
MMIO access or a fault stopped halfway.
"""
from __future__ import annotations

import ctypes
from typing import Any

from unicorn import Uc
from unicorn import arm_const as A

from . import thumb
from .core.cpustate import MAX_DENY
from .counter import InstructionCounter


class Precharge:
    """Which flash runs precharged, and the marks that keep instructions counted."""

    def __init__(self, uc: Uc, counter: InstructionCounter, *, wanted: bool) -> None:
        self._uc = uc
        self._counter = counter
        #: Exact timing on the native counter, and the machine's owner did not opt out.
        self.wanted = wanted and counter.native and counter.timing == "exact"
        #: The flash whose code runs precharged, once ``plan`` chose it.
        self.flash: Any = None
        self._marks: ctypes.Array | None = None

    def plan(self, memories: list[Any], reset_pc: int, mmio: list[tuple[int, int]]) -> None:
        """Precharge when the image runs from flash at its own address (``reset_pc``, the
        reset vector) and the flash has an alias at 0. An image linked at the alias runs
        counted throughout, so that every address it sees stays its own."""
        flash = next((m for m in memories if m.name == "flash" and 0 in m.aliases), None)
        if (not self.wanted or flash is None or self.flash is not None
                or not flash.base <= reset_pc & ~1 < flash.base + flash.size
                or len(mmio) > MAX_DENY):
            return
        self.flash = flash
        self._marks = (ctypes.c_ubyte * (flash.size // 16))()
        self._counter.enable_precharge(flash.base, flash.size, mmio, self._marks)

    def views(self, address: int) -> list[int]:
        """Where the instruction at ``address`` may run: flash code in both views."""
        flash = self.flash
        if flash is not None and flash.base <= address < flash.base + flash.size:
            return [address, address - flash.base]
        return [address]

    def canonical(self, address: int) -> int:
        """The address firmware would see: flash code counted at the alias is the
        same code as at the canonical address."""
        flash = self.flash
        if flash is not None and address < flash.size:
            return address + flash.base
        return address

    def mark(self, address: int) -> None:
        """The instruction at ``address`` (either view of precharged flash) runs counted
        from now on; elsewhere every instruction is counted anyway."""
        off = None if self.flash is None else self.flash.offset(address)
        if off is None or self._marks is None:
            return
        self._marks[off >> 4] |= 1 << ((off >> 1) & 7)

    def unmark(self, address: int) -> None:
        """The instruction at ``address`` may run precharged again (its hook is gone)."""
        off = None if self.flash is None else self.flash.offset(address)
        if off is None or self._marks is None:
            return
        self._marks[off >> 4] &= ~(1 << ((off >> 1) & 7)) & 0xFF

    def rewind(self) -> bool:
        """An error inside a precharged block (an MMIO access refused, a fault, a
        flash write): count up to the instruction, mark it, and run it again
        counted at the alias, where it does what it does with exact time. (Only
        an error can stop such a block early: traps end a block, and the core
        model raises none mid-block.) True if there was such a block."""
        st = self._counter.state.pre
        if not st.quick:
            return False
        st.quick = 0
        pc = self._uc.reg_read(A.UC_ARM_REG_PC)
        if not st.quick_pc <= pc < st.quick_pc + st.quick_size:
            return False
        before = bytes(self._uc.mem_read(st.quick_pc, pc - st.quick_pc))
        self._counter.count = st.quick_start + thumb.count(before)
        self.mark(pc)
        self._counter.forget_blocks()
        self._uc.reg_write(A.UC_ARM_REG_PC, (pc - self.flash.base) | 1)
        return True

    def expose_lr(self) -> None:
        """LR as firmware sees it, whenever the engine stops. A leaf function called
        from code counted at the alias keeps the alias's return address in LR (it
        only returns through it: ``hwut_block_exact``), so a loop calling it stays
        in one view; everything outside the engine (exception entry, faults, the
        debugger, the host) must see the canonical address, as an exception frame
        stacked in C does."""
        st = self._counter.state.pre
        if st.alias_lr and self._uc.reg_read(A.UC_ARM_REG_LR) == st.alias_lr:
            self._uc.reg_write(A.UC_ARM_REG_LR, st.alias_lr + self.flash.base)
