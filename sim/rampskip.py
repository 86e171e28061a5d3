"""The ramp skip: a loop that waits on a counting register, skipped to its exit tick.

``wait_us`` in Mbed OS (and every ``while (TIMx->CNT - start < n)``) polls a
free-running timer, often through a function call. Each turn reads a new
value once the timer ticked, so the idle skip (``idle_visit`` in
sim/native/counter.c), which needs a turn that leaves every register as it
found it, only reaches the next tick: a 200 us wait at 72 MHz was some 200
skips with three turns run around each.

Here the loop's code is read once, symbolically (this module, with Capstone):
the value the turn reads from the counter is X; every register it writes and
the two operands of its last flag-setting instruction are affine in X and in
registers the turn leaves alone; the loop goes on while the condition of its
closing branch holds. sim/native/rampskip.c then evaluates that condition
for each tick of the counter (the read cache's ramp says when each value is
read) up to the first on which the loop leaves, skips the turns that read
only earlier ticks, and sets the registers to what the last of them leaves.
Every tick is checked, so any condition is exact, not only a monotonic one;
the turn that reads the exit tick runs in the engine.

Only what can be proved is described: straight-line code from the loop's
head (BL into a function that returns with BX LR is followed), MOV/MOVW/MVN,
ADD/SUB/RSB (registers and immediates, no shifts), CMP/CMN/ADDS/SUBS as the
flag setters, loads from constant addresses (literal pool in flash; one
from the counter), no store, no other condition, no register that the turn
both reads before writing and changes. Anything else is refused and left to
the idle skip. Recipes hold for flash code; programming the flash drops them.
"""
from __future__ import annotations

import ctypes
from collections.abc import Callable
from dataclasses import dataclass, field

from capstone import CS_ARCH_ARM, CS_MODE_MCLASS, CS_MODE_THUMB, Cs, CsError
from capstone import arm_const as C

SITES = 64
TERMS = 3
OUTS = 6
#: Instructions per turn the analysis follows (the idle skip looks for at most 256).
MAX_TURN = 64
#: Analyses kept (by head and turn length) before the memo starts afresh.
MAX_MEMO = 4096
SITE_EMPTY, SITE_REQUESTED, SITE_READY, SITE_REFUSED, SITE_MOVED = range(5)
FLAGS_SUB, FLAGS_ADD = 1, 2
MASK = 0xFFFF_FFFF


class RampExpr(ctypes.Structure):
    """k + x * X + sum(coef[i] * register reg[i]), modulo 2^32 (reg -1: no term)."""
    _fields_ = [("k", ctypes.c_uint32), ("x", ctypes.c_int32),
                ("reg", ctypes.c_int32 * TERMS), ("coef", ctypes.c_int32 * TERMS)]


class RampSite(ctypes.Structure):
    _fields_ = [("head", ctypes.c_uint32), ("period", ctypes.c_uint32),
                ("state", ctypes.c_uint32), ("address", ctypes.c_uint32),
                ("size", ctypes.c_uint32), ("cond", ctypes.c_uint32),
                ("flags_kind", ctypes.c_uint32), ("n_out", ctypes.c_uint32),
                ("lr", ctypes.c_uint32), ("spare", ctypes.c_uint32),
                ("where", RampExpr), ("a", RampExpr), ("b", RampExpr),
                ("out_reg", ctypes.c_int32 * OUTS), ("out", RampExpr * OUTS)]


class RampState(ctypes.Structure):
    _fields_ = [("cache", ctypes.c_void_p), ("flash_base", ctypes.c_uint32),
                ("flash_size", ctypes.c_uint32), ("requests", ctypes.c_uint32),
                ("spare", ctypes.c_uint32), ("skips", ctypes.c_uint64),
                ("turns", ctypes.c_uint64), ("sites", RampSite * SITES)]


#: Capstone's registers by the index counter.c's R_ names give them (REGISTER_ORDER).
_INDEX = {C.ARM_REG_R0: 0, C.ARM_REG_R1: 1, C.ARM_REG_R2: 2, C.ARM_REG_R3: 3,
          C.ARM_REG_R12: 4, C.ARM_REG_LR: 5,
          **{getattr(C, f"ARM_REG_R{n}"): 30 + n for n in range(4, 12)}}
