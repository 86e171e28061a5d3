"""Hooks on the instructions Unicorn runs without telling anyone: CPSIE, MSR to
PRIMASK/BASEPRI/FAULTMASK, and SEV.

An interrupt waiting behind the mask must be taken right after the instruction
that lifts it, so the CPU stops there when one waits; SEV sets the event
register that WFE consumes (Unicorn runs it as a no-op). The image is scanned
for these encodings (``sim.thumb``); each is a site (``sim.sites``) whose callback
runs once the instruction is counted, and precharging keeps the unmask
instructions counted so that the stop comes right after them.
"""
from __future__ import annotations

from unicorn import Uc

from . import thumb
from .core.exceptions import ExceptionModel
from .counter import InstructionCounter
from .precharge import Precharge
from .sites import SiteTable


class UnmaskWatch:
    """The unmask and SEV sites of the code loaded so far."""

    def __init__(self, uc: Uc, counter: InstructionCounter, exc: ExceptionModel,
                 precharge: Precharge, sites: SiteTable) -> None:
        self._uc = uc
        self._counter = counter
        self._exc = exc
        self._precharge = precharge
        self._sites = sites
        #: Set by the run loop: an exception waits only behind PRIMASK/BASEPRI/FAULTMASK.
        self.waits_behind_mask = False

    def watch(self, segments: list[tuple[int, bytes]]) -> None:
        """Every unmask and SEV site in ``segments`` (code loaded or programmed) becomes
        a site. Sites of code these segments replace go first: left there they would
        pile up with each programming (a Python call per hit on another firmware's hot
        loop, slower with every job) and fire on whatever code is there now."""
        self._unhook(segments)
        marked = False
        for address, hw1, hw2 in thumb.scan(segments):
            if thumb.is_unmask(hw1, hw2):
                self._sites.add("unmask", address, self._after_unmask)
                self._precharge.mark(address)
                marked = True
            elif hw1 == thumb.SEV:
                self._sites.add("sev", address, self._on_sev)
        if marked:  # blocks decoded before the marks must be decoded again
            self._counter.forget_blocks()

    @property
    def hooked(self) -> bool:
        """Any site watched."""
        return bool(self._sites.owned("unmask") or self._sites.owned("sev"))

    def _unhook(self, segments: list[tuple[int, bytes]]) -> None:
        ranges = [(start, start + len(data)) for start, data in segments]

        def replaced(address: int) -> bool:
            return any(lo <= address < hi for lo, hi in ranges)
        self._sites.remove("unmask", replaced)
        self._sites.remove("sev", replaced)

    def _after_unmask(self, uc: Uc, address: int, size: int, _user: object) -> None:
        if self.waits_behind_mask:
            self._counter.stop_soon()  # stop right after this instruction

    def _on_sev(self, uc: Uc, address: int, size: int, _user: object) -> None:
        self._exc.send_event()
