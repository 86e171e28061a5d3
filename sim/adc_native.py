"""The ADCs' software-started single conversions, taken in C (sim/native/adc.c).

Mbed's AnalogIn reads an ADC some 5000 times a second: ``CR |= ADSTART``, a
poll of EOC, a read of DR. The read cache answers the poll (its step slot
gains EOC at the conversion's end), but the write and the DR read change the
model, and each cost several microseconds through Python. Here each ADC that
says its state is one C can keep exactly (``Adc.native_plan``) hands it to
the native handler after every access that reached it (``offer``, called by
the machine once the access is done); C then takes the ADSTART writes, the
ISR writes and the ISR, CR and DR reads as the model would, until an access
it declines, a change of what it was handed (the clocks, the input) or the
run's end makes the model take the state back (``withdraw``). The Python
model stays the reference: ``Machine(native_adc=False)`` leaves every
access to it, and the tests compare the two access by access.
"""
from __future__ import annotations

import ctypes
from collections.abc import Iterable

from .mmio_cache import NativeReadCache
from .nativelib import LIB
from .peripherals.adc import CR, DR, ISR, NATIVE_REFUSED, Adc

ADCS = 4
RANKS = 16
NONE = (1 << 64) - 1


class AdcState(ctypes.Structure):
    """``hwut_adc`` in sim/native/adc.c: one ADC's state as C keeps it."""
    _fields_ = [(name, ctypes.c_uint64) for name in (
        "active", "base", "until", "isr", "cr", "data", "due", "rank", "ranks")] + [
        ("length", ctypes.c_uint64 * RANKS), ("value", ctypes.c_uint64 * RANKS)] + [
        (name, ctypes.c_uint64) for name in (
            "ovrmod", "off_isr", "off_cr", "off_dr", "isr_clear1", "cr_rw", "cr_set",
            "cr_refuse", "aden", "adstart", "adrdy", "eoc", "ovr", "done", "eos", "changes",
            "conversions", "reads")]


class AdcBank(ctypes.Structure):
    """``hwut_adcs``: the ADCs behind one entry of the cache's handler table."""
    _fields_ = [("n", ctypes.c_uint64), ("adc", AdcState * ADCS)]


class NativeAdc:
    """One ADC's link to its state in C (``Adc.native_link``)."""

    def __init__(self, adc: Adc, state: AdcState) -> None:
        self.adc = adc
        self.state = state
        self.handed = False
        self._changes = 0
        # the registers' layout, from the model's declarations
        isr, cr, bits = adc.isr, adc.cr, adc.bits
        state.base = adc.base
        state.off_isr, state.off_cr, state.off_dr = ISR, CR, DR
        state.isr_clear1 = isr.clear1_mask
        state.cr_rw, state.cr_set = cr.rw_mask, cr.set_mask
        state.cr_refuse = sum(cr[name].mask for name in NATIVE_REFUSED)
        state.aden, state.adstart = bits.aden.mask, bits.adstart.mask
        state.adrdy, state.eoc, state.ovr = bits.adrdy.mask, bits.eoc.mask, bits.ovr.mask
        state.done, state.eos = bits.eosmp.mask | bits.eoc.mask, bits.eos.mask
        adc.native_link = self

    def offer(self) -> None:
        """An access reached the model and is done: hand C the state, if it can keep it."""
        if self.handed:
            return
        plan = self.adc.native_plan()
        if plan is None:
            return
        s = self.state
        s.isr, s.cr, s.data = plan.isr, plan.cr, plan.data
        s.due = NONE if plan.due is None else plan.due
        s.rank, s.ranks = plan.rank, len(plan.lengths)
        s.length[:len(plan.lengths)] = plan.lengths
        s.value[:len(plan.values)] = plan.values
        s.ovrmod, s.until = plan.ovrmod, plan.until
        self._changes = s.changes
        self.handed = True
        s.active = 1

    def withdraw(self) -> None:
        """Take the state back into the model (C moved it on if it took an access)."""
        if not self.handed:
            return
        s = self.state
        s.active = 0
        self.handed = False
        if s.changes != self._changes:
            self.adc.native_resume(s.isr, s.cr, s.data, None if s.due == NONE else s.due,
                                   s.rank)

    @property
    def conversions(self) -> int:
        """Conversions C started."""
        return self.state.conversions

    @property
    def reads(self) -> int:
        """Reads C answered: read-cache misses that did not reach Python."""
        return self.state.reads


def attach(cache: NativeReadCache, peripherals: Iterable[object]) -> list[NativeAdc]:
    """Put the ADCs among ``peripherals`` behind one native handler of ``cache``; their
    links, or none when the native library or the cache's handler table has no room."""
    adcs = [p for p in peripherals if isinstance(p, Adc)][:ADCS]
    if LIB is None or not adcs:
        return []
    bank = AdcBank()
    lo = min(a.base for a in adcs)
    hi = max(a.base + a.size for a in adcs)
    if not cache.native(lo, hi, "hwut_adc_read", "hwut_adc_write", ctypes.addressof(bank)):
        return []
    links = [NativeAdc(adc, bank.adc[i]) for i, adc in enumerate(adcs)]   # each keeps bank
    bank.n = len(adcs)
    return links
