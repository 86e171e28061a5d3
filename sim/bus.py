"""The system bus: memories mapped into Unicorn, peripherals served through MMIO
windows, bit-band aliases, and a catch-all for peripheral space nobody modelled.

Unicorn maps in 1 KiB pages; STM32 peripherals sit on 1 KiB boundaries, so one
page belongs to one peripheral except in the core's system control space,
where several small blocks share a page and are found by address.
"""
from __future__ import annotations

import ctypes
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from unicorn import UC_PROT_ALL, UC_PROT_EXEC, UC_PROT_READ, Uc

from .mmio_cache import Step
from .regs import Peripheral

PAGE = 0x400
#: Addresses whose peripheral and offset are remembered (``Bus.route``): far more than
#: any firmware's working set; firmware sweeping peripheral space starts the table afresh.
ROUTES = 4096


@dataclass
class Memory:
    name: str
    base: int
    size: int
    buffer: ctypes.Array  # shared by every alias of this memory
    writable: bool
    aliases: tuple[int, ...] = ()

    def offset(self, address: int) -> int | None:
        for start in (self.base, *self.aliases):
            if start <= address < start + self.size:
                return address - start
        return None

    def read(self, address: int, size: int) -> bytes:
        off = self.offset(address)
        assert off is not None, f"0x{address:x} is outside {self.name}"
        return bytes(self.buffer[off:off + size])

    def write(self, address: int, data: bytes) -> None:
        off = self.offset(address)
        assert off is not None, f"0x{address:x} is outside {self.name}"
        # typeshed allows only a list for a slice of a ctypes array; ctypes takes bytes too
        self.buffer[off:off + len(data)] = data  # type: ignore[call-overload]

    def contains(self, address: int) -> bool:
        return self.offset(address) is not None


class UnmodelledSpace(Peripheral):
    """Peripheral address space without a model: keeps writes, notes each address once."""

    size = PAGE


