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
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING, Any

from hwut.sim.regs import STABLE, Access, Field, Peripheral, Register, flags, tag
from hwut.sim.signals import ClockTree, LineAtCycle
from hwut.sim.vclock import Event, VirtualClock

from .irq import IrqOut

if TYPE_CHECKING:
    from hwut.sim.timer_native import TimerState

#: ``TimerState.line_when`` when no line is armed (``sim.core.cpustate.NONE_CYCLE``).
_NONE_CYCLE = (1 << 64) - 1

CR1, CR2, SMCR, DIER, SR, EGR, CCMR1, CCMR2, CCER, CNT, PSC, ARR, RCR = (
    0x00, 0x04, 0x08, 0x0C, 0x10, 0x14, 0x18, 0x1C, 0x20, 0x24, 0x28, 0x2C, 0x30)
CCR_OFFSETS = (0x34, 0x38, 0x3C, 0x40)
BDTR, DCR, DMAR, OR, CCMR3, CCR5, CCR6 = 0x44, 0x48, 0x4C, 0x50, 0x54, 0x58, 0x5C

_FOREVER = 1 << 127
#: Counting stretches remembered per timer (``Timer._segment``): a handful are live at
#: a time (the current one, the next period's); the table starts afresh past this.
_SEGMENTS = 64


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


@dataclass(slots=True)
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

    def line(self) -> tuple[bool, bool, int, int, int, int, tuple[int, ...]]:
        """What the cycles of the coming wraps and compare matches follow from."""
        return self.running, self.down, self.cnt, self.anchor, self.period, self.arr, self.ccr

    def copy(self) -> _Run:
        """A copy to change (``dataclasses.replace`` is several times slower, and this
        is on the path of every timer register write)."""
        return _Run(self.running, self.down, self.cnt, self.anchor, self.period, self.rep,
                    self.psc, self.arr, self.rcr, self.ccr)


@dataclass(frozen=True)
class _Segment:
    """From the anchor to the next wrap: its length and compare matches (tick, channel)."""

    ticks: int
    overflow: bool         # ends with an overflow/underflow (update candidate)
    end_cnt: int
    matches: tuple[tuple[int, int], ...]