#: Capstone's condition codes as the architecture encodes them (A7.3).
_COND = {getattr(C, f"ARM_CC_{name}"): code for code, name in enumerate(
    ("EQ", "NE", "HS", "LO", "MI", "PL", "VS", "VC", "HI", "LS", "GE", "LT", "GT", "LE"))}
_LOAD_SIZE = {"ldr": 4, "ldrh": 2, "ldrb": 1}


@dataclass(frozen=True)
class Affine:
    """k + x * X + sum(coef * register at the head), modulo 2^32."""
    k: int = 0
    x: int = 0
    terms: tuple[tuple[int, int], ...] = ()

    def _combine(self, other: Affine, sign: int) -> Affine:
        terms = dict(self.terms)
        for reg, coef in other.terms:
            terms[reg] = terms.get(reg, 0) + sign * coef
        return Affine((self.k + sign * other.k) & MASK, self.x + sign * other.x,
                      tuple(sorted((r, c) for r, c in terms.items() if c)))

    def __add__(self, other: Affine) -> Affine:
        return self._combine(other, 1)

    def __sub__(self, other: Affine) -> Affine:
        return self._combine(other, -1)

    @property
    def constant(self) -> bool:
        return not self.x and not self.terms


@dataclass(frozen=True)
class Moved:
    """The loop's turn begins at ``head``, not where it was met."""
    head: int


@dataclass(frozen=True)
class Recipe:
    """What rampskip.c needs of one loop (see the module docstring)."""
    #: the counter's address: a constant, or a register the turn leaves alone plus one
    address: Affine
    size: int
    cond: int
    flags_kind: int
    a: Affine
    b: Affine
    outs: tuple[tuple[int, Affine], ...] = field(default=())


class _Refused(Exception):
    """The turn does something the recipe cannot describe."""


class _Moved(Exception):
    """The head is inside the turn: the loop begins at the closing branch's target."""

    def __init__(self, head: int) -> None:
        super().__init__(f"the turn begins at 0x{head:08x}")
        self.head = head


