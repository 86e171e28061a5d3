"""Building a SoC's peripherals from its description, by explicit construction.

The SoC description (``spec.SocSpec``) says which model sits where, its
interrupt lines and its per-instance choices (``PeripheralSpec.args``: timer
kind, channel count, clock names, the ADC's common block, EXTI's line → interrupt
map). The board adds its wiring (crystal, pin levels, analog inputs) and the
machine the services a model uses (virtual time, the exception model, the bus,
host channels): :class:`Services`. Each model class has one builder here that calls its
constructor with exactly what it takes, so a new argument is a visible change
in one place rather than a name matched at run time.
"""
from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from ..boards.spec import BoardSpec
from ..peripherals.irq import IrqOr, IrqOut
from ..regs import Peripheral
from .spec import PeripheralSpec


@dataclass(frozen=True)
class Services:
    """What the machine lends the models it builds."""

    clock: Any                     # sim.vclock.VirtualClock
    clocks: Any                    # sim.signals.ClockTree
    exceptions: Any                # sim.core.exceptions.ExceptionModel
    note: Callable[[str], None]
    #: The NVIC input for an interrupt number (one level per number).
    irq_line: Callable[[int], IrqOut]
    #: SYSRESETREQ.
    request_reset: Callable[[], None]
    #: Bytes a serial port sent: (port name, bytes).
    uart_out: Callable[[str, bytes], None]
    #: What the ITM lets through, (port, bytes); None: nobody listens.
    itm_out: Callable[[int, bytes], None] | None
    #: Stimulus ports a debugger's SWV capture enables (0: no debugger).
    swv_ports: int
    #: The flash array as the FLASH interface programs it.
    flash: Any
    #: The bus as a DMA master sees it.
    bus_read: Callable[[int, int], int]
    bus_write: Callable[[int, int, int], None]
    #: Told SCB_CCR after every write (trap hooks depend on it).
    on_ccr: Callable[[int], None]
    #: An EXTI event (wakes WFE), by line.
    on_event: Callable[[int], None]
    #: Told SCB_CPACR after every write and reset (the NOCP trap depends on it).
    on_cpacr: Callable[[int], None] = field(default=lambda cpacr: None)
    #: For a model's interrupt output: a ``sim.signals.LineAtCycle`` that raises it at
    #: a cycle without a clock event (the native hook does), or None (not here).
    line_at_cycle: Callable[[IrqOut], Any] = field(default=lambda out: None)


Built = dict[str, Any]
Builder = Callable[[PeripheralSpec, dict[str, Any], "Context"], Peripheral]


@dataclass
class Context:
    board: BoardSpec
    services: Services
    built: Built


def _control_type(spec: PeripheralSpec, kw: dict[str, Any], ctx: Context) -> Peripheral:
    return _class(spec)(spec.name, spec.base, irq_count=ctx.board.soc.irq_count,
                        note=ctx.services.note, **kw)


def _systick(spec: PeripheralSpec, kw: dict[str, Any], ctx: Context) -> Peripheral:
    s = ctx.services
    return _class(spec)(spec.name, spec.base, clock=s.clock, exceptions=s.exceptions,
                        note=s.note, **kw)


def _nvic(spec: PeripheralSpec, kw: dict[str, Any], ctx: Context) -> Peripheral:
    s = ctx.services
    return _class(spec)(spec.name, spec.base, exceptions=s.exceptions,
                        irq_count=ctx.board.soc.irq_count, note=s.note, **kw)


def _scb(spec: PeripheralSpec, kw: dict[str, Any], ctx: Context) -> Peripheral:
    s = ctx.services
    return _class(spec)(spec.name, spec.base, exceptions=s.exceptions,
                        request_reset=s.request_reset, on_ccr=s.on_ccr,
                        on_cpacr=s.on_cpacr, note=s.note, **kw)


def _core_debug(spec: PeripheralSpec, kw: dict[str, Any], ctx: Context) -> Peripheral:
    return _class(spec)(spec.name, spec.base, swv_ports=ctx.services.swv_ports,
                        note=ctx.services.note, **kw)


def _stir(spec: PeripheralSpec, kw: dict[str, Any], ctx: Context) -> Peripheral:
    return _class(spec)(spec.name, spec.base, exceptions=ctx.services.exceptions,
                        note=ctx.services.note, **kw)


def _dwt(spec: PeripheralSpec, kw: dict[str, Any], ctx: Context) -> Peripheral:
    return _class(spec)(spec.name, spec.base, clock=ctx.services.clock,
                        note=ctx.services.note, **kw)


def _itm(spec: PeripheralSpec, kw: dict[str, Any], ctx: Context) -> Peripheral:
    s = ctx.services
    return _class(spec)(spec.name, spec.base, out=s.itm_out, swv_ports=s.swv_ports,
                        note=s.note, **kw)


def _timed(spec: PeripheralSpec, kw: dict[str, Any], ctx: Context) -> Peripheral:
    """Models that take time and clocks and nothing from the board."""
    s = ctx.services
    return _class(spec)(spec.name, spec.base, clock=s.clock, clocks=s.clocks, note=s.note, **kw)


def _timer(spec: PeripheralSpec, kw: dict[str, Any], ctx: Context) -> Peripheral:
    """A timer, with its single interrupt output raised natively where it can be."""
    s = ctx.services
    irq = kw.get("irq")
    return _class(spec)(spec.name, spec.base, clock=s.clock, clocks=s.clocks, note=s.note,
                        line_at_cycle=None if irq is None else s.line_at_cycle(irq), **kw)


