"""ADC of the STM32F303 (RM0316 section 15): the handshakes HAL waits on, and conversions.

HAL's ADC code waits for ADCAL to clear after calibration, for ADRDY after
ADEN, and for EOC/EOS after ADSTART; a register that merely reads back what
was written hangs those loops. This model answers them with the timing of the
chip (conversion = sampling time + 12.5 ADC clock cycles) and converts the
values a board setting gives per channel (12-bit, right-aligned by default).

A conversion's end is a clock event only when something outside the ADC must
see it on time: an interrupt enabled in IER, or a DMA request. Otherwise
nothing can tell it happened until firmware or a debugger reads the ADC, so
it is due at its cycle and brought up to date at the next access (conversions
chained in continuous mode each at its own cycle): the same registers at
every access, without ending the CPU's run for each conversion (Mbed's
AnalogIn polls EOC some 5000 times a second).

Where its state is one C can keep exactly (``native_plan``), the model hands
it to a native handler (sim/native/adc.c, ``sim.adc_native``) that takes the
ADSTART writes and the ISR, CR and DR reads itself; every access that reaches
this model takes the state back first (``_pull``). This model stays the
reference (``Machine(native_adc=False)``).
"""
from __future__ import annotations

from collections.abc import Callable, Mapping
from types import MappingProxyType
from typing import NamedTuple, Protocol

from hwut.sim.regs import STABLE, Access, Field, Peripheral, Register, flags
from hwut.sim.signals import ClockTree
from hwut.sim.vclock import Event, VirtualClock

from .irq import IrqOut, NoIrq

ISR, IER, CR, CFGR, SMPR1, SMPR2, TR1, TR2, TR3 = (
    0x00, 0x04, 0x08, 0x0C, 0x14, 0x18, 0x20, 0x24, 0x28)
SQR = (0x30, 0x34, 0x38, 0x3C)
DR, JSQR, CALFACT = 0x40, 0x4C, 0xB4
#: Sampling times in half ADC clock cycles, by SMPx code (1.5 .. 601.5 cycles).
_SAMPLE_HALF = (3, 5, 9, 15, 39, 123, 363, 1203)
#: Calibration takes 112 ADC clock cycles (RM0316: tCAL).
CAL_CYCLES = 112
#: CR bits whose write C leaves to this model (``native_plan``): calibration,
#: disabling, stopping, injected conversions.
NATIVE_REFUSED = ("ADCAL", "ADDIS", "ADSTP", "JADSTART", "JADSTP")


class NativePlan(NamedTuple):
    """The state an ADC hands the native handler (sim/native/adc.c, ``sim.adc_native``),
    which keeps it exactly until the model takes it back: the registers' words, the
    conversion going on, and what the next conversions give and take."""
    isr: int
    cr: int
    data: int
    #: The end cycle of the conversion going on, or None.
    due: int | None
    #: The rank of that conversion in the regular sequence (0: the first).
    rank: int
    #: Each rank's conversion, in core cycles.
    lengths: tuple[int, ...]
    #: Each rank's DR data (the input's value, resolution and alignment applied).
    values: tuple[int, ...]
    ovrmod: bool
    #: C takes accesses only before this cycle: the input holds its value until then.
    until: int


class NativeLink(Protocol):
    """What keeps an ADC's state in C while the model has handed it over."""

    #: The state is in C now (taking it back moves it here: ``withdraw``).
    handed: bool

    def withdraw(self) -> None: ...


