"""The core state that the native hook (sim/native/counter.c) and the Python
exception model share: one ctypes struct, so either side can act on it and both
always agree. The structs mirror those of counter.c, which describes their
layout (``hwut_counter_layouts``); tests/sim/test_native.py holds the offset and
size of every field here to it."""
from __future__ import annotations

import ctypes

from unicorn import arm_const as A

WORDS = 4
#: Interrupt lines models can have the native hook raise at a cycle (``ExceptionModel.pend_slot``).
PENDS = 4
NONE_CYCLE = (1 << 64) - 1
NO_INTR = 0xFFFF_FFFF

#: Register ids in the order counter.c indexes them (R_R0 ... R_FPSCR, S0-S15, R4-R11, CPSR).
REGISTER_ORDER = (
    A.UC_ARM_REG_R0, A.UC_ARM_REG_R1, A.UC_ARM_REG_R2, A.UC_ARM_REG_R3, A.UC_ARM_REG_R12,
    A.UC_ARM_REG_LR, A.UC_ARM_REG_PC, A.UC_ARM_REG_SP, A.UC_ARM_REG_MSP, A.UC_ARM_REG_PSP,
    A.UC_ARM_REG_CONTROL, A.UC_ARM_REG_XPSR, A.UC_ARM_REG_XPSR_NZCVQG, A.UC_ARM_REG_IPSR,
    A.UC_ARM_REG_BASEPRI, A.UC_ARM_REG_PRIMASK, A.UC_ARM_REG_FAULTMASK, A.UC_ARM_REG_FPSCR,
    *(A.UC_ARM_REG_S0 + i for i in range(16)),
    *(A.UC_ARM_REG_R4 + i for i in range(8)), A.UC_ARM_REG_CPSR,
)


BLOCK_SLOTS = 4096
MAX_DENY = 16


class BlockSlot(ctypes.Structure):
    _fields_ = [("address", ctypes.c_uint64), ("size", ctypes.c_uint32),
                ("insns", ctypes.c_uint32), ("flags", ctypes.c_uint32),
                ("spare", ctypes.c_uint32)]


class EngineApi(ctypes.Structure):
    """What the native hooks call of Unicorn, and Unicorn's constants they need: set
    from the library and its bindings (``sim.counter``), none hard-coded in C."""
    _fields_ = [
        ("stop", ctypes.c_void_p), ("reg_read", ctypes.c_void_p), ("reg_write", ctypes.c_void_p),
        ("mem_read", ctypes.c_void_p), ("mem_write", ctypes.c_void_p), ("ctl", ctypes.c_void_p),
        ("reg_read_batch", ctypes.c_void_p), ("reg_write_batch", ctypes.c_void_p),
        ("regs", ctypes.c_int32 * len(REGISTER_ORDER)),
        ("mem_fetch", ctypes.c_int32), ("prot_all", ctypes.c_int32),
        ("ctl_tlb_flush", ctypes.c_int32), ("ctl_tb_remove", ctypes.c_int32),
        ("intr_exc_exit", ctypes.c_uint32), ("spare", ctypes.c_uint32),
    ]


class ExceptionState(ctypes.Structure):
    """The exception model's state (``core.exceptions`` is the reference)."""
    _fields_ = [
        # the earlier of systick_next and pend_next, which the native hook checks at every
        # instruction (``ExceptionModel._refresh_due`` keeps it)
        ("due", ctypes.c_uint64),
        ("systick_next", ctypes.c_uint64), ("systick_period", ctypes.c_uint64),
        ("pending", ctypes.c_uint32 * WORDS), ("active", ctypes.c_uint32 * WORDS),
        ("enabled", ctypes.c_uint32 * WORDS), ("levels", ctypes.c_uint32 * WORDS),
        ("prio", ctypes.c_int32 * (32 * WORDS)),
        ("n_exc", ctypes.c_uint32), ("prigroup", ctypes.c_uint32), ("vtor", ctypes.c_uint32),
        ("shcsr_enables", ctypes.c_uint32), ("priority_mask", ctypes.c_uint32),
        ("event_register", ctypes.c_uint32), ("sevonpend", ctypes.c_uint32),
        ("spare", ctypes.c_uint32),
        ("entries", ctypes.c_uint64), ("exits", ctypes.c_uint64),
        # lines raised at a known cycle (``ExceptionModel.raise_line_at``)
        ("pend_next", ctypes.c_uint64), ("pend_at", ctypes.c_uint64 * PENDS),
        ("pend_exc", ctypes.c_uint16 * PENDS), ("pends_fired", ctypes.c_uint64),
    ]