class _Bits:
    """A timer's fields as handles, and masks gathered from them for the paths every
    register access takes. Kept in an object of their own: the Timer's attribute
    lookups stay fast with few attributes (measured: 7% on a TIM2 read)."""

    __slots__ = ("cen", "udis", "urs", "opm", "uif", "ude", "cnt", "ccr", "ccif", "ccof",
                 "ccde", "ccs", "ccer", "cen_m", "udis_m", "opm_m", "arpe_m", "uifremap_m",
                 "dir_m", "cms_m", "ccs_at", "ocpe_at", "ccr_at", "rcr_at", "slave_at",
                 "up_m", "cc_m", "brk_m", "trg_com_m", "uie_m", "ude_m", "cc_wanted", "dma_m",
                 "sr_flags_m", "dier_m")
    cen: Field
    udis: Field
    urs: Field
    opm: Field
    uif: Field
    ude: Field
    cnt: Field
    #: Per channel (0-based): CCRx, CCxIF, CCxOF, CCxDE; CCxS of every CCMR channel.
    ccr: tuple[Field, ...]
    ccif: tuple[Field, ...]
    ccof: tuple[Field, ...]
    ccde: tuple[Field, ...]
    ccs: tuple[Field, ...]
    ccer: Register | None
    cen_m: int
    udis_m: int
    opm_m: int
    arpe_m: int
    uifremap_m: int
    dir_m: int
    cms_m: int
    #: Per channel: (CCMR offset, mask) of CCxS and of OCxPE; offset of CCRx.
    ccs_at: tuple[tuple[int, int], ...]
    ocpe_at: tuple[tuple[int, int], ...]
    ccr_at: tuple[int, ...]
    rcr_at: int | None
    slave_at: tuple[int, int] | None
    up_m: int
    cc_m: int
    brk_m: int
    trg_com_m: int
    uie_m: int
    ude_m: int
    #: Per channel: (CCxIE, CCxDE, CCxIF) masks.
    cc_wanted: tuple[tuple[int, int, int], ...]
    #: Every DMA request enable of DIER.
    dma_m: int
    #: SR's flags (rc_w0), DIER's bits (rw): what ``quiet_writes`` compares.
    sr_flags_m: int
    dier_m: int


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
                 dma_request: Callable[[str], None] | None = None,
                 line_at_cycle: LineAtCycle | None = None) -> None:
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
        #: ``irq`` raised at the next event's cycle without a clock event, where that
        #: is all the event would do (``_reschedule``); caught up with at the next access.
        self._line_at = line_at_cycle
        self._noted_modes: set[str] = set()
        #: Channels in output-compare mode (``_oc_channels``), kept from CCMR writes.
        self._oc: tuple[int, ...] = ()
        #: ``_segment`` by (CNT, ARR, down, active CCRx): a pure function of these and
        #: of ``_oc`` (the table is emptied when that changes).
        self._segments: dict[tuple[int, int, bool, tuple[int, ...]], _Segment | None] = {}
        #: ``_wanted`` by DIER and SR (a pure function of the two words).
        self._wants: dict[tuple[int, int], tuple[bool, frozenset[int]]] = {}
        #: SR & DIER when the interrupt outputs were last decided (``_update_irq``).
        self._irq_pending = -1
        #: The interrupt outputs and the scheduled event follow from the state as it is:
        #: set once a write or an event decided them, cleared by whatever changes the
        #: state otherwise (``_sync`` raising flags or wrapping, a capture, a clock change).
        self._settled = False
        #: The compare path kept in C (``attach_native``, ``_offer``): the state handed
        #: over, whether C holds it now, and the cycle it was handed at.
        self._native: TimerState | None = None
        self._make_native: Callable[[], TimerState | None] | None = None
        self._held = False
        self._handed_at = -1
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
        # EGR: UG restarts the counter; every other xG sets the flag xIF of SR.
        egr = [Field("UG", 0, access=Access.WO, on_write=self._ug_written)]
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
        flag_of = {f.name: f for f in sr}
        for f in egr[1:]:
            f.on_write = partial(self._generate, flag_of[f.name[:-1] + "IF"])
        bits = self.kind.counter_bits
        regs = [
            Register("CR1", CR1, fields=tuple(cr1), on_write=cfg),
            Register("CR2", CR2, fields=(Field("CCDS", 3), Field("MMS", 4, 3), Field("TI1S", 7),
                                         Field("OIS", 8, 8), Field("MMS2", 20, 4))),
            Register("DIER", DIER, fields=tuple(dier), on_write=cfg),
            Register("SR", SR, fields=tuple(sr), on_write=cfg),
            Register("EGR", EGR, fields=tuple(egr)),
            Register("CNT", CNT, fields=(Field("CNT", 0, bits),),
                     on_read=self._cnt_read, on_write=self._cnt_written),
            Register("PSC", PSC, fields=(Field("PSC", 0, 16),), on_write=cfg),
            Register("ARR", ARR, reset=self._max, fields=(Field("ARR", 0, bits),), on_write=cfg),
        ]
        if not k.basic:
            regs.append(Register("SMCR", SMCR, fields=(
                Field("SMS", 0, 3), Field("OCCS", 3), Field("TS", 4, 3), Field("MSM", 7),
                Field("ETF", 8, 4), Field("ETPS", 12, 2), Field("ECE", 14), Field("ETP", 15),
                Field("SMS3", 16)), on_write=cfg))
            regs.append(Register("CCMR1", CCMR1, fields=_ccmr(1, 2),
                                 on_write=self._ccmr_written))
            ccer = [f for i in range(1, 5) for f in (
                Field(f"CC{i}E", 4 * i - 4), Field(f"CC{i}P", 4 * i - 3),
                Field(f"CC{i}NE", 4 * i - 2), Field(f"CC{i}NP", 4 * i - 1))]
            ccer += [Field("CC5E", 16), Field("CC5P", 17), Field("CC6E", 20), Field("CC6P", 21)]
            regs.append(Register("CCER", CCER, fields=ccer, on_write=cfg))
            regs.append(Register("DCR", DCR, fields=(Field("DBA", 0, 5), Field("DBL", 8, 5)),
                                 tagged=True))
            regs.append(Register("DMAR", DMAR, fields=(tag("DMAB", 0, 32),)))
        if nch > 2:
            regs.append(Register("CCMR2", CCMR2, fields=_ccmr(3, 4),
                                 on_write=self._ccmr_written))
        for i in range(nch):
            regs.append(Register(f"CCR{i + 1}", CCR_OFFSETS[i],
                                 fields=(Field(f"CCR{i + 1}", 0, bits),),
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
            regs += [Register("CCMR3", CCMR3, fields=[f for f in _ccmr(5, 6)
                                                      if not f.name.endswith("S")], tagged=True),
                     Register("CCR5", CCR5, fields=(
                         Field("CCR5", 0, 16), *flags("GC5C1", "GC5C2", "GC5C3", start=29)),
                         tagged=True),
                     Register("CCR6", CCR6, fields=(Field("CCR6", 0, 16),), tagged=True)]
        self._bind({r.name: r for r in regs})
        return regs

    def _bind(self, r: dict[str, Register]) -> None:
        """The model's state, by field (registers the timer kind lacks: None or empty)."""
        b = self.bits = _Bits()
        cr1, dier, sr = r["CR1"], r["DIER"], r["SR"]
        b.cen, b.udis, b.urs, b.opm = cr1["CEN"], cr1["UDIS"], cr1["URS"], cr1["OPM"]
        b.uif, b.ude, b.cnt = sr["UIF"], dier["UDE"], r["CNT"]["CNT"]
        chans = range(self.kind.channels)
        b.ccr = tuple(r[f"CCR{ch + 1}"][f"CCR{ch + 1}"] for ch in chans)
        b.ccif = tuple(sr[f"CC{ch + 1}IF"] for ch in chans)
        b.ccof = tuple(sr[f"CC{ch + 1}OF"] for ch in chans)
        b.ccde = tuple(dier[f"CC{ch + 1}DE"] for ch in chans)
        # CCxS and OCxPE of every channel CCMR1/CCMR2 declare (TIM15/16/17: also the
        # second of CCMR1, which they lack as a channel but store as a register).
        ccmrs = [r[n] for n in ("CCMR1", "CCMR2") if n in r]
        ccmr_of = [reg for reg in ccmrs for _ in range(2)]          # channel -> its CCMR
        b.ccs = tuple(reg[f"CC{ch + 1}S"] for ch, reg in enumerate(ccmr_of))
        ocpe = tuple(reg[f"OC{ch + 1}PE"] for ch, reg in enumerate(ccmr_of))
        b.ccer = r.get("CCER")

        # The paths every register access takes test masks gathered here from the
        # fields (a handle's .value is a call; these run on each poll of TIM2).
        def mask(reg: Register, *names: str) -> int:
            return sum(reg[n].mask for n in names if n in reg)

        b.cen_m, b.udis_m, b.opm_m = mask(cr1, "CEN"), mask(cr1, "UDIS"), mask(cr1, "OPM")
        b.arpe_m, b.uifremap_m = mask(cr1, "ARPE"), mask(cr1, "UIFREMAP")
        b.dir_m, b.cms_m = mask(cr1, "DIR"), mask(cr1, "CMS")
        b.ccs_at = tuple((ccmr_of[ch].offset, b.ccs[ch].mask) for ch in chans)
        b.ocpe_at = tuple((ccmr_of[ch].offset, ocpe[ch].mask) for ch in chans)
        # CCRx and RCR are one field from bit 0: the stored word is the field's value.
        b.ccr_at = tuple(r[f"CCR{ch + 1}"].offset for ch in chans)
        b.rcr_at = r["RCR"].offset if "RCR" in r else None
        b.slave_at = (r["SMCR"].offset, mask(r["SMCR"], "SMS", "SMS3")) if "SMCR" in r \
            else None
        # SR flags sit at the positions of their DIER enables (UIF/UIE, CCxIF/CCxIE ...).
        b.up_m = mask(sr, "UIF")
        b.cc_m = mask(sr, *(f"CC{ch + 1}IF" for ch in chans))
        b.brk_m = mask(sr, "BIF")
        b.trg_com_m = mask(sr, "TIF", "COMIF")
        b.uie_m, b.ude_m = dier["UIE"].mask, dier["UDE"].mask
        b.sr_flags_m, b.dier_m = sr.clear0_mask, dier.rw_mask
        b.dma_m = mask(dier, "UDE", "TDE", "COMDE", *(f"CC{ch + 1}DE" for ch in chans))
        b.cc_wanted = tuple((dier[f"CC{ch + 1}IE"].mask, dier[f"CC{ch + 1}DE"].mask,
                             sr[f"CC{ch + 1}IF"].mask) for ch in chans)

    # -- lifecycle -------------------------------------------------------------
    def reset(self) -> None:
        if self._held:
            self._take_back()
        if self._event is not None:
            self._event.cancel()
            self._event = None
        if self._line_at is not None:
            self._line_at.cancel()
        super().reset()
        self._run = _Run(anchor=self.clock.cycles, arr=self._max, period=self._ratio(),
                         ccr=(0,) * self.kind.channels)
        self._seen = self.clock.cycles
        self._quiet_until = 0
        self._modes_changed()
        self._irq_pending = -1
        self._settled = False
        self._update_irq()

    # -- bus side: bring the counter up to date before every access ------------
    def read(self, offset: int, size: int) -> int:
        if self._held:
            self._take_back()
        if self._line_at is not None and self._line_at.when is not None:
            self._catch_up_line()
        self._sync()
        value = super().read(offset, size)
        if self._make_native is not None:
            self._offer()
        return value

    def write(self, offset: int, size: int, value: int) -> None:
        if self._held:
            self._take_back()
        self._write(offset, size, value)
        if self._make_native is not None:
            self._offer()

    def get(self, name: str) -> int:
        if self._held:
            self._take_back()
        return super().get(name)

    def _write(self, offset: int, size: int, value: int) -> None:
        if self._line_at is not None and self._line_at.when is not None:
            self._catch_up_line()
        self._sync()
        self._rebase()
        word = offset & ~3
        stored, counting, modes = self.values.get(word), self._run.line(), self._oc
        super().write(offset, size, value)
        if self._run.line() != counting or self._oc is not modes:
            # the counting changed: the next wrap or match is found again. (``_rebase``
            # moves the anchor along the same line: the wraps and matches stay.)
            self._quiet_until = 0
        elif (self._settled and self.values.get(word) == stored
              and not (word in self._regs and self._regs[word]._watched)):
            # nothing changed (SR's flag cleared again, DIER |= what it holds): the
            # outputs and the event decided since are still the state's own
            return
        self._update_irq()
        self._reschedule()
        self._settled = True

    def _is_input(self, ch: int) -> bool:
        """Channel ``ch`` (0-based) is in input capture (CCxS != 00)."""
        return ch < len(self.bits.ccs) and bool(self.bits.ccs[ch].value)

    def _ccr_read(self, ch: int, value: int) -> int:
        """In input capture, reading CCRx clears CCxIF (RM0316, TIMx_SR)."""
        if self._is_input(ch) and self.bits.ccif[ch].value:
            self.bits.ccif[ch].value = 0
            self._settled = False
            self._update_irq()
        return value

    def stable_until(self, offset: int) -> int | None:
        """When a read of ``offset`` can next change (for the machine's read cache).

        Flags here are brought up to date lazily, without clock events, so the
        answer is the model's own: the next counter tick for CNT, the next wrap
        or compare match for SR and CR1 (one-pulse mode clears CEN); the others
        change only when written.
        """
        if self._held and (self._native_dirty() or self.clock.cycles != self._handed_at):
            self._take_back()
        if self._line_at is not None and self._line_at.when is not None:
            self._catch_up_line()
        if offset & ~3 in CCR_OFFSETS and self._is_input(CCR_OFFSETS.index(offset & ~3)):
            return None  # in input capture the read clears CCxIF
        if offset & ~3 not in (SR, CNT, CR1):
            return STABLE
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

    def local_effects(self) -> bool:
        """Whether an access changes nothing outside this timer but its interrupt lines
        (for the machine's read cache): no DMA request enabled, the only other thing an
        access can set off (an update by UG, a compare match caught up with)."""
        return not self.values[DIER] & self.bits.dma_m

    def changed_by_write(self, offset: int) -> tuple[int, ...] | None:
        """The registers whose reads a write of ``offset`` may change, for the machine's
        read cache (with ``local_effects``); None: any of this timer's. SR and DIER:
        themselves; CCRx: itself, and SR, whose answer holds until the next match,
        which it moves (CNT's holds until the next wrap, which a match leaves: ``ramp``)."""
        off = offset & ~3
        if off in (SR, DIER):
            return (off,)
        if off in self.bits.ccr_at:
            return (off, SR)
        return None

    def quiet_writes(self) -> tuple[int, tuple[tuple[int, int, int], ...]]:
        """Writes that would change nothing, for the machine's read cache to answer by
        doing nothing: (until when, ((offset, mask, expect), ...)), a write of ``value``
        being one when ``value & mask == expect``. SR clearing only flags already clear
        (Mbed's us_ticker_set_interrupt clears CC1IF twice), DIER rewritten with its
        own value (``DIER |= CC1IE`` when set). Until the next wrap or compare match,
        which sets flags; a write to either runs ``_config_written``, ``_update_irq``
        and ``_reschedule``, which change nothing when no register does."""
        until = self.stable_until(SR)
        if until is None or self.trace is not None:
            return 0, ()
        v, b = self.values, self.bits
        flags_set = v[SR] & b.sr_flags_m
        return until, ((SR, flags_set, flags_set), (DIER, b.dier_m, v[DIER] & b.dier_m))

    def read_backs(self, offset: int) -> tuple[tuple[int, int, int, int, int], ...]:
        """After a write of ``offset``, reads the machine's read cache may answer at
        once (write-allocate): ((offset, value, step at, value after, until), ...),
        ``value`` until cycle ``step at``, then ``value after`` until ``until`` (no step:
        ``step at`` == ``until``). A CCRx in output compare reads back what was written
        until written again; SR as it is until the next event, and when that is one
        compare match before the wrap, with its CCxIF from there to the event after
        (Mbed's TIM2 handler reads SR first, once the line raised at the match enters
        it: ``LineAtCycle``). Empty while traced (every access is to be seen)."""
        off = offset & ~3
        b = self.bits
        if off not in b.ccr_at or self.trace is not None or self.values[DIER] & b.dma_m:
            return ()
        if self._held and (self._native_dirty() or self.clock.cycles != self._handed_at):
            self._take_back()
        ch = b.ccr_at.index(off)
        sr_word = self.plain_word(SR)
        if self._is_input(ch) or self._regs[off].tag_mask or sr_word is None:
            return ()
        backs = [(off, self.values[off], STABLE, 0, STABLE)]
        until = self.stable_until(SR)
        if until is None:
            return tuple(backs)
        sr = self.values[SR]
        run, now = self._run, self.clock.cycles
        seg = self._segment(run) if run.running and until < _FOREVER else None
        if seg is None:
            backs.append((SR, sr, until, sr, until))
            return tuple(backs)
        wrap = run.anchor + seg.ticks * run.period
        events = sorted({run.anchor + tick * run.period for tick, _ in seg.matches} | {wrap})
        at_match = [c for tick, c in seg.matches if run.anchor + tick * run.period == until]
        later = [t for t in events if t > until]
        if until >= wrap or len(at_match) != 1 or not later or until <= now:
            backs.append((SR, sr, until, sr, until))
        else:
            backs.append((SR, sr, until, sr | b.ccif[at_match[0]].mask, later[0]))
        return tuple(backs)

    def ramp(self, offset: int) -> tuple[int, int, int, int] | None:
        """CNT of a free-running up-counter, for the machine's read cache to answer by
        itself: (until, CNT at ``anchor``, anchor, cycles per count). It counts up by
        one per period until the next wrap, where an update may load new PSC and ARR
        (and one-pulse mode stops it). A compare match sets a flag and leaves CNT as
        it counts (no slave mode is modelled), so the ramp holds across the matches
        before the wrap; everything else that moves CNT is a write to the timer (CNT,
        EGR's UG, CR1's CEN, ARR without preload, PSC, SMCR), which forgets all its
        cached reads (``changed_by_write``), or a clock change, which empties the
        cache. None for other registers and other modes (call after ``stable_until``)."""
        if self._held and (self._native_dirty() or self.clock.cycles != self._handed_at):
            self._take_back()
        run = self._run
        if (offset != CNT or not run.running or run.arr == 0 or run.down
                or self.values[CR1] & (self.bits.uifremap_m | self.bits.cms_m)
                or self._quiet_until >= _FOREVER):
            return None
        seg = self._segment(run)
        if seg is None:
            return None
        return run.anchor + seg.ticks * run.period, run.cnt & self._max, run.anchor, run.period

    # -- clocks ------------------------------------------------------------------
    def _ratio(self) -> int:
        """Core cycles per timer-clock tick (HCLK/TIMCLKx, an integer on the F3)."""
        hclk = self.clocks.get("HCLK") or self.clock.hz
        timclk = self.clocks.get(self.clock_name) or hclk
        return max(1, round(hclk / timclk))

    def _clocks_changed(self) -> None:
        if self._held:
            self._take_back()
        if self._line_at is not None and self._line_at.when is not None:
            self._catch_up_line()
        self._settled = False
        self._sync()
        self._rebase()
        self._run.period = (self._run.psc + 1) * self._ratio()
        self._quiet_until = 0
        self._reschedule()

    # -- the counter as a function of time --------------------------------------
    def _oc_channels(self) -> tuple[int, ...]:
        """Channels in output-compare mode (CCxS = 00), which match against CCRx."""
        v = self.values
        return tuple(ch for ch, (off, m) in enumerate(self.bits.ccs_at) if not v[off] & m)

    def _modes_changed(self) -> None:
        """CCMRx changed (or the timer was reset): channel modes again, and the
        counting stretches computed with the old ones forgotten."""
        self._oc = self._oc_channels()
        self._segments.clear()

    def _segment(self, run: _Run) -> _Segment | None:
        """The counting stretch from ``run``'s anchor to the next wrap; None if blocked.
        Computed once per counter state (``_stretch``): each register access asks."""
        key = (run.cnt, run.arr, run.down, run.ccr)
        try:
            return self._segments[key]
        except KeyError:
            pass
        if len(self._segments) >= _SEGMENTS:
            self._segments.clear()
        seg = self._segments[key] = self._stretch(run)
        return seg

    def _stretch(self, run: _Run) -> _Segment | None:
        """What ``_segment`` answers, computed."""
        c, arr = run.cnt, run.arr
        if arr == 0:
            return None        # the counter is blocked while ARR is 0 (RM0316 21.3.2)
        matches: list[tuple[int, int]] = []
        chans = self._oc
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
        run = run.copy()
        run.anchor += seg.ticks * run.period
        run.cnt = seg.end_cnt
        if not seg.overflow:
            return run, False
        if run.rep:
            run.rep -= 1
            return run, False
        if self.values[CR1] & self.bits.udis_m:
            return run, False
        self._shadows_into(run)
        run.rep = run.rcr
        if run.down:
            run.cnt = run.arr      # the down-counter reloads the new auto-reload value
        if self.values[CR1] & self.bits.opm_m:
            run.running = False
        return run, True

    def _load_shadows(self, run: _Run) -> _Run:
        """Update event: ``run`` with preloaded PSC, ARR, RCR and CCRx active."""
        run = run.copy()
        self._shadows_into(run)
        return run

    def _shadows_into(self, run: _Run) -> None:
        """Preloaded PSC, ARR, RCR and CCRx become active in ``run`` (a copy)."""
        v = self.values
        run.psc = psc = v[PSC]
        run.arr = v[ARR]
        run.rcr = self._rcr()
        run.ccr = tuple([v[off] for off in self.bits.ccr_at])
        run.period = (psc + 1) * self._ratio()

    def _rcr(self) -> int:
        return self.values[self.bits.rcr_at] if self.bits.rcr_at is not None else 0

    def _stationary(self) -> bool:
        """Whether an update event would change nothing (all preloads equal the shadows)."""
        run = self._run
        v = self.values
        return (run.psc == v[PSC] and run.arr == v[ARR] and run.rcr == self._rcr()
                and run.ccr == tuple(v[off] for off in self.bits.ccr_at))

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
            self._settled = False       # the counter wraps
            self._run, uev = self._finish(run, seg)
            if uev:
                self._update_happened(software=False)
            self._skip_periods(now)
        self._seen = now
        if not self._run.running and self.bits.cen.value:
            self._settled = False
            self.bits.cen.value = 0     # one-pulse mode stopped the counter

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
        if not self._stationary() or self.bits.opm.value:
            k = min(k, run.rep)      # only periods without an update event
            if k <= 0:
                return
        for _, ch in seg.matches:
            self._compare_match(ch)
        if k > run.rep:
            if not self.bits.udis.value:
                self.bits.uif.value = 1
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
        self._settled = False
        if not (software and self.bits.urs.value):
            self.bits.uif.value = 1
        if self.bits.ude.value and self.dma_request is not None:
            self.dma_request("UP")

    def _compare_match(self, ch: int) -> None:
        self._settled = False
        self.bits.ccif[ch].value = 1
        if self.bits.ccde[ch].value and self.dma_request is not None:
            self.dma_request(f"CC{ch + 1}")

    # -- register behaviour --------------------------------------------------------
    def _config_written(self, old: int = 0, new: int = 0) -> None:
        """Any configuration write: follow CEN/DIR, and the registers without preload."""
        v, run = self.values, self._run
        cr1 = v[CR1]
        if cr1 & self.bits.cen_m and not run.running:
            run.running = True
            run.anchor = self.clock.cycles
        elif not cr1 & self.bits.cen_m and run.running:
            run.running = False
        if self.bits.dir_m:
            if cr1 & self.bits.cms_m:
                self._note_mode("center-aligned mode (CMS) not modelled; counting by DIR")
            run.down = bool(cr1 & self.bits.dir_m)
        if not cr1 & self.bits.arpe_m:
            run.arr = v[ARR]
        if self.bits.ccr_at:      # CCRx without preload (OCxPE = 0) is active at once
            run.ccr = tuple([old if v[pe_off] & pe else v[off] for old, (pe_off, pe), off
                             in zip(run.ccr, self.bits.ocpe_at, self.bits.ccr_at)])
        if self.bits.slave_at is not None and v[self.bits.slave_at[0]] & self.bits.slave_at[1]:
            self._note_mode("slave mode (SMCR.SMS) not modelled; the counter runs on its clock")

    def _ccmr_written(self, old: int, new: int) -> None:
        self._modes_changed()
        self._config_written()

    def _note_mode(self, text: str) -> None:
        if text not in self._noted_modes:
            self._noted_modes.add(text)
            self.note(text)

    def _ug_written(self, old: int, new: int) -> None:
        if not new:
            return
        # UG: reinitialise the counter and generate an update event.
        run = self._run
        if self.bits.udis.value:
            run.cnt = run.arr if run.down else 0
        else:
            run = self._run = self._load_shadows(run)
            run.cnt = run.arr if run.down else 0
            run.rep = run.rcr
            self._update_happened(software=True)
        run.anchor = self.clock.cycles

    def _generate(self, flag: Field, old: int, new: int) -> None:
        """CCxG, COMG, TG, BG, B2G: set their flag in SR."""
        if new:
            flag.value = 1

    def _cnt_read(self, stored: int) -> int:
        value = self.counter()
        if self.values[CR1] & self.bits.uifremap_m:   # UIF copied into CNT bit 31
            value = (value & 0x7FFF_FFFF) | (self.bits.uif.value << 31)
        return value

    def _cnt_written(self, old: int, new: int) -> None:
        self._run.cnt = self.bits.cnt.value

    # -- input capture ---------------------------------------------------------
    def input_edge(self, channel: int, rising: bool) -> None:
        """An edge on input TIx (1-based ``channel``): capture if configured for it.

        CCxP/CCxNP select rising (00), falling (01) or both (11) edges; the
        capture copies CNT into CCRx and sets CCxIF (CCxOF if it was already set).
        """
        ch = channel - 1
        if not 0 <= ch < self.kind.channels:
            return
        if self._held:
            self._take_back()
        if self._line_at is not None and self._line_at.when is not None:
            self._catch_up_line()
        self._sync()
        ccer = self.bits.ccer
        if ccer is None or not self._is_input(ch) or not ccer[f"CC{channel}E"].value:
            return
        pol = ccer[f"CC{channel}P"].value | ccer[f"CC{channel}NP"].value << 1
        if not (pol == 3 or (pol == 0 and rising) or (pol == 1 and not rising)):
            return
        self._settled = False
        self._rebase()
        self._quiet_until = 0
        self.bits.ccr[ch].value = self.counter()
        if self.bits.ccif[ch].value:
            self.bits.ccof[ch].value = 1
        self._compare_match(ch)
        self._update_irq()
        self._reschedule()

    # -- interrupts and the next event --------------------------------------------
    def _update_irq(self) -> None:
        """The one place the interrupt outputs are decided."""
        # SR flags sit at the positions of their DIER enables (UIF/UIE, CCxIF/CCxIE ...).
        pending = self.values[SR] & self.values[DIER]
        if pending == self._irq_pending:
            return              # the outputs already show these flags
        self._irq_pending = pending
        up, cc = bool(pending & self.bits.up_m), bool(pending & self.bits.cc_m)
        brk, trg_com = bool(pending & self.bits.brk_m), bool(pending & self.bits.trg_com_m)
        if self.irq is not None:
            self.irq.set(up or cc or brk or trg_com)
        for out, level in ((self.irq_up, up), (self.irq_cc, cc), (self.irq_brk, brk),
                           (self.irq_trg_com, trg_com)):
            if out is not None:
                out.set(level)

    def _wanted(self) -> tuple[bool, frozenset[int]]:
        """Which events someone would notice now: (update, compare channels)."""
        key = (self.values[DIER], self.values[SR])
        wanted = self._wants.get(key)
        if wanted is None:
            if len(self._wants) >= _SEGMENTS:
                self._wants.clear()
            wanted = self._wants[key] = self._wanted_by(*key)
        return wanted

    def _wanted_by(self, dier: int, sr: int) -> tuple[bool, frozenset[int]]:
        """What ``_wanted`` answers for these DIER and SR words, computed."""
        want_up = bool(dier & self.bits.ude_m or (dier & self.bits.uie_m and not sr & self.bits.up_m))
        chans = frozenset(ch for ch, (ie, de, flag) in enumerate(self.bits.cc_wanted)
                          if dier & de or (dier & ie and not sr & flag))
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
            hit: int | None = None     # the first wanted match after now
            for t, ch in seg.matches:
                if ch in chans:
                    at = run.anchor + t * run.period
                    if at > now and (hit is None or at < hit):
                        hit = at
            if hit is not None:
                return hit if later_update is None or hit < later_update else later_update
            if later_update is not None:
                return later_update
            end = run.anchor + seg.ticks * run.period
            nxt, uev = self._finish(run, seg)
            if uev and want_up:
                return end
            if (not uev and seg.overflow and want_up and run.rep > 0
                    and not self.values[CR1] & self.bits.udis_m):
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
        line_at = self._line_at
        if line_at is not None:
            if when is not None and self._only_raises_irq() and line_at.arm(when):
                if self._event is not None:
                    self._event.cancel()
                    self._event = None
                return
            line_at.cancel()
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
        self._settled = True

    def _only_raises_irq(self) -> bool:
        """Whether the next event would do nothing but raise ``irq`` (its flag is brought
        up to date lazily anyway): one source wanted, by its interrupt enable alone (no
        DMA request), a read seeing the state at its own instruction (exact timing).
        Its flag set, nothing is wanted any more: no event follows it."""
        if not self.clock.exact_reads or self.irq_up is not None or self.irq_cc is not None:
            return False
        dier = self.values[DIER]
        if dier & self.bits.dma_m:
            return False
        want_up, chans = self._wanted()
        return want_up + len(chans) == 1

    def _catch_up_line(self) -> None:
        """Before an access: the line armed (``_line_at``) went up if its cycle came."""
        assert self._line_at is not None
        if self._line_at.due(self.clock.cycles):
            self._line_raised()

    def _line_raised(self) -> None:
        """The event raised ``irq`` at its cycle without stopping the CPU (``LineAtCycle``):
        what it would have done then, now (flags at their cycles, the line already up)."""
        assert self._line_at is not None
        self._line_at.fired(self.clock.cycles)
        self._on_event()

    # -- the compare path kept in C (sim/timer_native.py, sim/native/tim.c) -----------
    def attach_native(self, make: Callable[[], TimerState | None]) -> None:
        """Hand C the compare path whenever the state is one C keeps: ``make`` registers
        the native handler on first use (None when it cannot)."""
        self._make_native = make

    def take_back(self) -> None:
        """Bring the model up to what C did (the run's end, an inspection)."""
        if self._held:
            self._take_back()

    def _native_dirty(self) -> bool:
        assert self._native is not None
        return bool(self._native.dirty)

    def _take_back(self) -> None:
        """C no longer keeps the state; the model takes what C did to it: SR, CCRx, the
        flags seen up to, the interrupt output and line, the line armed."""
        st = self._native
        assert st is not None and self._line_at is not None
        st.active = 0
        self._held = False
        if not st.dirty:
            return
        st.dirty = 0
        v, run = self.values, self._run
        v[SR] = st.sr
        for ch, off in enumerate(self.bits.ccr_at):
            v[off] = st.ccr[ch]
        run.ccr = tuple(st.active_ccr[:len(run.ccr)])
        self._seen = st.seen
        self._quiet_until = 0        # found again from ``_seen`` at the next look
        self._settled = bool(st.settled)
        self._irq_pending = -1 if st.irq_pending == 0xFFFF_FFFF else st.irq_pending
        irq: Any = self.irq
        irq.level = bool(st.in_level)
        keeper = self._line_at.keeper()
        assert keeper is not None
        keeper[1].level = bool(st.line_level)
        self._line_at.adopt(None if st.line_when == _NONE_CYCLE else st.line_when)

    def _offer(self) -> None:
        """After a Python access: hand C the state if C keeps it as this model would
        (see sim/native/tim.c): counting up within the stretch to the next wrap, the
        next stretches alike, every channel in output compare, the channels with an
        interrupt enabled without preload, no DMA request or update interrupt, the
        interrupt the sole source of its line, raised at a cycle (``LineAtCycle``)."""
        line_at, run, v, b = self._line_at, self._run, self.values, self.bits
        keeper = line_at.keeper() if line_at is not None else None
        if (keeper is None or self._event is not None or self.trace is not None
                or not run.running or run.down or run.arr == 0 or not self.clock.exact_reads
                or self.irq_up is not None or self.irq_cc is not None
                or self.irq_brk is not None or self.irq_trg_com is not None
                or not hasattr(self.irq, "level") or len(self._oc) != self.kind.channels
                or v[CR1] & b.cms_m or v[DIER] & (b.dma_m | b.uie_m)
                or (b.slave_at is not None and v[b.slave_at[0]] & b.slave_at[1])):
            return
        take = 0
        for ch, (pe_off, pe) in enumerate(b.ocpe_at):
            if not v[pe_off] & pe:
                take |= 1 << ch
        for ch, (ie, _, _) in enumerate(b.cc_wanted):
            if v[DIER] & ie and not take >> ch & 1:
                return
        regs = self._regs
        if regs[SR].tag_mask or regs[DIER].tag_mask or any(regs[o].tag_mask for o in b.ccr_at):
            return
        seg = self._segment(run)
        now = self.clock.cycles
        if seg is None or run.anchor + seg.ticks * run.period <= now or self._seen != now:
            return
        nxt, _ = self._finish(run, seg)
        after = nxt.running and nxt.arr != 0
        if after:    # the stretch after the next wrap must be the one after that too
            seg2 = self._segment(nxt)
            assert seg2 is not None
            nxt2, _ = self._finish(nxt, seg2)
            if (nxt2.running, nxt2.arr, nxt2.period, nxt.cnt, nxt2.cnt) != \
                    (True, nxt.arr, nxt.period, 0, 0):
                return
        st = self._native
        if st is None:
            st = self._native = self._make_native() if self._make_native else None
            if st is None:
                self._make_native = None
                return
            self._static_native(st)
        slot, line = keeper
        st.slot, st.exc = slot, line.irq + 16    # IRQ n is exception 16 + n
        st.seen, st.anchor, st.period, st.cnt = now, run.anchor, run.period, run.cnt
        st.wrap = run.anchor + seg.ticks * run.period
        st.top = run.arr if run.cnt <= run.arr else self._max
        st.arr2, st.period2, st.after = nxt.arr, nxt.period, int(after)
        st.settled, st.sr, st.dier = int(self._settled), v[SR], v[DIER]
        st.irq_pending = self._irq_pending & 0xFFFF_FFFF
        irq: Any = self.irq
        st.in_level, st.line_level = int(irq.level), int(line.level)
        assert line_at is not None
        st.line_when = _NONE_CYCLE if line_at.when is None else line_at.when
        st.oc = sum(1 << ch for ch in self._oc)
        st.take = take
        for ch, off in enumerate(b.ccr_at):
            st.ccr[ch] = v[off]
            st.active_ccr[ch] = run.ccr[ch]
        st.dirty = 0
        st.active = 1
        self._held = True
        self._handed_at = now

    def _static_native(self, st: TimerState) -> None:
        """What does not change: offsets and masks from the register declarations."""
        b, regs = self.bits, self._regs
        st.sr_flags, st.dier_rw = b.sr_flags_m, b.dier_m
        st.ccr_mask = regs[b.ccr_at[0]].rw_mask if b.ccr_at else 0
        st.irq_mask = b.up_m | b.cc_m | b.brk_m | b.trg_com_m
        st.uie, st.uif, st.ude = b.uie_m, b.up_m, b.ude_m
        st.n_channels = len(b.ccr_at)
        for ch, (ie, _, flag) in enumerate(b.cc_wanted):
            st.ie[ch], st.flag[ch] = ie, flag
        st.sr_off, st.dier_off = SR, DIER
        for ch, off in enumerate(b.ccr_at):
            st.ccr_off[ch] = off