class AdcCommon(Peripheral):
    """ADC12_COMMON / ADC34_COMMON: CCR holds the clock mode the instances use."""

    size = 0x100

    def __init__(self, name: str, base: int, *, note: Callable[[str], None] | None = None) -> None:
        self._listeners: list[Callable[[], None]] = []
        super().__init__(name, base, note=note)

    def on_change(self, listener: Callable[[], None]) -> None:
        """``listener()`` before each write (the clock mode the instances' timing uses)."""
        self._listeners.append(listener)

    def write(self, offset: int, size: int, value: int) -> None:
        for listener in self._listeners:
            listener()
        super().write(offset, size, value)

    def reset(self) -> None:
        for listener in self._listeners:
            listener()
        super().reset()

    def registers(self) -> list[Register]:
        return [
            Register("CSR", 0x00, fields=(Field("FLAGS", 0, 32, Access.RO),), tagged=True),
            Register("CCR", 0x08, fields=(
                Field("MULT", 0, 5), Field("DELAY", 8, 4), Field("DMACFG", 13),
                Field("MDMA", 14, 2), Field("CKMODE", 16, 2), Field("VREFEN", 22),
                Field("TSEN", 23), Field("VBATEN", 24))),
            Register("CDR", 0x0C, fields=(Field("RDATA", 0, 32, Access.RO),), tagged=True),
        ]

    def ckmode(self) -> int:
        return self.regs["CCR"]["CKMODE"].value


class _Bits:
    """The fields a conversion's paths use, found once by name: ``reg["NAME"]`` is a
    lookup, and these run at every conversion (Mbed's AnalogIn makes ~5000 a second)."""

    __slots__ = ("adrdy", "eosmp", "eoc", "eos", "ovr", "aden", "addis", "adstart", "adstp",
                 "adcal", "res", "align", "ovrmod", "cont", "dmaen", "length", "sq", "smp")
    adrdy: Field
    eosmp: Field
    eoc: Field
    eos: Field
    ovr: Field
    aden: Field
    addis: Field
    adstart: Field
    adstp: Field
    adcal: Field
    res: Field
    align: Field
    ovrmod: Field
    cont: Field
    dmaen: Field
    #: SQR1.L, and SQ1..SQ16 in rank order.
    length: Field
    sq: tuple[Field, ...]
    #: SMPx by channel (channels 1..18).
    smp: dict[int, Field]