class _Turn:
    """Symbolic execution of one turn of the loop at ``head``."""

    def __init__(self, md: Cs, read_code: Callable[[int, int], bytes], flash: tuple[int, int],
                 head: int) -> None:
        self._md = md
        self._read_code = read_code
        self._flash = flash
        self.head = head
        self.values: dict[int, Affine] = {}   # registers written so far
        self.live_in: set[int] = set()
        self.flags: tuple[int, Affine, Affine] | None = None
        self.load: tuple[Affine, int] | None = None
        self.count = 0

    def _in_flash(self, address: int, size: int) -> bool:
        base, length = self._flash
        return base <= address and address + size <= base + length

    def _reg(self, cs_reg: int) -> int:
        if cs_reg not in _INDEX:
            raise _Refused(f"register {cs_reg}")
        return _INDEX[cs_reg]

    def _get(self, cs_reg: int) -> Affine:
        r = self._reg(cs_reg)
        if r in self.values:
            return self.values[r]
        self.live_in.add(r)
        return Affine(terms=((r, 1),))

    def _set(self, cs_reg: int, value: Affine) -> None:
        r = self._reg(cs_reg)
        if r in self.live_in:
            raise _Refused("the turn changes a register it reads first")
        if not _fits(value):
            raise _Refused("expression too long")
        self.values[r] = value

    def _operand(self, op) -> Affine:
        if op.type == C.ARM_OP_IMM:
            return Affine(op.imm & MASK)
        if op.type == C.ARM_OP_REG and op.shift.type == 0:
            return self._get(op.reg)
        raise _Refused("operand")

    def _decode(self, address: int):
        if not self._in_flash(address, 4):
            raise _Refused("code outside flash")
        try:
            return next(self._md.disasm(self._read_code(address, 4), address))
        except (CsError, StopIteration) as exc:
            raise _Refused("undecodable") from exc

    def closing_branch(self, lr: int) -> int | None:
        """The target of the first conditional branch on the way from the head (the
        loop's turn begins there), following calls and returns; ``lr``: LR at the head."""
        pc = self.head
        for _ in range(MAX_TURN):
            insn = self._decode(pc)
            nxt = insn.address + insn.size
            conditional = insn.cc not in (C.ARM_CC_AL, C.ARM_CC_INVALID)
            if insn.id == C.ARM_INS_B and conditional:
                return int(insn.operands[0].imm)
            if conditional or C.ARM_REG_PC in insn.regs_access()[1] and insn.id not in (
                    C.ARM_INS_B, C.ARM_INS_BL, C.ARM_INS_BX):
                return None
            if insn.id == C.ARM_INS_BL:
                lr, pc = nxt | 1, insn.operands[0].imm
            elif insn.id == C.ARM_INS_BX:
                if insn.operands[0].reg != C.ARM_REG_LR or not lr:
                    return None
                pc = lr & ~1
            elif insn.id == C.ARM_INS_B:
                pc = insn.operands[0].imm
            else:
                if C.ARM_REG_LR in insn.regs_access()[1]:
                    return None
                pc = nxt
        return None

    def run(self) -> tuple[int, int]:
        """Follow the turn from the head to its closing branch: (condition, length)."""
        pc = self.head
        while self.count < MAX_TURN:
            insn = self._decode(pc)
            self.count += 1
            name = "b" if insn.id == C.ARM_INS_B else insn.mnemonic.split(".")[0]
            ops = insn.operands
            nxt = insn.address + insn.size
            if name == "b" and insn.cc not in (C.ARM_CC_AL, C.ARM_CC_INVALID):
                if insn.cc not in _COND:
                    raise _Refused(insn.mnemonic)
                if ops[0].imm != self.head:
                    raise _Moved(ops[0].imm)
                return _COND[insn.cc], self.count
            if insn.cc not in (C.ARM_CC_AL, C.ARM_CC_INVALID) or insn.writeback:
                raise _Refused(insn.mnemonic)
            if name == "b":
                pc = ops[0].imm
            elif name == "bl":
                self._set(C.ARM_REG_LR, Affine(nxt | 1))
                pc = ops[0].imm
            elif name == "bx":
                lr = self._get(ops[0].reg)
                if ops[0].reg != C.ARM_REG_LR or not lr.constant:
                    raise _Refused("a return to an address the turn did not set")
                pc = lr.k & ~1
            else:
                self._data(insn, name, ops)
                pc = nxt
        raise _Refused("too long")

    def _data(self, insn, name: str, ops) -> None:
        if name == "nop":
            return
        if name in ("mov", "movs", "movw", "mvn", "mvns") and len(ops) == 2:
            value = self._operand(ops[1])
            if name.startswith("mvn"):
                if not value.constant:
                    raise _Refused("mvn of a register")
                value = Affine(~value.k & MASK)
            self._set(ops[0].reg, value)
            if insn.update_flags:
                self.flags = None   # N and Z only: not described
            return
        if name in ("add", "adds", "sub", "subs", "rsb", "rsbs"):
            if len(ops) == 2:
                a, b = self._get(ops[0].reg), self._operand(ops[1])
            elif len(ops) == 3:
                a, b = self._operand(ops[1]), self._operand(ops[2])
            else:
                raise _Refused(name)
            if name.startswith("rsb"):
                a, b = b, a
            add = name.startswith("add")
            self._set(ops[0].reg, a + b if add else a - b)
            if insn.update_flags:
                self.flags = (FLAGS_ADD if add else FLAGS_SUB, a, b)
            return
        if name in ("cmp", "cmn") and len(ops) == 2:
            a, b = self._get(ops[0].reg), self._operand(ops[1])
            self.flags = (FLAGS_SUB if name == "cmp" else FLAGS_ADD, a, b)
            return
        if name in _LOAD_SIZE and len(ops) == 2 and ops[1].type == C.ARM_OP_MEM:
            self._load(insn, name, ops)
            return
        raise _Refused(insn.mnemonic)

    def _load(self, insn, name: str, ops) -> None:
        mem, size = ops[1].mem, _LOAD_SIZE[name]
        if mem.index != C.ARM_REG_INVALID:
            raise _Refused("indexed load")
        if mem.base == C.ARM_REG_PC:
            address = ((insn.address + 4) & ~3) + mem.disp
            if not self._in_flash(address, size):
                raise _Refused("literal outside flash")
            literal = int.from_bytes(self._read_code(address, size), "little")
            self._set(ops[0].reg, Affine(literal))
            return
        base = self._get(mem.base)
        if base.x or self.load is not None:
            raise _Refused("a second load, or one from an address the counter gives")
        self.load = (base + Affine(mem.disp & MASK), size)
        self._set(ops[0].reg, Affine(x=1))


