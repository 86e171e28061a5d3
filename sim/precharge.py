"""Precharging's bookkeeping, beside the counter it speeds up.

Exact timing counts every instruction before it runs. Precharging keeps that
result and counts most flash code once per translated block instead: flash is
mapped twice, code at its own address (0x08000000) runs without the
per-instruction hook and has its block's instructions added when the block
starts (``hwut_block_exact`` in sim/native/counter.c decides which block may),
and the same code at the alias (0x00000000) runs counted instruction by
instruction. This module holds what Python keeps for it: which flash is
precharged, the marks (one bit per flash half-word: this instruction always
runs counted), the two views of an address, the rewind of a block that an
MMIO access or a fault stopped halfway, and the counted regions: code where
switching views cost more than precharging gained, counted in place in both
views (``hwut_regions`` in counter.c asks for them; ``grant_regions`` adds them).
"""
from __future__ import annotations

import ctypes
from collections.abc import Callable
from typing import Any

from unicorn import Uc
from unicorn import arm_const as A

from . import thumb
from .core.cpustate import MAX_DENY, REGIONS
from .counter import InstructionCounter

#: A region asked for is merged with one it lies this close to (bytes), up to
#: ``MAX_REGION_SPAN``: the code of one loop is usually close together, and each
#: region is a code hook that every counted instruction looks at.
MERGE_GAP = 0x400
MAX_REGION_SPAN = 0x2000
#: Executed instructions between looks at whether precharging pays (``adapt``).
LOOK = 500_000
#: Executed instructions before the first look, and before the first look after a
#: suspension: a short run (an interrupt storm, a bit-banged bus for a few
#: milliseconds) where precharging does not pay would otherwise end before any look,
#: slower than counting every instruction.
FIRST_LOOK = 50_000
#: Precharging pays when PAYS_PRECHARGED x instructions precharged outweigh the
#: instructions counted beside them plus PAYS_SWITCH x switches of view: measured
#: here, a precharged instruction gains about twice what the hook walk costs a
#: counted one (``InstructionCounter.suspend_precharge``), a switch about 60 of them.
PAYS_PRECHARGED = 2
PAYS_SWITCH = 60
#: How long precharging stays suspended when it did not pay (executed instructions),
#: doubling each time it still did not pay after it.
SUSPEND_MIN = 16_000_000
SUSPEND_MAX = 1_024_000_000
#: The first suspension is shorter when the first look found precharging promising
#: (it gained at least 1/PROMISING of what paying takes): that look sees little more
#: than start-up code (clock set-up, copies, a scheduler's first switches), which
#: says little of the loops that follow (an RTOS whose tasks then run precharged at
#: 1.4x the speed lost that for 16 M instructions, most of a second). Where nearly
#: nothing ran precharged, or switches ate it, the look after a short suspension
#: would only cost a resume (two flushes of the translated code) and find the same.
FIRST_SUSPEND = 1_000_000
PROMISING = 4
#: Executed instructions counted each before precharging starts: start-up code runs
#: once, and precharging it (translated in both views, rewound at each peripheral
#: access) cost a short job up to a millisecond more than counting it.
START_COUNTED = 1_000_000


