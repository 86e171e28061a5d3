"""STM32F303 timers (RM0316 sections 20-22): basic, general-purpose and advanced.

The counter is not ticked: it is a line through virtual time (an anchor cycle
where CNT had a known value, and core cycles per counter tick), so CNT is
computed when read and the next update or compare match is a single clock
event at the cycle where it happens. Events are only scheduled when someone
would notice them asynchronously (an enabled interrupt or DMA request); flags
nobody waits on are brought up to date lazily before every register access,
so a free-running TIM2 polled for timeouts costs nothing.

One counter tick is (PSC+1) timer-clock ticks; one timer-clock tick is
HCLK/TIMCLKx core cycles (TIMCLK1 for TIM2/3/4/6/7, TIMCLK2 for TIM1/8/15/16/17).
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from functools import partial

from hwut.sim.regs import STABLE, Access, Field, Peripheral, Register, flags, tag
from hwut.sim.signals import ClockTree
from hwut.sim.vclock import Event, VirtualClock

from .irq import IrqOut

CR1, CR2, SMCR, DIER, SR, EGR, CCMR1, CCMR2, CCER, CNT, PSC, ARR, RCR = (
    0x00, 0x04, 0x08, 0x0C, 0x10, 0x14, 0x18, 0x1C, 0x20, 0x24, 0x28, 0x2C, 0x30)
CCR_OFFSETS = (0x34, 0x38, 0x3C, 0x40)
BDTR, DCR, DMAR, OR, CCMR3, CCR5, CCR6 = 0x44, 0x48, 0x4C, 0x50, 0x54, 0x58, 0x5C

CEN, UDIS, URS, OPM, DIR, ARPE, UIFREMAP = 1, 2, 4, 8, 16, 1 << 7, 1 << 11
UIF, COMIF, TIF, BIF = 1, 1 << 5, 1 << 6, 1 << 7
UDE = 1 << 8
_FOREVER = 1 << 127


@dataclass(frozen=True)
class TimerKind:
    """What differs between timer families, as data."""

    counter_bits: int = 16
    channels: int = 4          # channels with compare/capture and interrupts
    has_dir: bool = True       # DIR/CMS (up/down counting)
    rcr_bits: int = 0          # repetition counter width; 0 = none
    has_bdtr: bool = False     # break and dead-time (advanced, TIM15/16/17)
    extra_channels: bool = False  # CCMR3/CCR5/CCR6 (TIM1/8/20)
    basic: bool = False


KINDS: dict[str, TimerKind] = {
    "basic": TimerKind(channels=0, has_dir=False, basic=True),
    "general16": TimerKind(),
    "general32": TimerKind(counter_bits=32),
    "tim15": TimerKind(channels=2, has_dir=False, rcr_bits=8, has_bdtr=True),
    "tim16": TimerKind(channels=1, has_dir=False, rcr_bits=8, has_bdtr=True),
    "advanced": TimerKind(rcr_bits=16, has_bdtr=True, extra_channels=True),
}

def _ccmr(first: int, second: int) -> list[Field]:
    """CCMRx for two channels in output-compare layout (input capture reuses the bits:
    the model reads CCxS, OCxPE and the input filter bits as the same positions)."""
    out: list[Field] = []
    for ch, lsb in ((first, 0), (second, 8)):
        out += [Field(f"CC{ch}S", lsb, 2), Field(f"OC{ch}FE", lsb + 2), Field(f"OC{ch}PE", lsb + 3),
                Field(f"OC{ch}M", lsb + 4, 3), Field(f"OC{ch}CE", lsb + 7)]
    return out + [Field(f"OC{first}M_3", 16), Field(f"OC{second}M_3", 24)]


@dataclass
class _Run:
    """The counter as a line through time plus the shadow (active) registers."""

    running: bool = False
    down: bool = False
    cnt: int = 0           # CNT at ``anchor``
    anchor: int = 0        # a counter-tick boundary, in core cycles
    period: int = 1        # core cycles per counter tick
    rep: int = 0           # repetition counter
    psc: int = 0
    arr: int = 0xFFFF
    rcr: int = 0
    ccr: tuple[int, ...] = ()


@dataclass(frozen=True)
class _Segment:
    """From the anchor to the next wrap: its length and compare matches (tick, channel)."""

    ticks: int
    overflow: bool         # ends with an overflow/underflow (update candidate)
    end_cnt: int
    matches: tuple[tuple[int, int], ...]


class Timer(Peripheral):
    """Any STM32F303 timer; ``kind`` (a key of ``KINDS``) and ``clock_name`` (the
    ClockTree name of its timer clock) come from the SoC description.

    Interrupts: ``irq`` for timers with one NVIC line (or everything ORed);
    ``irq_up``/``irq_cc``/``irq_brk``/``irq_trg_com`` for TIM1/TIM8. Shared
    lines (TIM1_UP_TIM16 ...) need ``sim.peripherals.irq.IrqOr``.
    """

    def __init__(self, name: str, base: int, *, clock: VirtualClock, clocks: ClockTree,
                 note: Callable[[str], None] | None = None,
                 kind: str = "general16", clock_name: str = "TIMCLK1",
                 irq: IrqOut | None = None, irq_up: IrqOut | None = None,
                 irq_cc: IrqOut | None = None, irq_brk: IrqOut | None = None,
                 irq_trg_com: IrqOut | None = None,
                 dma_request: Callable[[str], None] | None = None) -> None:
        self.kind = KINDS[kind]
        self.clock = clock
        self.clocks = clocks
        self.clock_name = clock_name
        self.irq, self.irq_up, self.irq_cc = irq, irq_up, irq_cc
        self.irq_brk, self.irq_trg_com = irq_brk, irq_trg_com
        #: Called with "UP" or "CC1".."CC4" for each DMA request (UDE, CCxDE).
        self.dma_request = dma_request
        self._max = (1 << self.kind.counter_bits) - 1
        self._run = _Run()
        self._seen = 0
        self._quiet_until = 0              # before this cycle no wrap or match can happen
        self._event: Event | None = None
        self._noted_modes: set[str] = set()
        super().__init__(name, base, note=note)
        clocks.subscribe(self._clocks_changed)

    # -- declarations --------------------------------------------------------
    def registers(self) -> list[Register]:
        k = self.kind
        nch = k.channels
        cfg = self._config_written
        cr1 = [*flags("CEN", "UDIS", "URS", "OPM")]
        if k.has_dir:
            cr1 += [Field("DIR", 4), Field("CMS", 5, 2)]
        cr1 += [Field("ARPE", 7), Field("UIFREMAP", 11)]
        if not k.basic:
            cr1.append(Field("CKD", 8, 2))
        cc_bits = tuple(f"CC{i + 1}" for i in range(nch))
        dier = [Field("UIE", 0), Field("UDE", 8)]
        dier += [Field(f"{c}IE", 1 + i) for i, c in enumerate(cc_bits)]
        dier += [Field(f"{c}DE", 9 + i) for i, c in enumerate(cc_bits)]
        sr = [Field("UIF", 0, access=Access.RC_W0)]
        sr += [Field(f"{c}IF", 1 + i, access=Access.RC_W0) for i, c in enumerate(cc_bits)]
        sr += [Field(f"{c}OF", 9 + i, access=Access.RC_W0) for i, c in enumerate(cc_bits)]
        egr = [Field("UG", 0, access=Access.WO)]
        egr += [Field(f"{c}G", 1 + i, access=Access.WO) for i, c in enumerate(cc_bits)]
        if not k.basic:
            dier += [Field("TIE", 6), Field("TDE", 14)]
            sr.append(Field("TIF", 6, access=Access.RC_W0))
            egr.append(Field("TG", 6, access=Access.WO))
        if k.has_bdtr:
            dier += [Field("COMIE", 5), Field("BIE", 7), Field("COMDE", 13)]
            sr += [Field("COMIF", 5, access=Access.RC_W0), Field("BIF", 7, access=Access.RC_W0),
                   Field("B2IF", 8, access=Access.RC_W0)]
            egr += [Field("COMG", 5, access=Access.WO), Field("BG", 7, access=Access.WO),
                    Field("B2G", 8, access=Access.WO)]
        regs = [
            Register("CR1", CR1, fields=tuple(cr1), on_write=cfg),
            Register("CR2", CR2, fields=(Field("CCDS", 3), Field("MMS", 4, 3), Field("TI1S", 7),
                                         Field("OIS", 8, 8), Field("MMS2", 20, 4))),
            Register("DIER", DIER, fields=tuple(dier), on_write=cfg),
            Register("SR", SR, fields=tuple(sr), on_write=cfg),
            Register("EGR", EGR, fields=tuple(egr), on_write=self._egr_written),
            Register("CNT", CNT, fields=(Field("CNT", 0, self.kind.counter_bits),),
                     on_read=self._cnt_read, on_write=self._cnt_written),
            Register("PSC", PSC, fields=(Field("PSC", 0, 16),), on_write=cfg),
            Register("ARR", ARR, reset=self._max,
                     fields=(Field("ARR", 0, self.kind.counter_bits),), on_write=cfg),
        ]
        if not k.basic:
            regs.append(Register("SMCR", SMCR, fields=(
                Field("SMS", 0, 3), Field("OCCS", 3), Field("TS", 4, 3), Field("MSM", 7),
                Field("ETF", 8, 4), Field("ETPS", 12, 2), Field("ECE", 14), Field("ETP", 15),
                Field("SMS3", 16)), on_write=cfg))
            regs.append(Register("CCMR1", CCMR1, fields=_ccmr(1, 2), on_write=cfg))
            ccer = [f for i in range(1, 5) for f in (
                Field(f"CC{i}E", 4 * i - 4), Field(f"CC{i}P", 4 * i - 3),
                Field(f"CC{i}NE", 4 * i - 2), Field(f"CC{i}NP", 4 * i - 1))]
            ccer += [Field("CC5E", 16), Field("CC5P", 17), Field("CC6E", 20), Field("CC6P", 21)]
            regs.append(Register("CCER", CCER, fields=ccer, on_write=cfg))
            regs.append(Register("DCR", DCR, fields=(Field("DBA", 0, 5), Field("DBL", 8, 5)),
                                 tagged=True))
            regs.append(Register("DMAR", DMAR, fields=(tag("DMAB", 0, 32),)))
        if nch > 2:
            regs.append(Register("CCMR2", CCMR2, fields=_ccmr(3, 4), on_write=cfg))
        for i in range(nch):
            regs.append(Register(f"CCR{i + 1}", CCR_OFFSETS[i],
                                 fields=(Field(f"CCR{i + 1}", 0, self.kind.counter_bits),),
                                 on_write=cfg, on_read=partial(self._ccr_read, i)))
        if k.rcr_bits:
            regs.append(Register("RCR", RCR, fields=(Field("REP", 0, k.rcr_bits),), on_write=cfg))
        if k.has_bdtr:
            regs.append(Register("BDTR", BDTR, fields=(
                Field("DTG", 0, 8), Field("LOCK", 8, 2), Field("OSSI", 10), Field("OSSR", 11),
                Field("BKE", 12), Field("BKP", 13), Field("AOE", 14), Field("MOE", 15),
                Field("BKF", 16, 4), Field("BK2F", 20, 4), Field("BK2E", 24),
                Field("BK2P", 25))))
        if k.extra_channels:
            regs += [Register("CCMR3", CCMR3, fields=[f for f in _ccmr(5, 6) if not f.name.endswith("S")], tagged=True),
                     Register("CCR5", CCR5, fields=(
                         Field("CCR5", 0, 16), *flags("GC5C1", "GC5C2", "GC5C3", start=29)),
                         tagged=True),
                     Register("CCR6", CCR6, fields=(Field("CCR6", 0, 16),), tagged=True)]
        return regs

    # -- lifecycle -------------------------------------------------------------
    def reset(self) -> None:
        if self._event is not None:
            self._event.cancel()
            self._event = None
        super().reset()
        self._run = _Run(anchor=self.clock.cycles, arr=self._max, period=self._ratio(),
                         ccr=(0,) * self.kind.channels)
        self._seen = self.clock.cycles
        self._quiet_until = 0
        self._update_irq()

    # -- bus side: bring the counter up to date before every access ------------
    def read(self, offset: int, size: int) -> int:
        self._sync()
        return super().read(offset, size)

    def write(self, offset: int, size: int, value: int) -> None:
        self._sync()
        self._rebase()
        super().write(offset, size, value)
        self._quiet_until = 0
        self._update_irq()
        self._reschedule()

    def _is_input(self, ch: int) -> bool:
        ccmr = self.values.get(CCMR1 if ch < 2 else CCMR2, 0)
        return bool((ccmr >> 8 * (ch & 1)) & 3)

    def _ccr_read(self, ch: int, value: int) -> int:
        """In input capture, reading CCRx clears CCxIF (RM0316, TIMx_SR)."""
        if self._is_input(ch) and self.values[SR] >> (ch + 1) & 1:
            self.values[SR] &= ~(1 << (ch + 1))
            self._update_irq()
        return value

    def stable_until(self, offset: int) -> int | None:
        """When a read of ``offset`` can next change (for the machine's read cache).

        Flags here are brought up to date lazily, without clock events, so the
        answer is the model's own: the next counter tick for CNT, the next wrap
        or compare match for everything else.
        """
        if offset & ~3 in CCR_OFFSETS and self._is_input(CCR_OFFSETS.index(offset & ~3)):
            return None  # in input capture the read clears CCxIF
        if self._quiet_until == 0:
            self._sync(force=True)
        else:
            self._sync()
        run = self._run
        if not run.running or run.arr == 0:
            return STABLE
        if offset & ~3 == CNT:
            k = (self.clock.cycles - run.anchor) // run.period
            return run.anchor + (k + 1) * run.period
        return min(self._quiet_until, STABLE)

    def ramp(self, offset: int) -> tuple[int, int, int, int] | None:
        """CNT of a free-running up-counter, for the machine's read cache to answer by
        itself: (until, CNT at ``anchor``, anchor, cycles per count). It counts up by
        one per period, and nothing else changes it, until the next wrap or compare
        match. None for other registers and other modes (call after ``stable_until``)."""
        run = self._run
        if (offset != CNT or not run.running or run.arr == 0 or run.down
                or self.values[CR1] & (UIFREMAP | 0x60) or self._quiet_until >= _FOREVER):
            return None
        return self._quiet_until, run.cnt & self._max, run.anchor, run.period

    # -- clocks ------------------------------------------------------------------
    def _ratio(self) -> int:
        """Core cycles per timer-clock tick (HCLK/TIMCLKx, an integer on the F3)."""
        hclk = self.clocks.get("HCLK") or self.clock.hz
        timclk = self.clocks.get(self.clock_name) or hclk
        return max(1, round(hclk / timclk))

    def _clocks_changed(self) -> None:
        self._sync()
        self._rebase()
        self._run.period = (self._run.psc + 1) * self._ratio()
        self._quiet_until = 0
        self._reschedule()

    # -- the counter as a function of time --------------------------------------
    def _oc_channels(self) -> list[int]:
        """Channels in output-compare mode (CCxS = 00), which match against CCRx."""
        chans = []
        for ch in range(self.kind.channels):
            ccmr = self.values.get(CCMR1 if ch < 2 else CCMR2, 0)
            if not (ccmr >> (8 * (ch & 1))) & 3:
                chans.append(ch)
        return chans

    def _segment(self, run: _Run) -> _Segment | None:
        """The counting stretch from ``run``'s anchor to the next wrap; None if blocked."""
        c, arr = run.cnt, run.arr
        if arr == 0:
            return None        # the counter is blocked while ARR is 0 (RM0316 21.3.2)
        matches: list[tuple[int, int]] = []
        chans = self._oc_channels()
        if not run.down:
            overflow = c <= arr
            top = arr if overflow else self._max
            ticks = top - c + 1
            for ch in chans:
                v = run.ccr[ch]
                if c < v <= top:
                    matches.append((v - c, ch))
                elif v == 0:
                    matches.append((ticks, ch))
            return _Segment(ticks, overflow, 0, tuple(matches))
        ticks = c + 1
        for ch in chans:
            v = run.ccr[ch]
            if v < c:
                matches.append((c - v, ch))
            if v == arr:
                matches.append((ticks, ch))
        return _Segment(ticks, True, arr, tuple(matches))

    def _finish(self, run: _Run, seg: _Segment) -> tuple[_Run, bool]:
        """``run`` after ``seg`` ends; True if an update event happened there."""
        run = replace(run, anchor=run.anchor + seg.ticks * run.period, cnt=seg.end_cnt)
        if not seg.overflow:
            return run, False
        if run.rep:
            run.rep -= 1
            return run, False
        if self.values[CR1] & UDIS:
            return run, False
        run = self._load_shadows(run)
        run.rep = run.rcr
        if run.down:
            run.cnt = run.arr      # the down-counter reloads the new auto-reload value
        if self.values[CR1] & OPM:
            run.running = False
        return run, True

    def _load_shadows(self, run: _Run) -> _Run:
        """Update event: preloaded PSC, ARR, RCR and CCRx become active."""
        psc = self.values[PSC] & 0xFFFF
        ccr = tuple(self.values[CCR_OFFSETS[ch]] for ch in range(self.kind.channels))
        return replace(run, psc=psc, arr=self.values[ARR], rcr=self.values.get(RCR, 0),
                       ccr=ccr, period=(psc + 1) * self._ratio())

    def _stationary(self) -> bool:
        """Whether an update event would change nothing (all preloads equal the shadows)."""
        run = self._run
        return (run.psc == self.values[PSC] & 0xFFFF and run.arr == self.values[ARR]
                and run.rcr == self.values.get(RCR, 0)
                and run.ccr == tuple(self.values[CCR_OFFSETS[ch]]
                                     for ch in range(self.kind.channels)))

    def _sync(self, force: bool = False) -> None:
        """Apply every update and compare match up to now, at the cycle it happened."""
        now = self.clock.cycles
        if now <= self._seen and not force:
            return
        if now < self._quiet_until:       # nothing can have happened since the last look
            self._seen = now
            return
        self._quiet_until = _FOREVER
        while self._run.running:
            run = self._run
            seg = self._segment(run)
            if seg is None:
                break
            end = run.anchor + seg.ticks * run.period
            for tick, ch in seg.matches:
                at = run.anchor + tick * run.period
                if self._seen < at <= now:
                    self._compare_match(ch)
                elif at > now:
                    end = min(end, at)
            if run.anchor + seg.ticks * run.period > now:
                self._quiet_until = end
                break
            self._run, uev = self._finish(run, seg)
            if uev:
                self._update_happened(software=False)
            self._skip_periods(now)
        self._seen = now
        if not self._run.running and self.values[CR1] & CEN:
            self.values[CR1] &= ~CEN     # one-pulse mode stopped the counter

    def _skip_periods(self, now: int) -> None:
        """Jump over whole identical periods at once (a long idle stretch with no reads)."""
        run = self._run
        if not run.running:
            return
        seg = self._segment(run)      # a full period: called right after a wrap
        if seg is None:
            return
        full = seg.ticks * run.period
        k = (now - run.anchor) // full - 1
        if k <= 0:
            return
        if not self._stationary() or self.values[CR1] & OPM:
            k = min(k, run.rep)      # only periods without an update event
            if k <= 0:
                return
        for _, ch in seg.matches:
            self._compare_match(ch)
        if k > run.rep:
            if not self.values[CR1] & UDIS:
                self.values[SR] |= UIF
            run.rep = run.rcr - ((k - run.rep - 1) % (run.rcr + 1))
        else:
            run.rep -= k
        run.anchor += k * full

    def _rebase(self) -> None:
        """Move the anchor to the last tick boundary, so configuration can change now."""
        run = self._run
        if not run.running or run.arr == 0:
            return
        k = (self.clock.cycles - run.anchor) // run.period
        if k > 0:
            run.cnt = run.cnt - k if run.down else run.cnt + k
            run.anchor += k * run.period

    def counter(self) -> int:
        """CNT now (after ``_sync``)."""
        run = self._run
        if not run.running or run.arr == 0:
            return run.cnt          # stopped, or blocked while ARR is 0
        k = (self.clock.cycles - run.anchor) // run.period
        return (run.cnt - k if run.down else run.cnt + k) & self._max

    # -- what events do ------------------------------------------------------------
    def _update_happened(self, software: bool) -> None:
        if not (software and self.values[CR1] & URS):
            self.values[SR] |= UIF
        if self.values[DIER] & UDE and self.dma_request is not None:
            self.dma_request("UP")

    def _compare_match(self, ch: int) -> None:
        self.values[SR] |= 1 << (ch + 1)
        if self.values[DIER] >> (9 + ch) & 1 and self.dma_request is not None:
            self.dma_request(f"CC{ch + 1}")

    # -- register behaviour --------------------------------------------------------
    def _config_written(self, old: int = 0, new: int = 0) -> None:
        """Any configuration write: follow CEN/DIR, and the registers without preload."""
        cr1, run = self.values[CR1], self._run
        if cr1 & CEN and not run.running:
            run.running = True
            run.anchor = self.clock.cycles
        elif not cr1 & CEN and run.running:
            run.running = False
        if self.kind.has_dir:
            cms = (cr1 >> 5) & 3
            if cms:
                self._note_mode("center-aligned mode (CMS) not modelled; counting by DIR")
            run.down = bool(cr1 & DIR)
        if not cr1 & ARPE:
            run.arr = self.values[ARR]
        ccr = list(run.ccr)
        for ch in range(self.kind.channels):
            ccmr = self.values.get(CCMR1 if ch < 2 else CCMR2, 0)
            if not (ccmr >> (8 * (ch & 1) + 3)) & 1:     # OCxPE = 0: no preload
                ccr[ch] = self.values[CCR_OFFSETS[ch]]
        run.ccr = tuple(ccr)
        if self.values.get(SMCR, 0) & 0x1_0007:
            self._note_mode("slave mode (SMCR.SMS) not modelled; the counter runs on its clock")

    def _note_mode(self, text: str) -> None:
        if text not in self._noted_modes:
            self._noted_modes.add(text)
            self.note(text)

    def _egr_written(self, old: int, value: int) -> None:
        if value & 1:   # UG: reinitialise the counter and generate an update event
            run = self._run
            if self.values[CR1] & UDIS:
                run.cnt = run.arr if run.down else 0
            else:
                run = self._run = self._load_shadows(run)
                run.cnt = run.arr if run.down else 0
                run.rep = run.rcr
                self._update_happened(software=True)
            run.anchor = self.clock.cycles
        self.values[SR] |= value & 0x1FE   # CCxG, COMG, TG, BG, B2G set their flags

    def _cnt_read(self, stored: int) -> int:
        value = self.counter()
        if self.values[CR1] & UIFREMAP:
            value = (value & 0x7FFF_FFFF) | ((self.values[SR] & UIF) << 31)
        return value

    def _cnt_written(self, old: int, new: int) -> None:
        self._run.cnt = self.values[CNT] & self._max

    # -- input capture ---------------------------------------------------------
    def input_edge(self, channel: int, rising: bool) -> None:
        """An edge on input TIx (1-based ``channel``): capture if configured for it.

        CCxP/CCxNP select rising (00), falling (01) or both (11) edges; the
        capture copies CNT into CCRx and sets CCxIF (CCxOF if it was already set).
        """
        ch = channel - 1
        if not 0 <= ch < self.kind.channels:
            return
        self._sync()
        ccmr = self.values.get(CCMR1 if ch < 2 else CCMR2, 0)
        ccer = self.values.get(CCER, 0) >> 4 * ch
        if not (ccmr >> 8 * (ch & 1)) & 3 or not ccer & 1:
            return
        pol = (ccer >> 1 & 1) | (ccer >> 2 & 2)
        if not (pol == 3 or (pol == 0 and rising) or (pol == 1 and not rising)):
            return
        self._rebase()
        self._quiet_until = 0
        self.values[CCR_OFFSETS[ch]] = self.counter()
        if self.values[SR] >> (ch + 1) & 1:
            self.values[SR] |= 1 << (9 + ch)
        self._compare_match(ch)
        self._update_irq()
        self._reschedule()

    # -- interrupts and the next event --------------------------------------------
    def _update_irq(self) -> None:
        """The one place the interrupt outputs are decided."""
        pending = self.values[SR] & self.values[DIER]
        up, cc = bool(pending & UIF), bool(pending & 0x1E)
        brk, trg_com = bool(pending & BIF), bool(pending & (TIF | COMIF))
        if self.irq is not None:
            self.irq.set(up or cc or brk or trg_com)
        for out, level in ((self.irq_up, up), (self.irq_cc, cc), (self.irq_brk, brk),
                           (self.irq_trg_com, trg_com)):
            if out is not None:
                out.set(level)

    def _wanted(self) -> tuple[bool, set[int]]:
        """Which events someone would notice now: (update, compare channels)."""
        dier, sr = self.values[DIER], self.values[SR]
        want_up = bool(dier & UDE or (dier & UIF and not sr & UIF))
        chans = {ch for ch in range(self.kind.channels)
                 if dier >> (9 + ch) & 1 or (dier >> (1 + ch) & 1 and not sr >> (1 + ch) & 1)}
        return want_up, chans

    def next_event_cycle(self) -> int | None:
        """The first cycle after now at which a wanted update or match happens.

        Looks at most three counting stretches ahead: the current one, the
        first full period (which may load new shadows) and one with the new
        configuration. Periods without an update event (repetition counter)
        are identical, so the update after them is computed, not walked.
        """
        run = self._run
        want_up, chans = self._wanted()
        if not run.running or not (want_up or chans):
            return None
        now = self.clock.cycles
        later_update: int | None = None
        for _ in range(3):
            seg = self._segment(run)
            if seg is None:
                break
            hits = [run.anchor + t * run.period for t, ch in seg.matches
                    if ch in chans and run.anchor + t * run.period > now]
            if hits:
                return min(hits + ([later_update] if later_update is not None else []))
            if later_update is not None:
                return later_update
            end = run.anchor + seg.ticks * run.period
            nxt, uev = self._finish(run, seg)
            if uev and want_up:
                return end
            if (not uev and seg.overflow and want_up and run.rep > 0
                    and not self.values[CR1] & UDIS):
                full = self._segment(nxt)
                if full is not None:
                    later_update = end + run.rep * full.ticks * nxt.period
                    if not chans:
                        return later_update
            if not nxt.running:
                break
            run = nxt
        return later_update

    def _reschedule(self) -> None:
        when = self.next_event_cycle()
        if self._event is not None:
            if not self._event.cancelled and self._event.when == when:
                return
            self._event.cancel()
            self._event = None
        if when is not None:
            self._event = self.clock.at_cycle(when, self._on_event)

    def _on_event(self) -> None:
        self._event = None
        self._sync()
        self._update_irq()
        self._reschedule()
