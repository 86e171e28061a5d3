"""Hooks on the instructions Unicorn runs without telling anyone: CPSIE, MSR to
PRIMASK/BASEPRI/FAULTMASK, and SEV.

An interrupt waiting behind the mask must be taken right after the instruction
that lifts it, so the CPU stops there when one waits; SEV sets the event
register that WFE consumes (Unicorn runs it as a no-op). The image is scanned
for these encodings (``sim.thumb``); code hooks go on every site, in each view
of precharged flash where it runs counted (``Precharge.views``), and precharging
keeps those instructions counted so that the stop comes right after them.
"""
from __future__ import annotations

from typing import Any

from unicorn import UC_HOOK_CODE, Uc

from . import thumb
from .core.exceptions import ExceptionModel
from .counter import InstructionCounter
from .precharge import Precharge


class UnmaskWatch:
    """The unmask and SEV sites of the code loaded so far, hooked."""

    def __init__(self, uc: Uc, counter: InstructionCounter, exc: ExceptionModel,
                 precharge: Precharge) -> None:
        self._uc = uc
        self._counter = counter
        self._exc = exc
        self._precharge = precharge
        #: Set by the run loop: an exception waits only behind PRIMASK/BASEPRI/FAULTMASK.
        self.waits_behind_mask = False
        #: (site address, callback) of every site hooked, in order.
        self._sites: list[tuple[int, Any]] = []
        #: (site address, hook handle) of every hook placed, so that code written over
        #: later (a debugger programming flash again) loses its hooks.
        self._hooks: list[tuple[int, Any]] = []

    def watch(self, segments: list[tuple[int, bytes]]) -> None:
        """Hook every unmask and SEV site in ``segments`` (code loaded or programmed).
        Hooks on sites of code these segments replace go first: left there they would
        pile up with each programming (a Python call per hit on another firmware's hot
        loop, slower with every job) and fire on whatever code is there now."""
        self._unhook(segments)
        marked = False
        for address, hw1, hw2 in thumb.scan(segments):
            if thumb.is_unmask(hw1, hw2):
                self._place(address, self._after_unmask)
                self._precharge.mark(address)
                marked = True
            elif hw1 == thumb.SEV:
                self._place(address, self._on_sev)
        if marked:  # blocks decoded before the marks must be decoded again
            self._counter.forget_blocks()

    def _place(self, address: int, callback: Any) -> None:
        """Hook the site in every view where it runs counted now."""
        self._sites.append((address, callback))
        for at in self._precharge.views(address):
            handle = self._uc.hook_add(UC_HOOK_CODE, callback, begin=at, end=at)
            self._hooks.append((address, handle))

    @property
    def hooked(self) -> bool:
        """Any site hooked."""
        return bool(self._sites)

    def rehook(self) -> None:
        """Place every hook again, after the instruction counter's: the engine calls
        code hooks in the order they were added, and the counter must count an
        instruction before ``_after_unmask`` ends the slice right after it (the other
        way round the slice would end before it, again and again). The views where
        each site runs counted are looked at again: a counted region or a suspension
        of precharging (which call this) changes them."""
        sites = self._sites
        for _, handle in self._hooks:
            self._uc.hook_del(handle)
        self._sites, self._hooks = [], []
        for address, callback in sites:
            self._place(address, callback)

    def _unhook(self, segments: list[tuple[int, bytes]]) -> None:
        if not self._sites:
            return
        ranges = [(start, start + len(data)) for start, data in segments]

        def replaced(address: int) -> bool:
            return any(lo <= address < hi for lo, hi in ranges)
        kept = []
        for address, handle in self._hooks:
            if replaced(address):
                self._uc.hook_del(handle)
            else:
                kept.append((address, handle))
        self._hooks = kept
        self._sites = [(a, callback) for a, callback in self._sites if not replaced(a)]

    def _after_unmask(self, uc: Uc, address: int, size: int, _user: object) -> None:
        if self.waits_behind_mask:
            self._counter.stop_soon()  # stop right after this instruction

    def _on_sev(self, uc: Uc, address: int, size: int, _user: object) -> None:
        self._exc.send_event()