class PrechargeState(ctypes.Structure):
    """Precharging's state (``sim.precharge``, ``hwut_block_exact`` in counter.c)."""
    _fields_ = [
        ("quick_start", ctypes.c_uint64), ("quick_pc", ctypes.c_uint32),
        ("quick_size", ctypes.c_uint32), ("quick", ctypes.c_uint32),
        ("flash_base", ctypes.c_uint32),
        ("flash_size", ctypes.c_uint32), ("mmio_in_tlb", ctypes.c_uint32),
        ("call_return", ctypes.c_uint32), ("tlb_streak", ctypes.c_uint32),
        ("it_stale", ctypes.c_uint32), ("it_lo", ctypes.c_uint32), ("it_hi", ctypes.c_uint32),
        ("n_deny", ctypes.c_uint32), ("deny_lo", ctypes.c_uint64 * MAX_DENY),
        ("deny_hi", ctypes.c_uint64 * MAX_DENY), ("marks", ctypes.c_void_p),
        ("precharged", ctypes.c_uint64), ("denials", ctypes.c_uint64),
        # profile counters: view switches (each ends the engine's chained run),
        # TLB flushes, memory reads for IT-skipped instructions
        ("to_canonical", ctypes.c_uint64), ("to_alias", ctypes.c_uint64),
        ("tlb_flushes", ctypes.c_uint64), ("skip_reads", ctypes.c_uint64),
        ("precharged_insns", ctypes.c_uint64),
        ("suspended", ctypes.c_uint32), ("spare", ctypes.c_uint32),
        ("switch_count", ctypes.c_uint64), ("switch_slot", ctypes.c_uint32),
        ("prev_slot", ctypes.c_uint32), ("alias_lr", ctypes.c_uint32), ("spare2", ctypes.c_uint32),
    ]


IDLE_REGS = 22
SKIP_SLOTS = 256


class IdleState(ctypes.Structure):
    """The idle-loop skip (``idle_visit`` in sim/native/counter.c)."""
    _fields_ = [
        ("head_count", ctypes.c_uint64), ("horizon", ctypes.c_uint64),
        ("turns", ctypes.c_uint64), ("skips", ctypes.c_uint64),
        ("enabled", ctypes.c_uint32), ("head", ctypes.c_uint32), ("period", ctypes.c_uint32),
        ("flags", ctypes.c_uint32), ("wait", ctypes.c_uint32), ("backoff", ctypes.c_uint32),
        ("snap_valid", ctypes.c_uint32), ("churn", ctypes.c_uint32),
        ("flash_base", ctypes.c_uint32), ("flash_size", ctypes.c_uint32),
        ("snap", ctypes.c_uint32 * IDLE_REGS),
        ("ramp", ctypes.c_void_p),
    ]


class SkipSlot(ctypes.Structure):
    """IT-skipped instruction counts of a flash site (``skipped`` in counter.c)."""
    _fields_ = [("from", ctypes.c_uint32), ("bytes", ctypes.c_uint16), ("insns", ctypes.c_uint16)]


REGIONS = 4
SITES = 16


class RegionState(ctypes.Structure):
    """Counted regions of precharged flash (``hwut_regions`` in counter.c, ``sim.precharge``)."""
    _fields_ = [
        ("lo", ctypes.c_uint32 * REGIONS), ("hi", ctypes.c_uint32 * REGIONS),
        ("n", ctypes.c_uint32), ("want_lo", ctypes.c_uint32), ("want_hi", ctypes.c_uint32),
        ("site_pos", ctypes.c_uint32),
        ("site_lo", ctypes.c_uint32 * SITES), ("site_hi", ctypes.c_uint32 * SITES),
        ("window_switches", ctypes.c_uint32), ("spare", ctypes.c_uint32),
        ("window_insns", ctypes.c_uint64), ("asked", ctypes.c_uint64),
    ]


class TlbEntry(ctypes.Structure):
    """Unicorn's ``uc_tlb_entry``, as the TLB-fill hook fills it."""
    _fields_ = [("paddr", ctypes.c_uint64), ("perms", ctypes.c_int)]


DIRECT = 8


