"""The sim's board and SoC data in the backend contract's terms (``BoardInfo``).

Both emulator backends run the boards described in ``hwut.sim`` (our model and
the Renode platform files agree with it; tests hold them to it), so both derive
what the service checks and shows from the same specs. What differs between
them is only what they can do (console input, scripted presses).
"""
from __future__ import annotations

from hwut.sim.boards import BOARDS, BoardSpec
from hwut.sim.soc.spec import SocSpec

from .base import BoardInfo, MemoryMap, MemoryRegion, Microcontroller, PinDefault

#: SoC memories a program may use as RAM (its stack, data): by the spec's names.
RAM_NAMES = ("sram", "ccmram")


def core_name(cpu: str) -> str:
    """``cortex-m4f`` -> ``Cortex-M4F`` (how datasheets spell it)."""
    family, _, model = cpu.partition("-")
    return f"{family.capitalize()}-{model.upper()}" if model else cpu


def microcontroller(soc: SocSpec) -> Microcontroller:
    flash = soc.memory("flash")
    rams = tuple(MemoryRegion(m.name, m.base, m.size) for name in RAM_NAMES
                 for m in soc.memories if m.name == name)
    return Microcontroller(name=soc.name, manufacturer=soc.manufacturer, core=core_name(soc.cpu),
                           flash=MemoryRegion(flash.name, flash.base, flash.size), ram=rams,
                           max_clock_hz=soc.max_hz)


def memory_map(soc: SocSpec) -> MemoryMap:
    """Flash (with its aliases) and the RAMs: where an image may load; BIN at flash."""
    flash = soc.memory("flash")
    rams = tuple((m.base, m.size) for m in soc.memories if m.name in RAM_NAMES)
    regions = ((flash.base, flash.size), *((a, flash.size) for a in flash.aliases), *rams)
    return MemoryMap(regions=tuple(sorted(regions)), ram=rams, bin_base=flash.base)


def pin_defaults(spec: BoardSpec) -> tuple[PinDefault, ...]:
    """Every pin of the board's SoC ("PA0" ... in port order) with what it reads while
    nothing drives it: the board's pulls and drivers, its buttons' idle levels, else
    the board's floating level (a pin's own pull-up/down, when the firmware sets one,
    wins over floating)."""
    ports = sorted(p.name for p in spec.soc.peripherals if p.name.startswith("GPIO"))
    wired = {(w.port, w.pin): w for w in spec.pins}
    buttons = {(b.port, b.pin): b for b in spec.buttons}
    out = []
    for port in ports:
        for number in range(16):
            name = f"P{port[-1]}{number}"
            if (port, number) in wired:
                w = wired[port, number]
                out.append(PinDefault(name, w.level, "board", w.why))
            elif (port, number) in buttons:
                b = buttons[port, number]
                out.append(PinDefault(name, b.idle_level, "button",
                                      f"button {b.name} released"))
            else:
                out.append(PinDefault(name, spec.floating_level, "floating",
                                      "nothing on the board drives or pulls it"))
    return tuple(out)


def board_info(spec: BoardSpec, *, name: str | None = None, console_input: bool,
               presses: bool, drive_pins: bool = False, live_input: bool = False,
               live_presses: bool = False, backend: str = "") -> BoardInfo:
    """``spec`` as the service sees it; ``name`` when the server's board goes by another.
    ``live_*``: what the backend takes while a job runs (POST /jobs/{id}/input)."""
    return BoardInfo(name=name or spec.name, microcontroller=microcontroller(spec.soc),
                     memory=memory_map(spec.soc), buttons=tuple(b.name for b in spec.buttons),
                     leds=tuple(led.name for led in spec.leds), console=spec.console,
                     console_input=console_input, presses=presses,
                     live_input=live_input, live_presses=live_presses, backend=backend,
                     manufacturer=spec.manufacturer, pin_defaults=pin_defaults(spec),
                     drive_pins=drive_pins)


def find(name: str) -> BoardSpec | None:
    return BOARDS.get(name)
