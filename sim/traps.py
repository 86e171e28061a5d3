"""Traps the CPU emulation does not take by itself, found per instruction.

Unicorn (QEMU's ARMv7-M translation) knows nothing of SCB_CCR, which our SCB
model holds. It returns 0 for SDIV/UDIV by zero, where with CCR.DIV_0_TRP set
the architecture raises a UsageFault with UFSR.DIVBYZERO before the instruction
writes its destination (ARMv7-M ARM, the SDIV/UDIV pseudocode). It performs
unaligned LDR/STR even with CCR.UNALIGN_TRP set, and unaligned LDRD/STRD,
LDM/STM, VLDR/VSTR, VLDM/VSTM, which fault with UFSR.UNALIGNED whatever the bit
(A3.2.1); only the exclusives it faults itself.

As for the unmask sites (``Machine._watch_unmasking``), the image is scanned for
the instructions (divisions by their encoding, loads and stores decoded with
capstone); each site gets a code hook that looks at its registers, installed
only once firmware sets the CCR bit (until then a run pays nothing). A false
match in literal data is harmless: its hook never runs, or runs on a real
instruction.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from capstone import CS_ARCH_ARM, CS_MODE_MCLASS, CS_MODE_THUMB, Cs
from capstone import arm_const as C
from unicorn import arm_const as A

#: CCR bits (ARMv7-M B3.2.8).
CCR_UNALIGN_TRP = 1 << 3
CCR_DIV_0_TRP = 1 << 4

#: Register numbers 0..15 as Unicorn names them.
REGISTERS = (A.UC_ARM_REG_R0, A.UC_ARM_REG_R1, A.UC_ARM_REG_R2, A.UC_ARM_REG_R3,
             A.UC_ARM_REG_R4, A.UC_ARM_REG_R5, A.UC_ARM_REG_R6, A.UC_ARM_REG_R7,
             A.UC_ARM_REG_R8, A.UC_ARM_REG_R9, A.UC_ARM_REG_R10, A.UC_ARM_REG_R11,
             A.UC_ARM_REG_R12, A.UC_ARM_REG_SP, A.UC_ARM_REG_LR, A.UC_ARM_REG_PC)


def divide_sites(segments: list[tuple[int, bytes]]) -> list[tuple[int, int]]:
    """(address, Rm) of every SDIV/UDIV (T1: 1111 1011 1001/1011 nnnn, 1111 dddd
    1111 mmmm) at a half-word boundary of ``segments``."""
    sites = []
    for address, data in segments:
        for off in range(0, len(data) - 3, 2):
            hw1 = data[off] | data[off + 1] << 8
            if hw1 & 0xFFD0 != 0xFB90:     # 0xFB9n SDIV, 0xFBBn UDIV
                continue
            hw2 = data[off + 2] | data[off + 3] << 8
            if hw2 & 0xF0F0 == 0xF0F0:
                sites.append((address + off, hw2 & 0xF))
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


#: Top bytes of a first half-word that can start a load or store (A5.2/A5.3): 16-bit
#: LDR literal 0x48-0x4F, register/immediate forms 0x50-0x9F, LDM/STM 0xC0-0xCF; 32-bit
#: LDM/STM/LDRD/STRD/exclusives 0xE8-0xE9, VLDR/VSTR/VLDM/VSTM 0xEC-0xED, LDR/STR 0xF8-0xF9.
_LOAD_STORE = bytes(1 if 0x48 <= b <= 0x9F or 0xC0 <= b <= 0xCF
                    or b in (0xE8, 0xE9, 0xEC, 0xED, 0xF8, 0xF9) else 0 for b in range(256))


def access_sites(segments: list[tuple[int, bytes]]) -> list[tuple[int, Access]]:
    """Every load/store that may fault on alignment, decoded at each half-word of
    ``segments`` (code and data are not told apart: a site inside data or in the
    middle of an instruction never runs as one). Byte accesses never fault; nor do
    PUSH/POP, whose SP the architecture keeps word-aligned."""
    md = Cs(CS_ARCH_ARM, CS_MODE_THUMB | CS_MODE_MCLASS)
    md.detail = True
    sites = []
    for address, data in segments:
        for off in range(1, len(data), 2):
            if not _LOAD_STORE[data[off]]:   # the first half-word's top byte
                continue
            off -= 1
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