def _plain(spec: PeripheralSpec, kw: dict[str, Any], ctx: Context) -> Peripheral:
    return _class(spec)(spec.name, spec.base, note=ctx.services.note, **kw)


def _rcc(spec: PeripheralSpec, kw: dict[str, Any], ctx: Context) -> Peripheral:
    s = ctx.services
    return _class(spec)(spec.name, spec.base, clock=s.clock, clocks=s.clocks, note=s.note,
                        hse_hz=ctx.board.hse_hz, **kw)


def _usart(spec: PeripheralSpec, kw: dict[str, Any], ctx: Context) -> Peripheral:
    s, name = ctx.services, spec.name
    return _class(spec)(name, spec.base, clock=s.clock, clocks=s.clocks, note=s.note,
                        tx=lambda data: s.uart_out(name, data), **kw)


def _gpio(spec: PeripheralSpec, kw: dict[str, Any], ctx: Context) -> Peripheral:
    s = ctx.services
    return _class(spec)(spec.name, spec.base, clock=s.clock, clocks=s.clocks, note=s.note,
                        external=ctx.board.idle_levels(spec.name),
                        floating_level=ctx.board.floating_level, **kw)


def _adc(spec: PeripheralSpec, kw: dict[str, Any], ctx: Context) -> Peripheral:
    s = ctx.services
    common = kw.pop("common", None)     # the common block's name → the built block
    values = {ch: v for adc, ch, v in ctx.board.analog if adc == spec.name}
    return _class(spec)(spec.name, spec.base, clock=s.clock, clocks=s.clocks, note=s.note,
                        common=ctx.built[common] if common else None,
                        channel_values=values, **kw)


def _dma(spec: PeripheralSpec, kw: dict[str, Any], ctx: Context) -> Peripheral:
    s = ctx.services
    return _class(spec)(spec.name, spec.base, note=s.note, bus_read=s.bus_read,
                        bus_write=s.bus_write, **kw)


def _flash(spec: PeripheralSpec, kw: dict[str, Any], ctx: Context) -> Peripheral:
    flash = ctx.board.soc.memory("flash")
    return _class(spec)(spec.name, spec.base, note=ctx.services.note, memory=ctx.services.flash,
                        flash_base=flash.base, flash_size=flash.size, **kw)


def _exti(spec: PeripheralSpec, kw: dict[str, Any], ctx: Context) -> Peripheral:
    return _class(spec)(spec.name, spec.base, note=ctx.services.note,
                        on_event=ctx.services.on_event, **kw)


#: The builder of each model, by ``PeripheralSpec.model``.
BUILDERS: dict[str, Builder] = {
    "core.nvic:ControlType": _control_type,
    "core.systick:SysTick": _systick,
    "core.nvic:Nvic": _nvic,
    "core.scb:Scb": _scb,
    "core.dwt:CoreDebug": _core_debug,
    "core.nvic:SoftwareTrigger": _stir,
    "core.dwt:Dwt": _dwt,
    "core.itm:Itm": _itm,
    "peripherals.rcc:Rcc": _rcc,
    "peripherals.timer:Timer": _timer,
    "peripherals.adc:AdcCommon": _plain,
    "peripherals.adc:Adc": _adc,
    "peripherals.dma:Dma": _dma,
    "peripherals.bxcan:BxCan": _timed,
    "peripherals.rtc:Rtc": _timed,
    "peripherals.pwr:Pwr": _plain,
    "peripherals.crc:Crc": _plain,
    "peripherals.dbgmcu:Dbgmcu": _plain,
    "peripherals.gpio:GpioPort": _gpio,
    "peripherals.usart:Usart": _usart,
    "peripherals.flash_if:FlashInterface": _flash,
    "peripherals.syscfg:Syscfg": _plain,
    "peripherals.exti:Exti": _exti,
}


def _class(spec: PeripheralSpec) -> type:
    module_name, class_name = spec.model.split(":")
    cls: type = getattr(importlib.import_module(f"{__package__.rsplit('.', 1)[0]}.{module_name}"),
                        class_name)
    return cls


def _irq_args(spec: PeripheralSpec, line: Callable[[int], IrqOut]) -> dict[str, Any]:
    """The spec's interrupt numbers as the outputs the model drives."""
    kw: dict[str, Any] = {}
    for arg, irq in spec.irqs.items():
        if isinstance(irq, int):
            kw[arg] = line(irq)
        elif isinstance(irq, Mapping):
            kw[arg] = {key: line(n) for key, n in irq.items()}
        else:
            kw[arg] = {n: line(n) for n in irq}
    return kw


def build_peripherals(board: BoardSpec, services: Services) -> Built:
    """Every peripheral of ``board``'s SoC, built in the description's order, with
    its interrupt lines and per-instance arguments, then connected by the SoC's
    wiring functions. Lines shared by several sources (TIM1_UP_TIM16 ...) see
    the OR of them."""
    shared: dict[int, IrqOr] = {}

    def line(irq: int) -> IrqOut:
        if irq not in shared:
            shared[irq] = IrqOr(services.irq_line(irq))
        return shared[irq].input()

    ctx = Context(board, services, {})
    for spec in board.soc.peripherals:
        builder = BUILDERS.get(spec.model)
        if builder is None:
            raise KeyError(f"{board.soc.name}: no builder for {spec.model} ({spec.name})")
        kw = {**spec.args, **_irq_args(spec, line)}
        ctx.built[spec.name] = builder(spec, kw, ctx)
    for connect in board.soc.wiring:
        connect(ctx.built)
    return ctx.built
