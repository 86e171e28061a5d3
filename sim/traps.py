"""Traps the CPU emulation does not take by itself, found per instruction.

Unicorn (QEMU's ARMv7-M translation) knows nothing of SCB_CCR or SCB_CPACR,
which our SCB model holds. It runs floating-point instructions whatever
CPACR says, where the architecture raises a UsageFault with UFSR.NOCP while
CP10/CP11 deny access (0b00, or 0b01 and the code is unprivileged: B3.2.20,
CheckVFPEnabled); CPACR is 0 at reset, so until firmware grants access every FP
site is hooked, and once it does the hooks go (an image built without FP has
no site and pays nothing). It returns 0 for SDIV/UDIV by zero, where with CCR.DIV_0_TRP set
the architecture raises a UsageFault with UFSR.DIVBYZERO before the instruction
writes its destination (ARMv7-M ARM, the SDIV/UDIV pseudocode). It performs
unaligned LDR/STR even with CCR.UNALIGN_TRP set, and unaligned LDRD/STRD,
LDM/STM, VLDR/VSTR, VLDM/VSTM, which fault with UFSR.UNALIGNED whatever the bit
(A3.2.1); only the exclusives it faults itself.

As for the unmask sites (``sim.unmask``), the image is scanned for the
instructions (divisions by their encoding, loads and stores decoded with
capstone); each is a site (``sim.sites``) whose callback looks at its registers,
added only once firmware sets the CCR bit (until then a run pays nothing). A false
match in literal data is harmless: its hook never runs, or runs on a real
instruction. A hook that finds a trap stops the CPU before the instruction;
the run loop then raises the fault through the exception model
(``TrapHooks.raise_found``).
"""
from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from capstone import CS_ARCH_ARM, CS_MODE_MCLASS, CS_MODE_THUMB, Cs
from capstone import arm_const as C
from unicorn import Uc
from unicorn import arm_const as A

from . import thumb
from .core import exceptions as X
from .core.exceptions import ExceptionModel
from .counter import InstructionCounter
from .precharge import Precharge
from .sites import SiteCallback, SiteTable

#: CCR bits (ARMv7-M B3.2.8).
CCR_UNALIGN_TRP = 1 << 3
CCR_DIV_0_TRP = 1 << 4
#: CPACR.CP10 (B3.2.20; CP11 must be set alike): full access, privileged only.
CPACR_CP10_SHIFT = 20
CP_FULL, CP_PRIVILEGED = 3, 1

#: Register numbers 0..15 as Unicorn names them.
REGISTERS = (A.UC_ARM_REG_R0, A.UC_ARM_REG_R1, A.UC_ARM_REG_R2, A.UC_ARM_REG_R3,
             A.UC_ARM_REG_R4, A.UC_ARM_REG_R5, A.UC_ARM_REG_R6, A.UC_ARM_REG_R7,
             A.UC_ARM_REG_R8, A.UC_ARM_REG_R9, A.UC_ARM_REG_R10, A.UC_ARM_REG_R11,
             A.UC_ARM_REG_R12, A.UC_ARM_REG_SP, A.UC_ARM_REG_LR, A.UC_ARM_REG_PC)


def divide_sites(segments: list[tuple[int, bytes]]) -> list[tuple[int, int]]:
    """(address, Rm) of every SDIV/UDIV at a half-word boundary of ``segments``."""
    return [(address, rm) for address, hw1, hw2 in thumb.scan(segments)
            if (rm := thumb.divide_rm(hw1, hw2)) is not None]


def overlay(old: list[tuple[int, bytes]], new: list[tuple[int, bytes]]
            ) -> list[tuple[int, bytes]]:
    """``old`` segments with what ``new`` ones cover cut out, then ``new``: the image
    after ``new`` was written over ``old``."""
    kept = []
    for address, data in old:
        pieces = [(address, data)]
        for start, written in new:
            end = start + len(written)
            cut = []
            for at, piece in pieces:
                if at + len(piece) <= start or at >= end:
                    cut.append((at, piece))
                    continue
                if at < start:
                    cut.append((at, piece[:start - at]))
                if at + len(piece) > end:
                    cut.append((end, piece[end - at:]))
            pieces = cut
        kept += pieces
    return kept + list(new)