class Bus:
    def __init__(self, uc: Uc, note: Callable[[str], None]) -> None:
        self.uc = uc
        self.note = note
        self.memories: list[Memory] = []
        self._pages: dict[int, Peripheral | list[Peripheral]] = {}
        #: address -> (peripheral, offset): found once, not per access (``route``)
        self._routes: dict[int, tuple[Peripheral, int]] = {}
        self.peripherals: dict[str, Peripheral] = {}
        self._windows: list[tuple[int, int]] = []
        #: Told of every peripheral read (address, value, peripheral, offset); returns
        #: the cycle until which the value may be served from the read cache (or a
        #: ``mmio_cache.Ramp`` for a counting register), or None.
        self.read_observer: Callable[[int, int, Peripheral, int], Any] | None = None
        self.write_observer: Callable[[], None] | None = None
        #: Told of a read served in Python outside the read cache (bit-band): the
        #: idle skip must not take the turn that made it for a pure loop.
        self.python_read: Callable[[], None] | None = None
        self._cache: Any = None
        self._horizon: Any = None
        #: An exception a model raised under the native read cache's callbacks: ctypes
        #: would print and drop it (the run going on with a made-up value), so it is kept
        #: here, the engine stopped, and :meth:`raise_failure` raises it once it returns,
        #: as an exception in an engine hook is raised by the engine's own binding.
        self.failure: Exception | None = None
        #: Reads and writes a peripheral model raised on (a model bug, noted and
        #: answered with 0 / ignored so that the run goes on); tests want 0.
        self.model_errors = 0

    # -- memories ------------------------------------------------------------
    def add_memory(self, name: str, base: int, size: int, *, writable: bool = True,
                   fill: int = 0, aliases: tuple[int, ...] = ()) -> Memory:
        buffer = (ctypes.c_ubyte * size)()
        if fill:
            ctypes.memset(buffer, fill, size)
        mem = Memory(name, base, size, buffer, writable, aliases)
        perms = UC_PROT_ALL if writable else UC_PROT_READ | UC_PROT_EXEC
        for at in (base, *aliases):
            self.uc.mem_map_ptr(at, size, perms, ctypes.addressof(buffer))
        self.memories.append(mem)
        return mem

    def memory_at(self, address: int) -> Memory | None:
        for mem in self.memories:
            if mem.contains(address):
                return mem
        return None

    # -- peripherals ------------------------------------------------------------
    def add_peripheral(self, p: Peripheral) -> None:
        self.peripherals[p.name] = p
        self._routes.clear()
        first, last = p.base // PAGE, (p.base + p.size - 1) // PAGE
        for page in range(first, last + 1):
            here = self._pages.get(page)
            if here is None:
                self._pages[page] = p
            elif isinstance(here, list):
                here.append(p)
            else:
                self._pages[page] = [here, p]

    def fill_unmodelled(self, base: int, size: int) -> None:
        """Give every page in [base, base+size) without a model a catch-all."""
        for page in range(base // PAGE, (base + size) // PAGE):
            if page not in self._pages:
                self.add_peripheral(UnmodelledSpace(f"0x{page * PAGE:08x}", page * PAGE,
                                                    note=self.note))

    def find(self, address: int) -> Peripheral | None:
        here = self._pages.get(address // PAGE)
        if isinstance(here, list):
            for p in here:
                if p.base <= address < p.base + p.size:
                    return p
            return None
        return here

    def route(self, address: int) -> tuple[Peripheral, int] | None:
        """The peripheral at ``address`` and the offset in it, looked up once per address
        (the MMIO callbacks run tens of thousands of times a second on a few addresses)."""
        route = self._routes.get(address)
        if route is None:
            p = self.find(address)
            if p is None:
                return None
            if len(self._routes) >= ROUTES:
                self._routes.clear()
            route = self._routes[address] = (p, address - p.base)
        return route

    def read(self, address: int, size: int) -> int:
        """A data read as the CPU would see it (peripherals or memory)."""
        p = self.find(address)
        if p is not None:
            return p.read(address - p.base, size)
        mem = self.memory_at(address)
        if mem is not None:
            return int.from_bytes(mem.read(address, size), "little")
        if address // PAGE in self._pages:  # a gap in a shared page answers like the CPU sees it
            self.note(f"read of 0x{address:08x}: no model in a shared page; 0")
            return 0
        raise LookupError(address)

    def write(self, address: int, size: int, value: int) -> None:
        p = self.find(address)
        if p is not None:
            p.write(address - p.base, size, value)
            return
        if address // PAGE in self._pages:
            self.note(f"write of 0x{address:08x}: no model in a shared page; ignored")
            return
        mem = self.memory_at(address)
        if mem is None or not mem.writable:
            raise LookupError(address)
        mem.write(address, (value & ((1 << (8 * size)) - 1)).to_bytes(size, "little"))

    def map_peripherals(self, cache: Any = None) -> None:
        """Map MMIO windows over runs of consecutive peripheral pages, through the
        native read cache when one is given (``sim.mmio_cache``)."""
        self._cache = cache
        pages = sorted(self._pages)
        start: int | None = None
        prev = 0  # the last page of the run at ``start`` (once there is one)
        runs: list[tuple[int, int]] = []
        for page in pages:
            if start is None:
                start = prev = page
            elif page == prev + 1:
                prev = page
            else:
                runs.append((start, prev))
                start = prev = page
        if start is not None:
            runs.append((start, prev))
        for first, last in runs:
            base, size = first * PAGE, (last - first + 1) * PAGE
            if cache is not None:
                cache.map(base, size)
            else:
                self.uc.mmio_map(base, size, self._mmio_read, base, self._mmio_write, base)
            self._windows.append((base, size))

    def invalidate(self) -> None:
        """Model state changed outside a bus write (an event, the host): forget cached reads."""
        if self._cache is not None:
            self._cache.clear()

    def cached_read(self, address: int, size: int) -> int:
        """The native cache missed: ask the model, and let the cache keep the answer."""
        try:
            return self._cached_read(address, size)
        except Exception as exc:  # noqa: BLE001 - kept and raised once the engine returns
            self._fail(exc)
            return 0

    def cached_write(self, address: int, size: int, value: int) -> None:
        try:
            self._mmio_write(self.uc, address, size, value, 0)
        except Exception as exc:  # noqa: BLE001 - kept and raised once the engine returns
            self._fail(exc)

    def _fail(self, exc: Exception) -> None:
        if self.failure is None:
            self.failure = exc
        self.uc.emu_stop()

    def raise_failure(self) -> None:
        """Raise what a model raised under a native callback since the engine started."""
        failure, self.failure = self.failure, None
        if failure is not None:
            raise failure

    def _cached_read(self, address: int, size: int) -> int:
        value = self._mmio_read(self.uc, address, size, 0)
        horizon = self._horizon
        if horizon is not None:
            self._horizon = None
            if isinstance(horizon, int):
                self._cache.fill(address, size, value, horizon)
            elif isinstance(horizon, Step):
                self._cache.fill_step(address, size, value, horizon)
            else:   # a Ramp
                self._cache.fill(address, size, horizon.value, horizon.until, horizon.anchor,
                                 horizon.period)
        return value

    def _mmio_read(self, uc: Uc, offset: int, size: int, base: int) -> int:
        address = base + offset
        route = self._routes.get(address) or self.route(address)
        if route is None:
            self.note(f"read of 0x{address:08x}: no model in a shared page; 0")
            return 0
        p, offset = route
        try:
            value = p.read(offset, size)
        except Exception as exc:  # a model bug must not kill the run
            self.model_errors += 1
            self.note(f"{p.name}: read of 0x{address:08x} failed in the model: {exc!r}")
            return 0
        if self.read_observer is not None:
            self._horizon = self.read_observer(address, value, p, offset)
        return value

    def _mmio_write(self, uc: Uc, offset: int, size: int, value: int, base: int) -> None:
        address = base + offset
        route = self._routes.get(address) or self.route(address)
        if route is None:
            self.note(f"write of 0x{address:08x}: no model in a shared page; ignored")
            return
        if self.write_observer is not None:
            self.write_observer()
        p, offset = route
        try:
            p.write(offset, size, value)
        except Exception as exc:
            self.model_errors += 1
            self.note(f"{p.name}: write of 0x{address:08x} failed in the model: {exc!r}")

    # -- bit-band ---------------------------------------------------------------
    def add_bitband(self, alias: int, target: int, size: int) -> None:
        """Each word at alias + 32*n + 4*b reads/writes bit b of byte target + n."""

        def split(offset: int) -> tuple[int, int]:
            return target + (offset >> 5), (offset >> 2) & 7

        def read(uc: Uc, offset: int, _size: int, _ud: object) -> int:
            if self.python_read is not None:
                self.python_read()
            byte_addr, bit = split(offset)
            word_addr = byte_addr & ~3
            try:
                value = self.read(word_addr, 4)
            except LookupError:
                return 0
            return (value >> (8 * (byte_addr & 3) + bit)) & 1

        def write(uc: Uc, offset: int, _size: int, value: int, _ud: object) -> None:
            byte_addr, bit = split(offset)
            word_addr = byte_addr & ~3
            shift = 8 * (byte_addr & 3) + bit
            try:
                word = self.read(word_addr, 4)
                word = (word & ~(1 << shift)) | ((value & 1) << shift)
                self.invalidate()
                self.write(word_addr, 4, word)
            except LookupError:
                self.note(f"bit-band write to 0x{byte_addr:08x}: nothing there")

        self.uc.mmio_map(alias, size * 32, read, None, write, None)
        self._windows.append((alias, size * 32))

    def mmio_ranges(self) -> list[tuple[int, int]]:
        """The MMIO windows as few [start, end) ranges: neighbours merge when no
        memory lies between them (an unmapped gap faults either way)."""
        merged: list[list[int]] = []
        for base, size in sorted(self._windows):
            if merged and not any(merged[-1][1] <= m.base + off < base
                                  for m in self.memories
                                  for off in (0, *(a - m.base for a in m.aliases))):
                merged[-1][1] = max(merged[-1][1], base + size)
            else:
                merged.append([base, base + size])
        return [(lo, hi) for lo, hi in merged]