class RampSkip:
    """The Python half of the ramp skip: answers the loops rampskip.c asks about
    (``answer``, after each run of the engine) with a recipe or a refusal."""

    def __init__(self, read_code: Callable[[int, int], bytes], cache_address: int,
                 flash_base: int, flash_size: int) -> None:
        self._read_code = read_code
        self._md = Cs(CS_ARCH_ARM, CS_MODE_THUMB | CS_MODE_MCLASS)
        self._md.detail = True
        self._flash = (flash_base, flash_size)
        self.state = RampState(cache_address, flash_base, flash_size)
        self._memo: dict[tuple[int, int, int], Recipe | Moved | None] = {}

    @property
    def address(self) -> int:
        """Where counter.c finds the state (``IdleState.ramp``)."""
        return ctypes.addressof(self.state)

    @property
    def skipped_turns(self) -> int:
        return self.state.turns

    def analyse(self, head: int, period: int, lr: int = 0) -> Recipe | Moved | None:
        """The recipe of the loop at ``head`` whose turn runs ``period`` instructions;
        ``lr``, LR at the head, finds the turn's start from inside a called function."""
        key = (head, period, lr)
        if key not in self._memo:
            if len(self._memo) >= MAX_MEMO:
                self._memo.clear()
            self._memo[key] = self._analyse(head, period, lr)
        return self._memo[key]

    def _analyse(self, head: int, period: int, lr: int) -> Recipe | Moved | None:
        turn = _Turn(self._md, self._read_code, self._flash, head)
        try:
            start = turn.closing_branch(lr)
            if start is None:
                return None
            if start != head:
                return Moved(start)
            cond, length = turn.run()
        except (_Refused, _Moved):
            return None
        if length != period or turn.load is None or turn.flags is None:
            return None
        kind, a, b = turn.flags
        if not (a.x or b.x):
            return None   # the condition does not depend on the counter
        outs = tuple((r, v) for r, v in sorted(turn.values.items()) if v.x)
        exprs = (turn.load[0], a, b, *(v for _, v in outs))
        if len(outs) > OUTS or not all(_fits(e) for e in exprs):
            return None
        return Recipe(turn.load[0], turn.load[1], cond, kind, a, b, outs)

    def answer(self) -> None:
        """Fill the sites rampskip.c asked about since the last call."""
        state = self.state
        if not state.requests:
            return
        state.requests = 0
        for site in state.sites:
            if site.state != SITE_REQUESTED:
                continue
            recipe = self.analyse(site.head, site.period, site.lr)
            if recipe is None:
                site.state = SITE_REFUSED
                continue
            if isinstance(recipe, Moved):
                site.address = recipe.head
                site.state = SITE_MOVED
                continue
            _put(site.where, recipe.address)
            site.size = recipe.size
            site.cond, site.flags_kind = recipe.cond, recipe.flags_kind
            _put(site.a, recipe.a)
            _put(site.b, recipe.b)
            site.n_out = len(recipe.outs)
            for i, (reg, value) in enumerate(recipe.outs):
                site.out_reg[i] = reg
                _put(site.out[i], value)
            site.state = SITE_READY

    def forget(self) -> None:
        """Code changed (flash programmed): every recipe is made again when next needed."""
        self._memo.clear()
        ctypes.memset(ctypes.addressof(self.state.sites), 0, ctypes.sizeof(self.state.sites))


def _fits(value: Affine) -> bool:
    """Does ``value`` fit a RampExpr (terms and int32 coefficients)?"""
    limit = 1 << 31
    return (len(value.terms) <= TERMS and -limit <= value.x < limit
            and all(-limit <= c < limit for _, c in value.terms))


def _put(target: RampExpr, value: Affine) -> None:
    target.k = value.k
    target.x = value.x
    for i in range(TERMS):
        reg, coef = value.terms[i] if i < len(value.terms) else (-1, 0)
        target.reg[i] = reg
        target.coef[i] = coef