#: Where a floating-point instruction may start, found by the C regex engine (a
#: Python loop over every half-word of a large image takes too long): a high byte
#: 0xEC-0xEF, then a second half-word whose high byte has bits 3:1 = 0b101.
_FP_CANDIDATE = re.compile(
    b"(?=[\\x00-\\xff][\\xec-\\xef][\\x00-\\xff][" +
    b"".join(re.escape(bytes([b])) for b in range(256) if b & 0x0E == 0x0A) + b"])", re.S)


def floating_point_sites(segments: list[tuple[int, bytes]]) -> list[int]:
    """The address of every floating-point instruction at a half-word boundary of
    ``segments`` (``thumb.is_floating_point``)."""
    sites = []
    for address, data in segments:
        for m in _FP_CANDIDATE.finditer(data):
            off = m.start()
            if not off & 1 and thumb.is_floating_point(thumb.halfword(data, off),
                                                       thumb.halfword(data, off + 2)):
                sites.append(address + off)
    return sites


# -- alignment ---------------------------------------------------------------------
# ARMv7-M A3.2.1: LDR/STR (and T variants) of words and half-words may be unaligned
# unless CCR.UNALIGN_TRP is set; LDRD/STRD, LDM/STM, VLDR/VSTR, VLDM/VSTM and the
# exclusives need word (exclusives: their size) alignment always. Unicorn faults the
# exclusives itself (a data abort, see Machine); the others it performs unaligned.
_WORD = (C.ARM_INS_LDR, C.ARM_INS_STR, C.ARM_INS_LDRT, C.ARM_INS_STRT)
_HALF = (C.ARM_INS_LDRH, C.ARM_INS_LDRSH, C.ARM_INS_STRH, C.ARM_INS_LDRHT,
         C.ARM_INS_LDRSHT, C.ARM_INS_STRHT)
_ALWAYS_WORD = (C.ARM_INS_LDRD, C.ARM_INS_STRD, C.ARM_INS_VLDR, C.ARM_INS_VSTR)
_MULTIPLE = (C.ARM_INS_LDM, C.ARM_INS_LDMDB, C.ARM_INS_STM, C.ARM_INS_STMDB,
             C.ARM_INS_VLDMIA, C.ARM_INS_VLDMDB, C.ARM_INS_VSTMIA, C.ARM_INS_VSTMDB)


#: Bases that are always word-aligned where the address is formed: SP (its bits 1:0
#: are zero on M profile) and PC as a literal-pool base (Align(PC, 4)).
_ALIGNED_BASES = (A.UC_ARM_REG_SP, A.UC_ARM_REG_PC)


@dataclass(frozen=True)
class Access:
    """How one load/store site forms its address, and the alignment it needs."""
    base: int                 # Unicorn register, or PC (the literal pool: Align(PC, 4))
    index: int | None = None
    shift: int = 0
    disp: int = 0
    post_index: bool = False  # the address is the base; the offset is written back
    mask: int = 3             # address bits that must be 0
    always: bool = False      # faults whether or not CCR.UNALIGN_TRP is set

    def address(self, read_reg: Callable[[int], int], pc: int) -> int:
        base = (pc + 4) & ~3 if self.base == A.UC_ARM_REG_PC else read_reg(self.base)
        if self.post_index:
            return base
        offset = self.disp + (read_reg(self.index) << self.shift if self.index else 0)
        return (base + offset) & 0xFFFF_FFFF


_UC_REG: dict[int, int] = {}


def _uc_reg(cs_reg: int) -> int:
    if not _UC_REG:
        names = [f"R{n}" for n in range(13)] + ["SP", "LR", "PC"]
        for n, name in enumerate(names):
            _UC_REG[getattr(C, f"ARM_REG_{name}")] = REGISTERS[n]
        _UC_REG[C.ARM_REG_R13] = A.UC_ARM_REG_SP
        _UC_REG[C.ARM_REG_R14] = A.UC_ARM_REG_LR
        _UC_REG[C.ARM_REG_R15] = A.UC_ARM_REG_PC
    return _UC_REG[cs_reg]


def access_sites(segments: list[tuple[int, bytes]]) -> list[tuple[int, Access]]:
    """Every load/store that may fault on alignment, decoded at each half-word of
    ``segments`` (code and data are not told apart: a site inside data or in the
    middle of an instruction never runs as one). Byte accesses never fault; nor do
    PUSH/POP, whose SP the architecture keeps word-aligned."""
    md = Cs(CS_ARCH_ARM, CS_MODE_THUMB | CS_MODE_MCLASS)
    md.detail = True
    sites = []
    for address, data in segments:
        for off in range(0, len(data) - 1, 2):
            if not thumb.accesses_memory(data[off] | data[off + 1] << 8):
                continue
            insn = next(md.disasm(data[off:off + 4], address + off, 1), None)
            if insn is None:
                continue
            site = _access(insn)
            if site is not None:
                sites.append((address + off, site))
    return sites