class Precharge:
    """Which flash runs precharged, and the marks that keep instructions counted."""

    def __init__(self, uc: Uc, counter: InstructionCounter, *, wanted: bool) -> None:
        self._uc = uc
        self._counter = counter
        #: The counter's state and two parts of it, looked at whenever the engine stops
        #: (``adapt``, ``expose_lr``): ctypes makes a new object at each look otherwise.
        self._state = counter.state
        self._pre = self._state.pre
        self._want = self._state.regions
        #: Exact timing on the native counter, and the machine's owner did not opt out.
        self.wanted = wanted and counter.native and counter.timing == "exact"
        #: The flash whose code runs precharged, once ``plan`` chose it.
        self.flash: Any = None
        #: The flash with an alias at 0, precharged or not (``views``).
        self.aliased: Any = None
        self._marks: ctypes.Array | None = None
        #: The counted regions granted: (lo, hi, hook handle), canonical [lo, hi).
        self.regions: list[tuple[int, int, Any]] = []
        #: Where the current look at whether precharging pays began (``adapt``):
        #: executed instructions, precharged instructions, switches of view.
        self._look = (0, 0, 0)
        self._next_look = min(FIRST_LOOK, LOOK)
        self._suspend_for = SUSPEND_MIN
        #: Times precharging was suspended because it did not pay (a profile figure).
        self.suspensions = 0
        #: Called after precharging added an instruction counter's code hook: the code
        #: hooks placed before (unmask, traps) must be placed again, after it.
        self.on_count_hooks: Callable[[], None] = lambda: None
        #: Whether the image's sites have code hooks of their own (``sim.sites``: not
        #: in the native count hook's bitmap): suspended, they go on both views and the
        #: engine walks them all at every instruction, more than precharging costs
        #: (``adapt``).
        self.other_code_hooks: Callable[[], bool] = lambda: False
        #: While suspended, the count before which ``adapt`` has nothing to decide (no
        #: look due, no region asked for): a stop before it costs two reads (0: none).
        self._quiet_until = 0

    def plan(self, memories: list[Any], reset_pc: int, mmio: list[tuple[int, int]]) -> None:
        """Precharge when the image runs from flash at its own address (``reset_pc``, the
        reset vector) and the flash has an alias at 0. An image linked at the alias runs
        counted throughout, so that every address it sees stays its own."""
        flash = next((m for m in memories if m.name == "flash" and 0 in m.aliases), None)
        self.aliased = flash
        if (not self.wanted or flash is None or self.flash is not None
                or not flash.base <= reset_pc & ~1 < flash.base + flash.size
                or len(mmio) > MAX_DENY):
            return
        self.flash = flash
        self._marks = (ctypes.c_ubyte * (flash.size // 16))()
        self._counter.enable_precharge(flash.base, flash.size, mmio, self._marks)
        if START_COUNTED:
            self._suspend()
            self.suspensions = 0
            self._next_look = START_COUNTED

    def views(self, address: int) -> list[int]:
        """Where the instruction at ``address`` runs counted now, so where a code hook
        on it must be (whichever view ``address`` names: an image loaded at the alias
        is the same code). Flash code runs counted at the alias; at its canonical
        address only inside a counted region (a marked instruction's block goes to
        the alias first: ``hwut_block_exact``), and in both views while precharging
        is suspended (the canonical address is where firmware sees its code, also
        when the image was loaded at the alias). A hook where the code never runs
        counted is not harmless: the engine walks every code hook at every counted
        instruction. Whoever places such hooks places them again through
        ``on_count_hooks`` when the regions or suspension change."""
        flash = self.flash
        if flash is None:
            # counted throughout: an image loaded at the alias (a BIN) runs at the
            # canonical address once its reset vector is taken, and one linked at the
            # alias runs there, so a site in the alias's range goes in both views
            aliased = self.aliased
            if aliased is not None and address < aliased.size:
                return [address, address + aliased.base]
            return [address]
        if flash.base <= address < flash.base + flash.size:
            canonical = address
        elif address < flash.size:
            canonical = address + flash.base
        else:
            return [address]
        alias = canonical - flash.base
        if (self._pre.suspended
                or any(lo <= canonical < hi for lo, hi, _ in self.regions)):
            return [canonical, alias]
        return [alias]

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

    def adapt(self) -> None:
        """Whenever the engine stops: grant a counted region asked for, and every
        ``LOOK`` instructions see whether precharging paid for itself since the last
        look. If not, count every instruction (``suspend_precharge``) for a while,
        longer each time; then look again. Which code is counted where never changes
        the count or anything firmware sees, only the speed."""
        if self.flash is None:
            return
        # at every stop: an interrupt storm stops the engine every few instructions,
        # and this costs it as much as counting them does (hence the plain reads)
        c = self._state
        quiet = self._quiet_until
        if quiet and c.count < quiet:   # suspended, the next look not due
            if quiet < c.limit:
                c.limit = quiet
            return
        if self._want.want_hi:
            self.grant_regions()
        executed = self._counter.instructions
        if self._pre.suspended and self.other_code_hooks():
            # the image's own hooks came while suspended (a trap enabled): on both
            # views they cost more than precharging does
            self._resume()
            self._start_look(executed)
        elif executed >= self._next_look:
            self._look_again(executed)
        # the slice about to run ends in time for the next look
        end = c.count + max(1, self._next_look - executed)
        if end < c.limit:
            c.limit = end
        # suspended, nothing is asked for (regions are not) until the look: the count
        # reaches ``end`` no sooner than the instructions executed reach the look
        self._quiet_until = end if self._pre.suspended and not self.other_code_hooks() else 0

    def wake(self) -> None:
        """Something ``adapt`` must see at the next stop (code hooks came for sites)."""
        self._quiet_until = 0

    def _look_again(self, executed: int) -> None:
        pre = self._counter.state.pre
        switches = pre.to_alias + pre.to_canonical
        if pre.suspended:
            # back on: the first look is as short as at the start, so that code where
            # precharging still does not pay runs precharged no longer than that
            self._resume()
            self._start_look(executed, min(FIRST_LOOK, LOOK))
            return
        n, p, s = (executed - self._look[0], pre.precharged_insns - self._look[1],
                   switches - self._look[2])
        if p * PAYS_PRECHARGED < (n - p) + s * PAYS_SWITCH and not self.other_code_hooks():
            first = not self.suspensions and p * PAYS_PRECHARGED * PROMISING >= n - p
            self._suspend()
            if first:
                self._next_look = executed + min(FIRST_SUSPEND, self._suspend_for)
            else:
                self._next_look = executed + self._suspend_for
                self._suspend_for = min(2 * self._suspend_for, SUSPEND_MAX)
            return
        self._suspend_for = SUSPEND_MIN
        self._start_look(executed)

    def _start_look(self, executed: int, window: int | None = None) -> None:
        pre = self._pre
        self._look = (executed, pre.precharged_insns, pre.to_alias + pre.to_canonical)
        self._next_look = executed + (LOOK if window is None else window)

    def _suspend(self) -> None:
        """Count everything per instruction from here: the firmware's PC and LR are
        put in the canonical view (no alias address is left anywhere: see
        ``expose_lr``), the region hooks go (the one hook covers them)."""
        st = self._counter.state
        self.expose_lr()
        st.pre.alias_lr = 0
        pc = self._uc.reg_read(A.UC_ARM_REG_PC)
        self._uc.reg_write(A.UC_ARM_REG_PC, self.canonical(pc) | 1)
        st.regions.n = 0
        for _, _, handle in self.regions:
            self._counter.uncount_region(handle)
        self._counter.suspend_precharge()
        self.on_count_hooks()
        self.suspensions += 1

    def _resume(self) -> None:
        st = self._counter.state
        self._counter.resume_precharge()
        self.regions = [(lo, hi, self._counter.count_region(lo, hi)) for lo, hi, _ in self.regions]
        st.regions.n = len(self.regions)
        self.on_count_hooks()

    def grant_regions(self) -> None:
        """Whenever the engine stops: add the counted region ``hwut_block_exact`` asked
        for, merged with a granted one it lies near, within ``REGIONS`` hooks. Which
        code is counted where never changes the count, only the speed."""
        st = self._counter.state.regions
        if not st.want_hi or self._counter.state.pre.suspended:
            return
        lo, hi = st.want_lo, st.want_hi
        st.want_hi = 0
        kept, merged = [], []
        for region in self.regions:
            rlo, rhi, _ = region
            if (lo - MERGE_GAP <= rhi and rlo <= hi + MERGE_GAP
                    and max(hi, rhi) - min(lo, rlo) <= MAX_REGION_SPAN):
                lo, hi = min(lo, rlo), max(hi, rhi)
                merged.append(region)
            else:
                kept.append(region)
        if len(kept) >= REGIONS:
            return  # no room (and nothing merged)
        st.n = 0  # while the hooks change, no block is taken for counted in place
        for _, _, handle in merged:
            self._counter.uncount_region(handle)
        kept.append((lo, hi, self._counter.count_region(lo, hi)))
        self.regions = sorted(kept)
        self.on_count_hooks()  # after ``regions``: site hooks go where code runs counted
        for i, (rlo, rhi, _) in enumerate(self.regions):
            st.lo[i], st.hi[i] = rlo, rhi
        st.n = len(self.regions)

    def expose_lr(self) -> None:
        """LR as firmware sees it, whenever the engine stops. A leaf function called
        from code counted at the alias keeps the alias's return address in LR (it
        only returns through it: ``hwut_block_exact``), so a loop calling it stays
        in one view; everything outside the engine (exception entry, faults, the
        debugger, the host) must see the canonical address, as an exception frame
        stacked in C does."""
        st = self._pre
        if st.alias_lr and self._uc.reg_read(A.UC_ARM_REG_LR) == st.alias_lr:
            self._uc.reg_write(A.UC_ARM_REG_LR, st.alias_lr + self.flash.base)
