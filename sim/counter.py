"""The instruction counter behind virtual time, and the brake that ends a slice.

Unicorn calls a hook before every instruction; the hook counts and stops the
engine once the count reaches ``limit``. Models may lower the limit at any
moment (an interrupt made pending by a register write is taken at the next
instruction). The native hook (``hwut_count`` in sim/native/counter.c) and the
Python hook behave the same; the Python one is only slower. Both keep the count
in the shared ``CpuState``.

``timing="block"`` (opt-in) counts once per translated block instead: several
times faster, still the same run every time, but a slice ends, and an
interrupt is taken, at the next block boundary rather than the next instruction.

``precharge`` keeps exact timing and gains most of that speed: see
``hwut_block_exact`` in counter.c and ``sim.precharge`` for how a flash block whose
instructions nobody can watch is counted once, at its start.
"""
from __future__ import annotations

import ctypes

from unicorn import (
    UC_CTL_IO_WRITE,
    UC_CTL_TB_REMOVE_CACHE,
    UC_CTL_TLB_FLUSH,
    UC_HOOK_BLOCK,
    UC_HOOK_CODE,
    UC_HOOK_INTR,
    UC_HOOK_TLB_FILL,
    UC_MEM_FETCH,
    UC_PROT_ALL,
    UC_TLB_CPU,
    UC_TLB_VIRTUAL,
    Uc,
)
from unicorn.arm_const import UC_ARM_REG_LR
from unicorn.unicorn_py3 import unicorn as _ucpy

from . import thumb
from .core.cpustate import MAX_DENY, CpuState, EngineApi, IdleState, clear_blocks, new_state
from .nativelib import LIB

NEVER = (1 << 63) - 1
TIMINGS = ("exact", "block")


def _fn(name: str) -> int:
    address = ctypes.cast(getattr(_ucpy.uclib, name), ctypes.c_void_p).value
    assert address is not None, name  # a function the library exports is never at NULL
    return address


#: The interrupt number Unicorn's ARM CPU raises for an exception return (QEMU's
#: EXCP_EXCEPTION_EXIT; the bindings do not name it). ``sim.dispatch`` uses it too.
INTR_EXC_EXIT = 8


def _ctl(control: int, io: int, nargs: int) -> int:
    """A ``uc_ctl`` request code, as uc.h's UC_CTL_READ/UC_CTL_WRITE macros build it."""
    return io << 30 | nargs << 26 | control


def _link(api: EngineApi) -> None:
    """What the native hooks call of the Unicorn library, and its constants they need."""
    api.stop = _fn("uc_emu_stop")
    api.reg_read, api.reg_write = _fn("uc_reg_read"), _fn("uc_reg_write")
    api.reg_read_batch, api.reg_write_batch = _fn("uc_reg_read_batch"), _fn("uc_reg_write_batch")
    api.mem_read, api.mem_write = _fn("uc_mem_read"), _fn("uc_mem_write")
    api.ctl = _fn("uc_ctl")
    api.mem_fetch = UC_MEM_FETCH
    api.prot_all = UC_PROT_ALL
    api.ctl_tlb_flush = _ctl(UC_CTL_TLB_FLUSH, UC_CTL_IO_WRITE, 0)
    api.ctl_tb_remove = _ctl(UC_CTL_TB_REMOVE_CACHE, UC_CTL_IO_WRITE, 2)
    api.intr_exc_exit = INTR_EXC_EXIT


class CountHook:
    """One code hook of the native count function over [begin, end] (begin > end:
    every address); its handle changes when the function does (``count_sites``)."""

    def __init__(self, begin: int, end: int, handle: ctypes.c_size_t) -> None:
        self.begin, self.end, self.handle = begin, end, handle