class DirectState(ctypes.Structure):
    """Memories backed by host buffers, read directly by the exception code in C
    (``hwut_direct`` in counter.c; filled by ``InstructionCounter.read_directly``)."""
    _fields_ = [
        ("n", ctypes.c_uint32), ("spare", ctypes.c_uint32),
        ("base", ctypes.c_uint32 * DIRECT), ("size", ctypes.c_uint32 * DIRECT),
        ("host", ctypes.c_void_p * DIRECT),
    ]


SITE_RANGES = 8
#: What the native count hook calls at a site: (engine handle, address, size, user).
SITE_FN = ctypes.CFUNCTYPE(None, ctypes.c_void_p, ctypes.c_uint64, ctypes.c_uint32,
                           ctypes.c_void_p)


class SiteState(ctypes.Structure):
    """The image's sites as the native count hook sees them (``hwut_sites`` in
    counter.c; filled by ``sim.sites``): one bit per half-word of each memory view."""
    _fields_ = [
        ("n", ctypes.c_uint32), ("block_start", ctypes.c_uint32),
        ("base", ctypes.c_uint32 * SITE_RANGES), ("size", ctypes.c_uint32 * SITE_RANGES),
        ("bits", ctypes.c_void_p * SITE_RANGES), ("call", ctypes.c_void_p),
        ("user", ctypes.c_void_p), ("fired", ctypes.c_uint64),
    ]


class CpuState(ctypes.Structure):
    """The instruction count and its limit, the modes (``fast``: exceptions taken in C;
    ``precharge``), then the parts above (the hot fields share the first cache line)."""
    _fields_ = [
        ("count", ctypes.c_uint64), ("limit", ctypes.c_uint64),
        ("fast", ctypes.c_uint32), ("last_intno", ctypes.c_uint32),
        ("next_pc", ctypes.c_uint32), ("block_end", ctypes.c_uint32),
        ("precharge", ctypes.c_uint32), ("sites_end", ctypes.c_uint32),
        ("exc", ExceptionState), ("pre", PrechargeState), ("api", EngineApi),
        ("idle", IdleState), ("blocks", BlockSlot * BLOCK_SLOTS), ("skips", SkipSlot * SKIP_SLOTS),
        ("regions", RegionState), ("direct", DirectState), ("sites", SiteState),
    ]


#: The structs mirrored from counter.c, by the name its layout table gives them.
MIRRORS: dict[str, type[ctypes.Structure]] = {cls.__name__: cls for cls in (
    BlockSlot, EngineApi, ExceptionState, PrechargeState, IdleState, SkipSlot, RegionState,
    TlbEntry, DirectState, SiteState, CpuState)}


def get_set(words: ctypes.Array) -> int:
    """A bit set held in 32-bit words, as one Python int."""
    return words[0] | words[1] << 32 | words[2] << 64 | words[3] << 96


def put_set(words: ctypes.Array, value: int) -> None:
    for i in range(WORDS):
        words[i] = (value >> (32 * i)) & 0xFFFF_FFFF


def clear_blocks(state: CpuState) -> None:
    """Forget cached block lengths (code changed: flash programmed)."""
    ctypes.memset(ctypes.addressof(state.blocks), 0, ctypes.sizeof(state.blocks))
    ctypes.memset(ctypes.addressof(state.skips), 0, ctypes.sizeof(state.skips))


#: Bytes of a cache line: the count, its limit and SysTick's next wrap share one
#: (``CpuState``), looked at for every instruction.
CACHE_LINE = 64


def new_state() -> CpuState:
    """A zeroed state at a cache-line boundary: placed where malloc put it, the hot
    fields straddled two lines in a quarter of the machines built, and a run on
    such a machine was ~10 % slower (``hwut_count`` reads them for every
    instruction)."""
    raw = (ctypes.c_char * (ctypes.sizeof(CpuState) + CACHE_LINE - 1))()
    # from_buffer keeps ``raw`` alive as long as the state
    state = CpuState.from_buffer(raw, -ctypes.addressof(raw) % CACHE_LINE)
    state.limit = (1 << 63) - 1
    state.exc.systick_next = NONE_CYCLE
    state.exc.pend_next = NONE_CYCLE
    state.exc.due = NONE_CYCLE
    for i in range(PENDS):
        state.exc.pend_at[i] = NONE_CYCLE
    state.last_intno = NO_INTR
    for i, reg in enumerate(REGISTER_ORDER):
        state.api.regs[i] = reg
    return state