def _access(insn: Any) -> Access | None:
    ident = insn.id
    if ident in _MULTIPLE:
        base = _uc_reg(insn.operands[0].reg)
        return None if base in _ALIGNED_BASES else Access(base, mask=3, always=True)
    if ident in _WORD:
        mask, always = 3, False
    elif ident in _HALF:
        mask, always = 1, False
    elif ident in _ALWAYS_WORD:
        mask, always = 3, True
    else:
        return None
    op = next((o for o in insn.operands if o.type == C.ARM_OP_MEM), None)
    if op is None or not op.mem.base:
        return None
    mem = op.mem
    index = _uc_reg(mem.index) if mem.index else None
    if _uc_reg(mem.base) in _ALIGNED_BASES and index is None and not mem.disp & mask:
        return None  # SP (word-aligned) or the literal pool plus an aligned offset
    return Access(_uc_reg(mem.base), index, op.shift.value if index else 0, mem.disp,
                  bool(insn.post_index), mask, always)


class TrapHooks:
    """The sites of the traps firmware enabled (CCR.DIV_0_TRP, CCR.UNALIGN_TRP) or
    left armed (CPACR denying the FPU), and the multi-word alignment checks, added
    and removed between slices."""

    def __init__(self, uc: Uc, counter: InstructionCounter, precharge: Precharge,
                 sites: SiteTable, *, read_ccr: Callable[[], int],
                 strict_alignment: bool = False) -> None:
        self._uc = uc
        self._counter = counter
        self._precharge = precharge
        self._table = sites
        self._read_ccr = read_ccr
        #: Check LDRD/STRD/LDM/STM/VLDR/VSTR alignment from the start, as the architecture
        #: does, rather than once UNALIGN_TRP is set (a Python hook per such access).
        self._strict_alignment = strict_alignment
        #: kind ("divide", "multiword", "align", "coprocessor") -> installed (False:
        #: wanted, not yet)
        self.hooks: dict[str, bool] = {}
        #: Hooks wait to be installed or removed (``install`` before the next slice).
        self.wanted = False
        self._segments: list[tuple[int, bytes]] = []
        self._access_sites: list[tuple[int, Access]] | None = None
        #: The sites of the installed kinds: they go again when the trap is no longer
        #: wanted ("coprocessor") or code is replaced (``watch``).
        self._sites: dict[str, list[int]] = {}
        self._unwanted: set[str] = set()
        #: SCB_CPACR as last written (its reset value 0 denies the FPU).
        self._cpacr = 0
        #: A trap a hook found before its instruction ran: (fault, CFSR bits, why).
        self._found: tuple[int, int, str] | None = None

    def load(self, segments: list[tuple[int, bytes]]) -> None:
        """The image whose sites the hooks go on."""
        self._segments = list(segments)
        self._access_sites = None
        if self._strict_alignment:
            self.hooks["multiword"] = False
            self.wanted = True
        self.cpacr_written(self._cpacr)

    def watch(self, segments: list[tuple[int, bytes]]) -> None:
        """Code programmed after ``load`` (a debugger writing flash) replaces what was
        there: the hooks come off the old sites (a stale hook could find a "division"
        in the new code) and the traps already enabled go back on the new image's
        sites before the next slice; traps enabled later cover the new code too."""
        self._segments = overlay(self._segments, segments)
        self._access_sites = None
        kinds = list(self.hooks)
        for kind in kinds:
            self._remove(kind)
        for kind in kinds:
            self.hooks[kind] = False
        if self.hooks:
            self.wanted = True
            self._counter.stop_soon()

    def ccr_written(self, ccr: int) -> None:
        """A trap enabled: its hooks go in between slices (from the next instruction)."""
        wanted = (("divide",) if ccr & CCR_DIV_0_TRP else ()) + \
            (("multiword", "align") if ccr & CCR_UNALIGN_TRP else ())
        for kind in wanted:
            self._want(kind)

    def cpacr_written(self, cpacr: int) -> None:
        """CPACR written (or reset): while CP10 does not grant full access the FP sites
        are hooked; once it does, their hooks go, between slices."""
        self._cpacr = cpacr
        if (cpacr >> CPACR_CP10_SHIFT) & 3 != CP_FULL:
            self._unwanted.discard("coprocessor")
            self._want("coprocessor")
        elif "coprocessor" in self.hooks:
            self._unwanted.add("coprocessor")
            self.wanted = True
            self._counter.stop_soon()

    def _want(self, kind: str) -> None:
        if kind not in self.hooks:
            self.hooks[kind] = False
            self.wanted = True
            self._counter.stop_soon()

    def install(self) -> None:
        """A site at every instruction of the wanted traps; in precharged flash those run
        counted from now on, so that a trap stops at its instruction, count exact.
        Sites no longer wanted go, and run precharged again."""
        for kind in sorted(self._unwanted):
            self._remove(kind)
        self._unwanted.clear()
        for kind, installed in list(self.hooks.items()):
            if installed:
                continue
            hook: SiteCallback  # its data: a register or an Access
            if kind == "divide":
                sites: list[tuple[int, Any]] = list(divide_sites(self._segments))
                hook = self._on_divide
            elif kind == "coprocessor":
                sites = [(a, None) for a in floating_point_sites(self._segments)]
                hook = self._on_coprocessor
            else:  # "multiword": faults always; "align": only with UNALIGN_TRP
                if self._access_sites is None:
                    self._access_sites = access_sites(self._segments)
                sites = [(a, s) for a, s in self._access_sites if s.always == (kind == "multiword")]
                hook = self._on_access
            for address, data in sites:
                self._table.add(kind, address, hook, data)
                self._precharge.mark(address)
            self._sites[kind] = [a for a, _ in sites]
            self.hooks[kind] = True
        self.wanted = False
        self._counter.forget_blocks()
        # mypy sees unicorn's py2 Uc (see sim.counter), which has no ctl_flush_tb
        self._uc.ctl_flush_tb()  # type: ignore[attr-defined]

    @property
    def hooked(self) -> bool:
        """Any trap's hooks placed, or about to be."""
        return bool(self.hooks)

    def _remove(self, kind: str) -> None:
        """Take the sites of ``kind`` off; they run precharged again unless an
        alignment check (which watches VLDR/VSTR too) keeps them counted."""
        self._table.remove(kind)
        sites = self._sites.pop(kind, [])
        if not {"multiword", "align"} & set(self.hooks):
            for address in sites:
                self._precharge.unmark(address)
        self.hooks.pop(kind, None)

    def raise_found(self, exc: ExceptionModel) -> bool:
        """Raise the fault a hook found in the slice that just ended, if any."""
        if self._found is None:
            return False
        kind, bits, why = self._found
        self._found = None
        exc.raise_fault(kind, bits, why=why)
        return True

    def _on_divide(self, uc: Uc, address: int, size: int, rm: int) -> bool:
        if uc.reg_read(REGISTERS[rm]) == 0 and self._read_ccr() & CCR_DIV_0_TRP:
            pc = self._precharge.canonical(address)
            self._found = (X.USAGEFAULT, X.CFSR_DIVBYZERO, f"division by zero at 0x{pc:08x}")
            uc.emu_stop()  # before the instruction: it writes nothing
            return True
        return False

    def _on_coprocessor(self, uc: Uc, address: int, size: int, _data: None) -> bool:
        cp10 = (self._cpacr >> CPACR_CP10_SHIFT) & 3
        if cp10 == CP_FULL:
            return False
        if cp10 == CP_PRIVILEGED and (uc.reg_read(A.UC_ARM_REG_IPSR) & 0x1FF
                                      or not uc.reg_read(A.UC_ARM_REG_CONTROL) & 1):
            return False
        pc = self._precharge.canonical(address)
        self._found = (X.USAGEFAULT, X.CFSR_NOCP,
                       f"floating-point instruction at 0x{pc:08x} while CPACR denies it")
        uc.emu_stop()  # before the instruction
        return True

    def _on_access(self, uc: Uc, address: int, size: int, site: Access) -> bool:
        if not (site.always or self._read_ccr() & CCR_UNALIGN_TRP):
            return False
        ea = site.address(uc.reg_read, address)
        if ea & site.mask:
            pc = self._precharge.canonical(address)
            self._found = (X.USAGEFAULT, X.CFSR_UNALIGNED,
                           f"unaligned access to 0x{ea:08x} at 0x{pc:08x}")
            uc.emu_stop()
            return True
        return False
