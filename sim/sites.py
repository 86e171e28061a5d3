"""Sites: the instructions of the image at which Python looks as they run.

Unicorn runs some instructions without telling anyone what the chip would do
there: an unmask or SEV (``sim.unmask``), a division, a load or store or an FP
instruction whose trap firmware enabled (``sim.traps``). Their owners scan the
image and give this table each site's address and callback. The callback runs
where a code hook on the site would run, after the instruction counter's (the
instruction is counted), and returns True when it stopped the engine (a trap
found before the instruction ran: the callbacks after it at that site do not run).

With the native counter on exact timing the table is a bitmap, one bit per
half-word of each memory holding a site, in every view of it (flash and its
alias at 0 share one), that ``hwut_count`` in sim/native/counter.c looks at
after counting: Python is called at a marked site only. It runs wherever the
count hook runs, which is where code runs counted: a site in precharged flash
runs counted, at the alias or in a counted region, because its owner marks it
(``Precharge.mark``). One code hook per site instead cost every counted
instruction a walk over all of them (the engine calls a lone code hook
directly, and walks a list of several), more than counting itself. (Those hooks
went only in the views ``Precharge.views`` names: without precharging, a site of
an image linked at 0x08000000 had none at the alias, where such an image never
runs; the bitmap is looked at in both.) When the counter stops the engine at a
site, the site is looked at only inside an IT block, where the engine cannot
stop and ran its code hooks all the same (``in_it_block`` in counter.c).

Without it (the Python counter, block timing, or ``native=False`` here as the
reference), each site gets a code hook in every view where its code runs
counted (``Precharge.views``), added after the counter's.
"""
from __future__ import annotations

import ctypes
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from unicorn import UC_HOOK_CODE, Uc

from .core.cpustate import SITE_FN, SITE_RANGES
from .counter import InstructionCounter
from .precharge import Precharge

#: A site's callback: (engine, the address it runs at, its size, the site's data);
#: True when it stopped the engine.
SiteCallback = Callable[[Uc, int, int, Any], "bool | None"]


@dataclass
class _Site:
    owner: str
    address: int
    callback: SiteCallback
    data: Any
    #: The code hooks placed for it (only without the native bitmap).
    handles: list[int] = field(default_factory=list)