class Adc(Peripheral):
    """One ADC instance; ``channel_values`` maps channel number to a 12-bit reading."""

    size = 0x100

    def __init__(self, name: str, base: int, *, clock: VirtualClock, clocks: ClockTree,
                 note: Callable[[str], None] | None = None, irq: IrqOut | None = None,
                 common: AdcCommon | None = None, clock_name: str = "ADC12CLK",
                 channel_values: Mapping[int, int] | None = None,
                 dma_request: Callable[[], None] | None = None) -> None:
        self.clock = clock
        self.clocks = clocks
        self.irq = irq or NoIrq()
        self.common = common
        #: Asynchronous kernel clock name (RCC publishes ADC12CLK / ADC34CLK).
        self.clock_name = clock_name
        #: The analog inputs by channel (12-bit readings): board data, or ``set_input``.
        self._inputs: dict[int, int] = dict(channel_values or {})
        #: While set and ``handed``, C keeps ISR, CR, DR's data and the conversion going
        #: on (``native_plan``); every access from Python takes them back first.
        self.native_link: NativeLink | None = None
        self.dma_request = dma_request
        self._event: Event | None = None
        #: A conversion that ends unseen (no interrupt, no DMA): its end cycle and
        #: channel, brought up to date at the next access (``_catch_up``).
        self._due: tuple[int, int] | None = None
        self._rank = 0
        self._data = 0
        self._calibrating = False
        super().__init__(name, base, note=note)
        # what C keeps depends on the clocks (a conversion's length): it is taken back
        # when they change, and handed again at the next access
        clocks.subscribe(self._pull)
        if common is not None:
            common.on_change(self._pull)
        f = self.bits = _Bits()
        f.adrdy, f.eosmp, f.eoc, f.eos, f.ovr = (
            self.isr[n] for n in ("ADRDY", "EOSMP", "EOC", "EOS", "OVR"))
        f.aden, f.addis, f.adstart, f.adstp, f.adcal = (
            self.cr[n] for n in ("ADEN", "ADDIS", "ADSTART", "ADSTP", "ADCAL"))
        f.res, f.align, f.ovrmod, f.cont, f.dmaen = (
            self.cfgr[n] for n in ("RES", "ALIGN", "OVRMOD", "CONT", "DMAEN"))
        f.length = self.sqr[0]["L"]
        f.sq = tuple(self.sqr[(rank + 1) // 5][f"SQ{rank + 1}"] for rank in range(16))
        f.smp = {ch: smpr[f"SMP{ch}"] for ch, smpr in
                 ((ch, self.smpr[0] if ch < 10 else self.smpr[1]) for ch in range(1, 19))}

    def registers(self) -> list[Register]:
        isr_names = ("ADRDY", "EOSMP", "EOC", "EOS", "OVR", "JEOC", "JEOS", "AWD1", "AWD2",
                     "AWD3", "JQOVF")
        sq = [Register("SQR1", SQR[0], fields=(Field("L", 0, 4),) + tuple(
            Field(f"SQ{i + 1}", 6 + 6 * i, 5) for i in range(4)))]
        sq += [Register(f"SQR{n + 2}", SQR[n + 1], fields=tuple(
            Field(f"SQ{5 + 5 * n + i}", 6 * i, 5) for i in range(5 if n < 2 else 2)))
            for n in range(3)]
        smp = [Field(f"SMP{ch}", 3 * (ch % 10), 3) for ch in range(1, 10)]
        self.isr = Register("ISR", ISR, fields=flags(*isr_names, access=Access.RC_W1),
                            on_write=lambda old, new: self._update_irq())
        self.ier = Register("IER", IER, fields=flags(*(n + "IE" for n in isr_names)),
                            on_write=lambda old, new: self._update_irq())
        self.cr = Register("CR", CR, reset=0x2000_0000, fields=(
            Field("ADEN", 0, access=Access.RS), Field("ADDIS", 1, access=Access.RS),
            Field("ADSTART", 2, access=Access.RS), Field("JADSTART", 3, access=Access.RS),
            Field("ADSTP", 4, access=Access.RS), Field("JADSTP", 5, access=Access.RS),
            Field("ADVREGEN", 28, 2), Field("ADCALDIF", 30),
            Field("ADCAL", 31, access=Access.RS)),
            on_write=self._cr_written)
        self.cfgr = Register("CFGR", CFGR, fields=(
            Field("DMAEN", 0), Field("DMACFG", 1), Field("RES", 3, 2), Field("ALIGN", 5),
            Field("EXTSEL", 6, 4), Field("EXTEN", 10, 2), Field("OVRMOD", 12),
            Field("CONT", 13), Field("AUTDLY", 14), Field("DISCEN", 16),
            Field("DISCNUM", 17, 3), Field("JDISCEN", 20), Field("JQM", 21),
            Field("AWD1SGL", 22), Field("AWD1EN", 23), Field("JAWD1EN", 24),
            Field("JAUTO", 25), Field("AWD1CH", 26, 5)))
        self.calfact = Register("CALFACT", CALFACT, fields=(
            Field("CALFACT_S", 0, 7), Field("CALFACT_D", 16, 7)))
        self.sqr = sq
        self.smpr = (Register("SMPR1", SMPR1, fields=smp),
                     Register("SMPR2", SMPR2, fields=[Field(f"SMP{ch}", 3 * (ch - 10), 3)
                                                      for ch in range(10, 19)]))

        def thresholds(name: str, off: int, bits: int) -> Register:
            return Register(name, off, reset=((1 << bits) - 1) << 16, fields=(
                Field("LT", 0, bits), Field("HT", 16, bits)), tagged=True)

        return [
            self.isr, self.ier, self.cr, self.cfgr, *self.smpr,
            thresholds("TR1", TR1, 12), thresholds("TR2", TR2, 8), thresholds("TR3", TR3, 8),
            *sq,
            Register("DR", DR, fields=(Field("RDATA", 0, 16, Access.RO),), on_read=self._dr_read),
            Register("JSQR", JSQR, fields=(
                Field("JL", 0, 2), Field("JEXTSEL", 2, 4), Field("JEXTEN", 6, 2),
                *(Field(f"JSQ{i + 1}", 8 + 6 * i, 5) for i in range(4))), tagged=True),
            *(Register(f"OFR{i + 1}", 0x60 + 4 * i, fields=(
                Field("OFFSET", 0, 12), Field("CH", 26, 5), Field("EN", 31)), tagged=True)
              for i in range(4)),
            *(Register(f"JDR{i + 1}", 0x80 + 4 * i, fields=(Field("JDATA", 0, 16, Access.RO),))
              for i in range(4)),
            Register("AWD2CR", 0xA0, fields=(Field("AWD2CH", 1, 18),), tagged=True),
            Register("AWD3CR", 0xA4, fields=(Field("AWD3CH", 1, 18),), tagged=True),
            Register("DIFSEL", 0xB0, fields=(Field("DIFSEL", 1, 18),)),
            self.calfact,
        ]

    @property
    def channel_values(self) -> Mapping[int, int]:
        """The analog inputs by channel (12-bit readings)."""
        return MappingProxyType(self._inputs)

    def set_input(self, channel: int, value: int) -> None:
        """The analog input of ``channel`` reads ``value`` (12 bits) from now on."""
        self._pull()   # C converts the value it was handed
        self._inputs[channel] = value

    def reset(self) -> None:
        self._pull()
        if self._event is not None:
            self._event.cancel()
            self._event = None
        self._due = None
        self._rank = 0
        self._data = 0
        self._calibrating = False
        super().reset()
        self._update_irq()

    # -- bus side: conversions that ended unseen first --------------------------------
    def read(self, offset: int, size: int) -> int:
        self._catch_up()
        return super().read(offset, size)

    def write(self, offset: int, size: int, value: int) -> None:
        self._catch_up()
        super().write(offset, size, value)
        if self._due is not None and not self._unseen():
            when, channel = self._due   # now someone waits for its end: an event
            self._due = None
            self._event = self.clock.at_cycle(when, lambda: self._converted(channel))

    def stable_until(self, offset: int) -> int | None:
        self._catch_up()
        stable = super().stable_until(offset)
        if stable is None or self._due is None:
            return stable
        return min(stable, self._due[0])

    def step(self, offset: int) -> tuple[int, int] | None:
        """How ISR or CR reads change at the end of a conversion nobody sees end (the
        last of its sequence, single mode), for the machine's read cache: (the first
        cycle a read sees it, the word then), else None. ``_converted`` sets EOSMP,
        EOC, EOS (and OVR over an unread EOC) and clears ADSTART; an instruction reads
        the state before the cycle it runs in (``_catch_up``)."""
        self._pull()
        due = self._due
        if due is None or self.cfgr["CONT"].value or self._rank + 1 < len(self._sequence()):
            return None
        isr = self.isr
        if offset == ISR:
            eoc = isr["EOC"].mask
            ovr = isr["OVR"].mask if isr.value & eoc else 0
            return due[0] + 1, isr.value | isr["EOSMP"].mask | eoc | isr["EOS"].mask | ovr
        if offset == CR:
            return due[0] + 1, self.cr.value & ~self.cr["ADSTART"].mask
        return None

    def read_backs(self, offset: int) -> tuple[tuple[int, int, int, int, int], ...]:
        """After a CR write (ADSTART) or a DR read, how ISR and CR read from now on, for
        the machine's read cache to answer their next reads (Mbed's AnalogIn reads CR
        to set ADSTART, then polls ISR for EOC, then reads DR):
        ((offset, value, step at, value after, until), ...) as ``Timer.read_backs``,
        with ``step``'s word from a conversion's end nobody sees. Empty with DMA (an
        access may then set off a request) or a trace."""
        self._pull()
        if offset not in (CR, DR) or not self.local_effects():
            return ()
        backs = []
        for off in (ISR, CR):
            word, stable = self.plain_word(off), self.stable_until(off)
            if word is None or stable is None:
                continue
            step = self.step(off) if stable < STABLE else None
            if step is not None:
                backs.append((off, word, step[0], step[1], STABLE))
            else:
                backs.append((off, word, stable, word, stable))
        return tuple(backs)

    def local_effects(self) -> bool:
        """Whether an access changes nothing outside this ADC but its interrupt line
        (the read cache then forgets only this ADC's answers after a DR read): no DMA
        request can follow, which is all a conversion ending at an access does besides."""
        return not self.cfgr["DMAEN"].value

    def _unseen(self) -> bool:
        """Nothing outside the ADC sees a conversion end (no interrupt, no DMA), and a
        read sees the state at its own instruction (exact timing; block timing reads at
        the block's end count, so there the end stays an event, as it always was)."""
        return (self.clock.exact_reads and not self.ier.value
                and not self.bits.dmaen.value)

    def _catch_up(self) -> None:
        """Finish the conversions whose event would have fired by now, each at its
        cycle. An event at cycle N fires once instruction N has run: a read by
        instruction N (the count is N while it runs) still sees the conversion going,
        the host reading once the events of cycle N fired does not."""
        self._pull()              # C kept the state: take it back first
        if self._due is None:
            return                # nothing converting unseen (most reads)
        clock = self.clock
        done = max(clock.cycles - 1, clock.settled)
        while self._due is not None and self._due[0] <= done:
            when, channel = self._due
            self._due = None
            self._converted(channel, when)

    # -- timing -------------------------------------------------------------------
    def _core_cycles(self, adc_half_cycles: int) -> int:
        """Core cycles for a number of half ADC clock cycles, from the clock mode."""
        hclk = self.clocks.get("HCLK") or self.clock.hz
        mode = self.common.ckmode() if self.common is not None else 0
        if mode:
            div = (1, 1, 2, 4)[mode]
            return max(1, -(-adc_half_cycles * div // 2))
        adc_hz = self.clocks.get(self.clock_name) or hclk   # no async clock set up: HCLK
        return max(1, -(-adc_half_cycles * hclk // (2 * adc_hz)))

    def _sequence(self) -> list[int]:
        """Channels of the regular sequence, rank 1 first (SQR1.L + 1 of them)."""
        sq = self.bits.sq
        return [sq[rank].value for rank in range(self.bits.length.value + 1)]

    def _conversion_half_cycles(self, channel: int) -> int:
        smp = self.bits.smp.get(channel)     # SMPR1: channels 1-9, SMPR2: 10-18
        code = smp.value if smp is not None else 0
        return _SAMPLE_HALF[code] + 25

    # -- control -----------------------------------------------------------------
    def _cr_written(self, old: int, new: int) -> None:
        f = self.bits
        wrote = new                # the set-only bits as written: what this write asks for
        if wrote & f.adcal.mask and not self._calibrating:
            self._calibrating = True
            self._schedule(self._core_cycles(2 * CAL_CYCLES), self._calibrated)
        if wrote & f.addis.mask and f.aden.value:
            self._stop()
            f.aden.value = f.addis.value = 0
            f.adrdy.value = 0
        elif wrote & f.aden.mask and not f.addis.value:
            f.adrdy.value = 1       # ready at once (tSTAB is below our resolution)
        if wrote & f.adstp.mask:
            self._stop()
            f.adstart.value = f.adstp.value = 0
        elif (wrote & f.adstart.mask and f.aden.value and self._event is None
              and self._due is None):
            self._rank = 0
            self._start_conversion(self.clock.cycles)
        elif wrote & f.adstart.mask and not f.aden.value:
            f.adstart.value = 0     # ignored unless the ADC is enabled
        self._update_irq()

    def _schedule(self, cycles: int, callback: Callable[[], None]) -> None:
        if self._event is not None:
            self._event.cancel()
        self._event = self.clock.after(cycles, callback)

    def _stop(self) -> None:
        self._due = None
        if self._event is not None:
            self._event.cancel()
            self._event = None

    def _calibrated(self) -> None:
        self._event = None
        self._calibrating = False
        self.cr["ADCAL"].value = 0
        self.calfact["CALFACT_S"].value = 0x40

    def _start_conversion(self, start: int) -> None:
        """The next conversion of the sequence, begun at cycle ``start``."""
        chans = self._sequence()
        ch = chans[self._rank % len(chans)]
        end = start + self._core_cycles(self._conversion_half_cycles(ch))
        if self._event is not None:
            self._event.cancel()
            self._event = None
        if self._unseen():
            self._due = (end, ch)
        else:
            self._event = self.clock.at_cycle(end, lambda: self._converted(ch))

    def _converted(self, channel: int, when: int | None = None) -> None:
        """A conversion ended at cycle ``when`` (its event: now)."""
        self._event = None
        f = self.bits
        data = self._conversion_data(channel)
        if f.eoc.value:
            f.ovr.value = 1
            if not f.ovrmod.value:   # keep the old data
                data = self._data
        self._data = data
        f.eosmp.value = f.eoc.value = 1
        if f.dmaen.value and self.dma_request is not None:
            self.dma_request()
        self._rank += 1
        if self._rank >= len(self._sequence()):
            f.eos.value = 1
            self._rank = 0
            if not f.cont.value:
                f.adstart.value = 0
        if f.adstart.value:
            self._start_conversion(self.clock.cycles if when is None else when)
        self._update_irq()

    def _conversion_data(self, channel: int) -> int:
        """DR's data from converting ``channel`` now (resolution and alignment applied)."""
        f = self.bits
        res_bits = 12 - 2 * f.res.value
        raw = (self._inputs.get(channel, 0) & 0xFFF) >> (12 - res_bits)
        return raw << (16 - res_bits) if f.align.value else raw

    # -- the native handler (sim/native/adc.c, sim.adc_native) ---------------------
    def _pull(self) -> None:
        """Take the state back from C where it is (every access from Python does)."""
        link = self.native_link
        if link is not None and link.handed:
            link.withdraw()

    def native_plan(self) -> NativePlan | None:
        """The state to hand the native handler, where it can keep it exactly: the ADC
        enabled or not, its regular sequence converted once per ADSTART (single mode,
        started by software), no DMA, no interrupt enabled, no calibration or stop in
        progress, exact timing, no trace. None elsewhere (this model takes every
        access). Call it with the state here (not handed)."""
        f = self.bits
        if (self.trace is not None or not self.clock.exact_reads or self._event is not None
                or self._calibrating or self.ier.value or f.dmaen.value or f.cont.value
                or self.cr.value & sum(self.cr[name].mask for name in NATIVE_REFUSED)):
            return None
        channels = self._sequence()
        due, rank = self._due, self._rank
        if due is not None and (rank >= len(channels) or due[1] != channels[rank]):
            return None   # the sequence changed under the conversion going on
        return NativePlan(
            isr=self.isr.value, cr=self.cr.value, data=self._data,
            due=None if due is None else due[0], rank=rank,
            lengths=tuple(self._core_cycles(self._conversion_half_cycles(ch))
                          for ch in channels),
            values=tuple(self._conversion_data(ch) for ch in channels),
            ovrmod=bool(f.ovrmod.value), until=STABLE)

    def native_resume(self, isr: int, cr: int, data: int, due: int | None, rank: int) -> None:
        """Take back the state the native handler moved on (``native_plan``)."""
        self.isr.value, self.cr.value, self._data, self._rank = isr, cr, data, rank
        self._due = None if due is None else (due, self._sequence()[rank])

    def _dr_read(self, stored: int) -> int:
        if self.bits.eoc.value:
            self.bits.eoc.value = 0
            self._update_irq()
        return self._data

    def _update_irq(self) -> None:
        # each flag's enable is the IER bit in the same place (RM0316 15.6.2)
        self.irq.set(bool(self.isr.value & self.ier.value & 0x7FF))
