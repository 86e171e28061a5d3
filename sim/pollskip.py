"""Fast-forward of status-polling loops, exact in virtual time.

Firmware spends much of its life in loops such as ``while (!(USART2->ISR & TXE));``.
Each turn costs a Python callback for the MMIO read, so emulating them turn by
turn runs at a few MIPS. When the same instruction has read the same value
from the same register several times in a row, the loop around it is
disassembled; if it is *pure* (one load, then only register arithmetic, flag
tests and the branch back, no stores, and no register that feeds an iteration
is changed by it), every further turn is identical until the register can
change. The register can change only at the next clock event, or at the time
its model names (SysTick's COUNTFLAG). Those turns are skipped by adding their
instruction count to the counter: the result is the same, cycle for cycle, as
executing them.

With the native read cache (``sim.mmio_cache``) the cache answers such a loop's
reads and the idle skip in C (``idle_visit`` in sim/native/counter.c) skips its
turns, without a Python read per turn; this module serves runs without it.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from capstone import CS_ARCH_ARM, CS_MODE_MCLASS, CS_MODE_THUMB, Cs, CsError
from capstone import arm_const as C

#: Identical reads in a row (after the first) before turns are skipped: one
#: repeat from a pure loop proves that the value leads back to the same load.
REPEATS = 1
_MAX_BODY = 12
#: Loop analyses kept (by PC of the load); code that polls from ever new places
#: (copied or generated code) starts the cache afresh rather than growing it.
MAX_SITES = 4096
_LOADS = {"ldr", "ldrb", "ldrh", "ldrsb", "ldrsh"}
_PURE = {"tst", "teq", "cmp", "cmn", "and", "ands", "orr", "orrs", "eor", "eors", "lsl", "lsls",
         "lsr", "lsrs", "asr", "asrs", "ubfx", "sbfx", "uxtb", "uxth", "sxtb", "sxth", "mov",
         "movs", "mvn", "mvns", "bic", "bics", "it", "ite", "itt", "rbit", "rev", "clz",
         "add", "adds", "sub", "subs", "nop"}
_BRANCH = {"b", "bne", "beq", "bpl", "bmi", "bcs", "bcc", "bhs", "blo", "bhi", "bls", "bge",
           "blt", "bgt", "ble", "bvs", "bvc", "cbz", "cbnz"}
_FLAGS = -1  # pseudo register for the condition flags


@dataclass(frozen=True)
class Loop:
    start: int
    length: int  # instructions per turn
    #: The bytes analysed: self-modifying code may have replaced them since.
    code: bytes = b""


class PollFastForward:
    def __init__(self, read_code: Callable[[int, int], bytes]) -> None:
        self._read_code = read_code
        self._md = Cs(CS_ARCH_ARM, CS_MODE_THUMB | CS_MODE_MCLASS)
        self._md.detail = True
        self._loops: dict[int, Loop | None] = {}
        self._last: tuple[int, int, int] | None = None
        self._repeats = 0
        self.skipped_turns = 0

    def forget(self) -> None:
        """Something other than the polled read happened on the bus."""
        self._last = None
        self._repeats = 0

    def observe(self, pc: int, address: int, value: int) -> bool:
        """True when the same instruction read the same value again, with no other
        peripheral access in between."""
        key = (pc, address, value)
        if key == self._last:
            self._repeats += 1
            return self._repeats >= REPEATS
        self._last = key
        self._repeats = 0
        return False

    def loop_at(self, pc: int) -> Loop | None:
        loops = self._loops
        if pc not in loops:
            if len(loops) >= MAX_SITES:  # code that reads from ever new places (copied, generated)
                loops.clear()
            loops[pc] = self._analyse(pc)
        return loops[pc]

    def turns_to_skip(self, loop: Loop, now: int, stable_until: int) -> int:
        """Whole turns that end strictly before the register may change."""
        if stable_until <= now + loop.length:
            return 0
        try:
            same = self._read_code(loop.start, len(loop.code)) == loop.code
        except Exception:
            same = False
        if not same:  # rewritten since it was analysed: analyse again when next seen
            self._loops.clear()
            return 0
        return (stable_until - 1 - now) // loop.length - 1

    # -- analysis ------------------------------------------------------------------
    def _decode(self, start: int, size: int) -> list:
        try:
            code = self._read_code(start, size)
        except Exception:
            return []
        try:
            return list(self._md.disasm(code, start))
        except CsError:
            return []

    def _analyse(self, pc: int) -> Loop | None:
        ahead = self._decode(pc, 4 * _MAX_BODY)
        branch = None
        for insn in ahead[:_MAX_BODY]:
            if insn.mnemonic.split(".")[0] in _BRANCH:
                branch = insn
                break
            if insn.mnemonic.split(".")[0] not in _PURE | _LOADS:
                return None
        if branch is None or not branch.operands or branch.operands[-1].type != C.ARM_OP_IMM:
            return None
        target = branch.operands[-1].imm
        if not (pc - 4 * _MAX_BODY <= target <= pc):
            return None
        body = self._decode(target, branch.address + branch.size - target)
        if not body or body[-1].address != branch.address or pc not in {i.address for i in body}:
            return None
        if not self._pure(body, pc):
            return None
        end = branch.address + branch.size
        return Loop(target, len(body), self._read_code(target, end - target))

    def _pure(self, body: list, pc: int) -> bool:
        written: set[int] = set()
        inputs: set[int] = set()
        loads = 0
        for insn in body:
            name = insn.mnemonic.split(".")[0]
            if name in _LOADS:
                loads += 1
                if insn.address != pc or insn.writeback:
                    return False
            elif name not in _PURE and name not in _BRANCH:
                return False
            raw_reads, raw_writes = insn.regs_access()
            reads = {_FLAGS if r == C.ARM_REG_CPSR else r for r in raw_reads}
            writes = {_FLAGS if r == C.ARM_REG_CPSR else r for r in raw_writes}
            if insn.cc not in (C.ARM_CC_AL, C.ARM_CC_INVALID):
                reads.add(_FLAGS)
            if insn.update_flags:
                writes.add(_FLAGS)
            inputs |= {r for r in reads if r != C.ARM_REG_PC and r not in written}
            written |= writes
        written.discard(C.ARM_REG_PC)
        return loads == 1 and not (inputs & written) and _FLAGS not in inputs