class SiteTable:
    """Every site of the loaded code, by owner, and how the engine finds them."""

    def __init__(self, uc: Uc, counter: InstructionCounter, precharge: Precharge,
                 memory_at: Callable[[int], Any], *, native: bool | None = None) -> None:
        self._uc = uc
        self._precharge = precharge
        self._memory_at = memory_at
        able = counter.native and counter.timing == "exact"
        if native and not able:
            raise ValueError("native sites need the native counter and exact timing")
        #: Sites in the native count hook's bitmap (else code hooks).
        self.native = able if native is None else native
        self._counter = counter
        self._cpu = counter.state
        self._state = counter.state.sites
        #: Every site in the order added: at one address, the order of their callbacks.
        self._sites: list[_Site] = []
        #: Sites by owner (kept, not counted: precharging asks at every stop).
        self._owned: dict[str, int] = {}
        #: Code hooks placed for sites (none with the native bitmap): each costs every
        #: counted instruction a look.
        self.code_hooks = 0
        #: Called when code hooks were placed (precharging looks at them: ``adapt``).
        self.on_code_hooks: Callable[[], None] = lambda: None
        #: The sites at each address they run at (every view), for the native call.
        self._at: dict[int, tuple[_Site, ...]] = {}
        #: memory name -> the memory and its bitmap; how many sites each half-word holds.
        self._bits: dict[str, tuple[Any, ctypes.Array]] = {}
        self._counts: dict[int, int] = {}
        if self.native:
            self._call = SITE_FN(self._fire)   # kept: C holds only its address
            self._state.call = ctypes.cast(self._call, ctypes.c_void_p).value

    # -- what owners call ---------------------------------------------------------------
    def add(self, owner: str, address: int, callback: SiteCallback, data: Any = None) -> None:
        """A site of ``owner`` at ``address`` (either view of aliased flash)."""
        site = _Site(owner, address, callback, data)
        self._sites.append(site)
        self._owned[owner] = self._owned.get(owner, 0) + 1
        if self.native:
            self._mark(site)
        else:
            self._hook(site)

    def remove(self, owner: str, where: Callable[[int], bool] = lambda _a: True) -> list[int]:
        """Take ``owner``'s sites at the addresses ``where`` accepts off; their addresses."""
        gone = [s for s in self._sites if s.owner == owner and where(s.address)]
        if not gone:
            return []
        ids = {id(s) for s in gone}
        self._sites = [s for s in self._sites if id(s) not in ids]
        self._owned[owner] -= len(gone)
        for site in gone:
            self._unhook(site)
            if self.native:
                self._unmark(site)
        return [s.address for s in gone]

    def rehook(self) -> None:
        """The instruction counter added a code hook: the sites' code hooks go on again,
        after it (the engine calls code hooks in the order they were added, and a site
        is looked at once its instruction is counted), in every view where their code
        runs counted now (a counted region or a suspension of precharging changes it).
        The native bitmap needs nothing: it is looked at wherever the count hook runs."""
        if self.native:
            return
        for site in self._sites:
            self._unhook(site)
        for site in self._sites:
            self._hook(site)

    def owned(self, owner: str) -> int:
        """How many sites ``owner`` has."""
        return self._owned.get(owner, 0)

    @property
    def fired(self) -> int:
        """Calls from the native count hook into Python (a profile figure)."""
        return self._state.fired

    # -- code hooks ------------------------------------------------------------------
    def _hook(self, site: _Site) -> None:
        site.handles = [self._uc.hook_add(UC_HOOK_CODE, site.callback, user_data=site.data,
                                          begin=at, end=at)
                        for at in self._precharge.views(site.address)]
        self.code_hooks += len(site.handles)
        self.on_code_hooks()

    def _unhook(self, site: _Site) -> None:
        for handle in site.handles:
            self._uc.hook_del(handle)
        self.code_hooks -= len(site.handles)
        site.handles = []

    # -- the native bitmap --------------------------------------------------------------
    def _views(self, address: int) -> tuple[Any, int, list[int]]:
        """The memory holding ``address``, its offset there, and every address it has."""
        mem = self._memory_at(address)
        if mem is None:
            return None, 0, [address]
        offset = mem.offset(address)
        return mem, offset, [start + offset for start in (mem.base, *mem.aliases)]

    def _mark(self, site: _Site) -> None:
        mem, offset, views = self._views(site.address)
        for at in views:
            self._at[at] = self._at.get(at, ()) + (site,)
        if mem is None:
            return  # not in memory: it never runs
        if mem.name not in self._bits:
            self._bits[mem.name] = (mem, (ctypes.c_ubyte * (mem.size // 16 + 1))())
            self._publish()
        bits = self._bits[mem.name][1]
        key = mem.base + offset
        self._counts[key] = self._counts.get(key, 0) + 1
        bits[offset >> 4] |= 1 << ((offset >> 1) & 7)

    def _unmark(self, site: _Site) -> None:
        mem, offset, views = self._views(site.address)
        for at in views:
            left = tuple(s for s in self._at.get(at, ()) if s is not site)
            if left:
                self._at[at] = left
            else:
                self._at.pop(at, None)
        if mem is None:
            return
        key = mem.base + offset
        self._counts[key] -= 1
        if not self._counts[key]:
            del self._counts[key]
            self._bits[mem.name][1][offset >> 4] &= ~(1 << ((offset >> 1) & 7)) & 0xFF

    def _publish(self) -> None:
        """Give C the ranges of every memory view that has a bitmap (between runs)."""
        st = self._state
        ranges = []
        for mem, bits in self._bits.values():
            ranges += [(start, mem.size, bits) for start in (mem.base, *mem.aliases)]
        if len(ranges) > SITE_RANGES:
            raise RuntimeError(f"sites in more than {SITE_RANGES} memory views")
        self._cpu.sites_end = 0   # no site looked at while the ranges change
        for i, (start, size, bits) in enumerate(ranges):
            st.base[i], st.size[i] = start, size
            st.bits[i] = ctypes.addressof(bits)
        st.n = len(ranges)
        self._cpu.sites_end = min(max(start + size for start, size, _ in ranges), 0xFFFF_FFFF)
        self._counter.count_sites()

    def _fire(self, _handle: int, address: int, size: int, _user: int) -> None:
        """Called by ``hwut_count`` at a marked site: its callbacks in order, until one
        stops the engine. An exception stops it too and is raised by ``emu_start``, as
        the bindings do for a hook's."""
        uc = self._uc
        try:
            for site in self._at.get(address, ()):
                if site.callback(uc, address, size, site.data):
                    break
        except BaseException as exc:  # noqa: BLE001 - handed to emu_start, as for any hook
            if uc._hook_exception is None:
                uc._hook_exception = exc
            uc.emu_stop()