class InstructionCounter:
    """Counts executed instructions of one Unicorn engine."""

    def __init__(self, uc: Uc, *, native: bool | None = None,
                 state: CpuState | None = None, timing: str = "exact") -> None:
        if timing not in TIMINGS:
            raise ValueError(f"timing must be one of {', '.join(TIMINGS)}, not {timing!r}")
        self.timing = timing
        use_native = LIB is not None if native is None else native
        if use_native and LIB is None:
            raise RuntimeError("the native counter is not built (hwut.sim._native missing)")
        self.native = use_native
        self._uc = uc
        self._c = state if state is not None else new_state()
        self._c.limit = NEVER
        #: Cycles in which no instruction ran: asleep in WFI/WFE, and halted after a
        #: semihosting exit while the peripherals drained (see ``instructions``).
        self.slept = 0
        self.halted = 0
        #: The native count function, and every code hook of it placed.
        self._count_fn = "hwut_count"
        self._counting: list[CountHook] = []
        if use_native:
            _link(self._c.api)
            if timing == "exact":
                self._whole = self._count_hook()
                # hwut_block_exact once precharging is enabled (``enable_precharge``)
                self._block_hook = self._add_native(UC_HOOK_BLOCK, "hwut_block_counted")
                self._block_fn = "hwut_block_counted"
                self._handles = [self._block_hook]
            else:
                self._handles = [self._add_native(UC_HOOK_BLOCK, "hwut_block")]
        elif timing == "exact":
            uc.hook_add(UC_HOOK_CODE, self._python_hook)
            uc.hook_add(UC_HOOK_BLOCK, self._python_block_start)
        else:
            self._blocks: dict[tuple[int, int], int] = {}
            uc.hook_add(UC_HOOK_BLOCK, self._python_block_hook)

    def _add_native(self, kind: int, function: str, begin: int = 1,
                    end: int = 0) -> ctypes.c_size_t:
        handle = ctypes.c_size_t()
        fn = ctypes.cast(getattr(LIB, function), ctypes.c_void_p)
        err = _ucpy.uclib.uc_hook_add(self._uc._uch, ctypes.byref(handle), kind, fn,
                                      ctypes.byref(self._c), ctypes.c_uint64(begin),
                                      ctypes.c_uint64(end))
        if err:
            raise RuntimeError(f"uc_hook_add for {function} failed: {err}")
        return handle

    def _count_hook(self, begin: int = 1, end: int = 0) -> CountHook:
        hook = CountHook(begin, end, self._add_native(UC_HOOK_CODE, self._count_fn, begin, end))
        self._counting.append(hook)
        return hook

    def _uncount(self, hook: CountHook) -> None:
        _ucpy.uclib.uc_hook_del(self._uc._uch, hook.handle)
        self._counting.remove(hook)

    def count_sites(self) -> None:
        """The image has sites (``sim.sites``): count with ``hwut_count_sites``, which
        looks at them after each instruction it counts (``hwut_count`` does not: the
        look costs every instruction). Its hooks go where the others were, and code
        translated with those goes. Between runs of the engine."""
        if not (self.native and self.timing == "exact") or self._count_fn == "hwut_count_sites":
            return
        self._count_fn = "hwut_count_sites"
        for hook in self._counting:
            _ucpy.uclib.uc_hook_del(self._uc._uch, hook.handle)
            hook.handle = self._add_native(UC_HOOK_CODE, self._count_fn, hook.begin, hook.end)
        # unicorn/unicorn.py picks its py2 or py3 class (see enable_precharge)
        self._uc.ctl_flush_tb()  # type: ignore[attr-defined]

    @property
    def looks_at_sites(self) -> bool:
        """The native count hook is ``hwut_count_sites`` (``count_sites``)."""
        return self._count_fn == "hwut_count_sites"

    def enable_precharge(self, flash_base: int, flash_size: int,
                         mmio: list[tuple[int, int]], marks: ctypes.Array) -> None:
        """Count flash code at ``flash_base`` per block and its alias at 0 per
        instruction; ``mmio`` ranges are refused to precharged blocks, ``marks``
        (one bit per flash half-word) keeps blocks counted. Before the first run."""
        if not (self.native and self.timing == "exact"):
            raise RuntimeError("precharging needs the native counter and exact timing")
        if len(mmio) > MAX_DENY:
            raise ValueError(f"at most {MAX_DENY} MMIO ranges, not {len(mmio)}")
        c, uc = self._c.pre, self._uc
        if self._c.precharge:
            return
        c.flash_base, c.flash_size = flash_base, flash_size
        c.n_deny = len(mmio)
        for i, (lo, hi) in enumerate(mmio):
            c.deny_lo[i], c.deny_hi[i] = lo, hi
        c.marks = ctypes.addressof(marks)
        self._marks = marks
        self._uncount(self._whole)
        self._flash = (flash_base, flash_size)
        self._count_hooks = self._around_flash()
        # unicorn/unicorn.py picks its py2 or py3 class on `sys.version_info.major == 2`,
        # which mypy does not evaluate: it sees the py2 Uc, which has no ctl_set_tlb_mode
        uc.ctl_set_tlb_mode(UC_TLB_VIRTUAL)  # type: ignore[attr-defined]
        self._handles.append(self._add_native(UC_HOOK_TLB_FILL, "hwut_tlb_fill"))
        # the block hook that precharges (the one before only counts, without its checks)
        self._use_block_hook("hwut_block_exact")
        self._c.precharge = 1

    @property
    def block_hook(self) -> str:
        """The native block hook in use (with the native counter and exact timing)."""
        return self._block_fn

    def _use_block_hook(self, function: str) -> None:
        """The native block hook from here (the only block hook: nothing else's order
        changes). Between runs of the engine."""
        _ucpy.uclib.uc_hook_del(self._uc._uch, self._block_hook)
        self._handles.remove(self._block_hook)
        self._block_hook = self._add_native(UC_HOOK_BLOCK, function)
        self._handles.append(self._block_hook)
        self._block_fn = function

    def _around_flash(self) -> list[CountHook]:
        base, size = self._flash
        return [self._count_hook(0, base - 1), self._count_hook(base + size, 0xFFFF_FFFF)]

    def suspend_precharge(self) -> None:
        """Count every instruction in every view, as without precharging: one code hook
        over every address instead of the two around the canonical flash. The engine
        calls a lone code hook directly, and walks a list of several at every
        instruction: where little code runs precharged, that walk costs more than
        precharging gains. Between runs of the engine; ``resume_precharge`` undoes it."""
        if self._c.pre.suspended:
            return
        for hook in self._count_hooks:
            self._uncount(hook)
        self._count_hooks = [self._count_hook()]
        self._c.pre.suspended = 1
        self._uc.ctl_flush_tb()  # type: ignore[attr-defined]  # the flash translated without it
        # no MMIO access is refused now: the engine's own TLB, as without precharging
        self._uc.ctl_set_tlb_mode(UC_TLB_CPU)  # type: ignore[attr-defined]
        # Suspended, hwut_block_exact only does what hwut_block_counted does, at more
        # cost (precharged images that stepped aside ran ~5 % slower than counted):
        # the plain hook, once what only the precharging hook finishes is done here.
        # A call made from the alias just before leaves the alias's return address in
        # LR, which the precharging hook makes canonical at the callee's first block.
        pre = self._c.pre
        if pre.call_return:
            lr = self._uc.reg_read(UC_ARM_REG_LR)
            if lr == pre.call_return:
                self._uc.reg_write(UC_ARM_REG_LR, lr + pre.flash_base)
            pre.call_return = 0
        if not pre.it_stale:   # else the precharging hook ends the IT block's state
            self._use_block_hook("hwut_block_counted")

    def resume_precharge(self) -> None:
        """Precharge again after ``suspend_precharge``."""
        if not self._c.pre.suspended:
            return
        for hook in self._count_hooks:
            self._uncount(hook)
        self._count_hooks = self._around_flash()
        self._c.pre.suspended = 0
        if self._block_fn != "hwut_block_exact":
            self._use_block_hook("hwut_block_exact")
        self._uc.ctl_flush_tb()  # type: ignore[attr-defined]
        self._uc.ctl_set_tlb_mode(UC_TLB_VIRTUAL)  # type: ignore[attr-defined]
        # MMIO pages the engine's TLB took in meanwhile would not be refused: out they go
        _ucpy.uclib.uc_ctl(self._uc._uch, self._c.api.ctl_tlb_flush)
        self._c.pre.mmio_in_tlb = 0
        self._c.pre.tlb_streak = 0

    def count_region(self, lo: int, hi: int) -> CountHook:
        """Count every instruction in [lo, hi) of precharged flash at its canonical
        address too (``hwut_regions`` in counter.c): the code hook over it, and the
        code translated there without it dropped. ``uncount_region`` undoes it."""
        hook = self._count_hook(lo, hi - 1)
        self._uc.ctl_remove_cache(lo, hi)
        return hook

    def uncount_region(self, hook: CountHook) -> None:
        """Remove a region's hook (the engine drops the code translated with it)."""
        self._uncount(hook)

    def idle_horizon_address(self) -> int:
        """Where the read cache tells the idle skip until when a turn's reads hold."""
        return ctypes.addressof(self._c) + CpuState.idle.offset + IdleState.horizon.offset

    def enable_idle_skip(self, flash_base: int, flash_size: int) -> None:
        """Skip the turns of loops that provably only wait (``idle_visit`` in counter.c);
        ``flash`` is code that changes only through the FLASH interface (``forget_blocks``)."""
        idle = self._c.idle
        idle.flash_base, idle.flash_size = flash_base, flash_size
        idle.enabled = 1

    def read_directly(self, memories: list[tuple[int, int, ctypes.Array]]) -> None:
        """Let the exception code in C read these memories, each (address, size, the
        buffer the engine maps there), from their buffers as ``uc_mem_read`` would
        (``hwut_direct`` in counter.c). The buffers stay mapped, and alive, as long as
        the engine; memories past the table's size are read through the engine."""
        direct = self._c.direct
        memories = memories[:len(direct.base)]
        for i, (address, size, buffer) in enumerate(memories):
            direct.base[i], direct.size[i] = address, size
            direct.host[i] = ctypes.addressof(buffer)
        direct.n = len(memories)

    def idle_turn_unsure(self) -> None:
        """A read served outside the read cache: the idle skip must not take this turn."""
        self._c.idle.horizon = 0

    def add_native_interrupts(self) -> None:
        """Let C handle exception returns (and report other interrupts in ``last_intno``)."""
        self._handles.append(self._add_native(UC_HOOK_INTR, "hwut_intr"))

    def _skipped(self, start: int, end: int) -> int:
        """IT-block instructions in [start, end) that failed their condition: the
        code hook never sees them, but each takes its cycle (as ``skipped`` in C)."""
        if not 0 < end - start <= 16:
            return 0
        return thumb.count(bytes(self._uc.mem_read(start, end - start)))

    def _python_hook(self, uc: Uc, address: int, size: int, _user: object) -> None:
        c = self._c
        if address != c.next_pc:
            c.count += self._skipped(c.next_pc, address)
            c.next_pc = address
        if c.count >= c.limit:
            uc.emu_stop()
            return
        c.count += 1
        c.next_pc = address + size

    def _python_block_start(self, uc: Uc, address: int, size: int, _user: object) -> None:
        c = self._c
        if address == c.block_end and c.next_pc != c.block_end:
            c.count += self._skipped(c.next_pc, c.block_end)
        c.next_pc, c.block_end = address, address + size

    def _python_block_hook(self, uc: Uc, address: int, size: int, _user: object) -> None:
        c = self._c
        if c.count >= c.limit:
            uc.emu_stop()
            return
        n = self._blocks.get((address, size))
        if n is None:
            n = self._blocks[(address, size)] = thumb.count(bytes(uc.mem_read(address, size)))
        c.count += n

    def forget_blocks(self) -> None:
        """Code changed (flash programmed): block lengths must be decoded again."""
        if self.native:
            clear_blocks(self._c)
        elif self.timing == "block":
            self._blocks.clear()

    @property
    def state(self) -> CpuState:
        return self._c

    def count_address(self) -> int:
        """Where the count lives (for native readers of time, such as the read cache)."""
        return ctypes.addressof(self._c) + CpuState.count.offset

    def cycles(self) -> int:
        return self._c.count

    @property
    def count(self) -> int:
        return self._c.count

    @count.setter
    def count(self, value: int) -> None:
        self._c.count = value

    @property
    def limit(self) -> int:
        return self._c.limit

    @limit.setter
    def limit(self, value: int) -> None:
        self._c.limit = value

    @property
    def instructions(self) -> int:
        """Instructions executed: the count less the cycles in which none ran (a
        fast-forwarded polling loop counts its turns as executed)."""
        return self._c.count - self.slept - self.halted

    def sleep_until(self, cycle: int) -> None:
        """The core sleeps (WFI/WFE) until ``cycle``: virtual time passes, no instruction."""
        if cycle > self._c.count:
            self.slept += cycle - self._c.count
            self._c.count = cycle

    def halt_until(self, cycle: int) -> None:
        """The core has halted for good; virtual time passes until ``cycle`` for the
        peripherals only."""
        if cycle > self._c.count:
            self.halted += cycle - self._c.count
            self._c.count = cycle

    def stop_soon(self) -> None:
        """End the slice before the next instruction."""
        c = self._c
        if c.limit > c.count:
            c.limit = c.count

    def stop_at(self, cycle: int) -> None:
        c = self._c
        if cycle < c.limit:
            c.limit = max(cycle, c.count)
