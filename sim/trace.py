"""Pin traces: what the board's pins and console did, on the virtual time axis, as VCD.

A :class:`PinRecorder` listens to what already exists for observing a board (each
GPIO port's ``on_output`` listeners, the console bytes the machine hands out) and
keeps every change with its virtual time. At the end of a run :meth:`write_vcd`
writes them as a Value Change Dump (IEEE 1364), the format GTKWave and Surfer open,
through ``pyvcd``.

Why record first and write at the end: a VCD declares its signals before the first
change, and the default selection is "the LEDs and every pin the firmware configures
as output", which is only known once it did. Memory is bounded by the size cap: a
change costs at least three bytes of VCD, so no more than ``cap // 3`` are kept.

Signals are named by the board: a pin by its name (``PA5``), an LED also by its
label (``LD2``, the same wire: one VCD identifier, two names), the console's transmit
line by its UART (``USART2_TX``), an 8-bit vector that holds each byte over the
frame that carried it and is ``z`` while the line idles (a nanosecond of ``z``
between back-to-back frames keeps equal bytes apart).
"""
from __future__ import annotations

import re
from array import array
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import IO, Any, cast

from vcd import VCDWriter

from .boards.spec import BoardSpec
from .vclock import PS_PER_S

#: VCD time unit: 1 ns (a 72 MHz core cycle is 13.9 ns).
PS_PER_UNIT = 1000
TIMESCALE = "1 ns"
#: What the UART vector holds while its line idles.
IDLE = 0xFFFF
#: A VCD value change is at least "1!\n": the bound on changes a cap can hold.
MIN_CHANGE_BYTES = 3
#: Room kept below the cap for the truncation comment and the last timestamp.
TAIL_BYTES = 256

_PIN = re.compile(r"^P([A-Z])(\d{1,2})$")


class UnknownSignal(ValueError):
    """A traced signal the board does not have; the message lists what it has."""


@dataclass(frozen=True)
class Signal:
    """One traced signal: a pin (``port``/``pin``) or a UART's transmit line."""

    name: str
    port: str = ""
    pin: int = -1
    uart: str = ""
    #: Other names of the same wire (an LED's label).
    aliases: tuple[str, ...] = ()


def board_signals(board: BoardSpec) -> dict[str, Signal]:
    """Every signal the board can trace, by each of its names."""
    leds = {(led.port, led.pin): led.name for led in board.leds}
    signals: dict[str, Signal] = {}
    for p in board.soc.peripherals:
        if p.name.startswith("GPIO"):
            for pin in range(16):
                name = f"P{p.name[-1]}{pin}"
                label = leds.get((p.name, pin))
                sig = Signal(name, p.name, pin, aliases=(label,) if label else ())
                signals[name] = sig
                if label:
                    signals[label] = sig
        elif p.model.endswith(":Usart"):
            signals[f"{p.name}_TX"] = Signal(f"{p.name}_TX", uart=p.name)
    return signals


def select(board: BoardSpec, names: Iterable[str] | None) -> tuple[list[Signal], bool]:
    """The signals ``names`` asks for, and whether outputs appearing later are added
    (the default, ``names`` None or empty: the LEDs, the console's TX and every pin
    the firmware configures as output). ``UnknownSignal`` names what the board has."""
    known = board_signals(board)
    wanted = [n.strip().upper() for n in names or () if n.strip()]
    if not wanted:
        chosen = [known[led.name] for led in board.leds]
        chosen.append(known[f"{board.console}_TX"])
        return chosen, True
    chosen, seen = [], set()
    for name in wanted:
        sig = known.get(name) or next((s for k, s in known.items() if k.upper() == name), None)
        if sig is None:
            raise UnknownSignal(
                f"{board.name} has no signal {name!r}: give LEDs "
                f"({', '.join(led.name for led in board.leds) or 'none'}), pins "
                "(PA0 ... PF15) or a UART's TX line (USART2_TX)")
        if sig.name not in seen:
            seen.add(sig.name)
            chosen.append(sig)
    return chosen, False


class PinRecorder:
    """Records the changes of chosen signals of one machine, bounded by ``cap_bytes``.

    ``machine`` is a ``hwut.sim.machine.Machine`` (typed loosely: the recorder needs its
    ``board``, ``clock`` and ``peripherals`` only). Call :meth:`uart` with what the
    machine's ``uart_out`` receives; GPIO outputs are watched by the recorder itself.
    """

    def __init__(self, machine: Any, names: Iterable[str] | None = None, *,
                 cap_bytes: int = 8 * 1024 * 1024) -> None:
        self.machine = machine
        self.clock = machine.clock
        self.cap_bytes = cap_bytes
        chosen, self.auto = select(machine.board, names)
        self.signals: list[Signal] = []
        self._index: dict[tuple[str, int], int] = {}
        self._uarts: dict[str, int] = {}
        self._known = board_signals(machine.board)
        for sig in chosen:
            self._add(sig)
        self.times = array("q")
        self.which = array("H")
        self.values = array("H")
        self.max_changes = max(0, cap_bytes // MIN_CHANGE_BYTES)
        #: Virtual time (ps) of the first change not kept for lack of room, if any.
        self.dropped_at_ps: int | None = None
        ports = {p.name for p in machine.board.soc.peripherals if p.name.startswith("GPIO")}
        for port in sorted(ports):
            if self.auto or any(s.port == port for s in self.signals):
                machine.peripherals[port].on_output(self._gpio_listener(port))

    def _add(self, sig: Signal) -> int:
        self.signals.append(sig)
        number = len(self.signals) - 1
        if sig.uart:
            self._uarts[sig.uart] = number
        else:
            self._index[(sig.port, sig.pin)] = number
        return number

    def _gpio_listener(self, port: str) -> Callable[[int, int], None]:
        def changed(pin: int, level: int) -> None:
            number = self._index.get((port, pin))
            if number is None:
                if not self.auto:
                    return
                number = self._add(self._known[f"P{port[-1]}{pin}"])
            self._keep(self.clock.now_ps(), number, 1 if level else 0)
        return changed

    def uart(self, name: str, data: bytes) -> None:
        """Bytes a UART finished sending (the machine's ``uart_out``); each is drawn over
        its frame, which ended now."""
        number = self._uarts.get(name)
        if number is None:
            return
        end = self.clock.now_ps()
        frame = self._frame_ps(name)
        for i, byte in enumerate(data):
            stop = end - (len(data) - 1 - i) * frame
            self._keep(max(0, stop - frame), number, byte)
            self._keep(max(0, stop - PS_PER_UNIT), number, IDLE)

    def _frame_ps(self, name: str) -> int:
        """How long one frame of ``name`` lasts now (0 when the model cannot tell)."""
        try:
            cycles = int(self.machine.peripherals[name].char_cycles())
            return cycles * PS_PER_S // max(1, int(self.clock.hz))
        except (AttributeError, KeyError, TypeError, ValueError):
            return 0

    def _keep(self, at_ps: int, number: int, value: int) -> None:
        if len(self.times) >= self.max_changes:
            if self.dropped_at_ps is None:
                self.dropped_at_ps = at_ps
            return
        self.times.append(at_ps)
        self.which.append(number)
        self.values.append(value)

    # -- output ----------------------------------------------------------------------
    def write_vcd(self, sink: Callable[[bytes], None], end_ps: int | None = None) -> VcdResult:
        """Write the trace as VCD into ``sink`` (bytes, in pieces), at most ``cap_bytes``;
        past the cap, the changes that fit and a comment that says where it was cut."""
        end = self.clock.now_ps() if end_ps is None else end_ps
        out = _CappedText(sink, max(0, self.cap_bytes - TAIL_BYTES))
        order = sorted(range(len(self.times)), key=self.times.__getitem__)
        # pyvcd needs only write() of a text file: _CappedText has it
        with VCDWriter(cast(IO[str], out), timescale=TIMESCALE, date="virtual time of the run",
                       version="hwut pin trace") as writer:
            variables: list[Any] = []
            for sig in self.signals:
                if sig.uart:
                    var = writer.register_var("board", sig.name, "wire", size=8, init="z")
                else:
                    var = writer.register_var("board", sig.name, "wire", size=1, init="x")
                    for alias in sig.aliases:
                        writer.register_alias("board", alias, var)
                variables.append(var)
            cut_at: int | None = None
            for i in order:
                at = self.times[i] // PS_PER_UNIT
                number, value = self.which[i], self.values[i]
                if self.signals[number].uart and value == IDLE:
                    writer.change(variables[number], at, "z")
                else:
                    writer.change(variables[number], at, value)
                if out.full:
                    cut_at = self.times[i]
                    break
            out.unlimited()
            if cut_at is None and self.dropped_at_ps is not None:
                cut_at = self.dropped_at_ps
            if cut_at is not None:
                out.write(f"$comment trace cut at {cut_at / PS_PER_S:.9f} s: it reached its "
                          f"limit of {self.cap_bytes} bytes $end\n")
                end = cut_at
            last = max(end // PS_PER_UNIT, writer._timestamp)  # pyvcd has no public getter
            writer.close(last)
        return VcdResult(bytes_written=out.total, changes=len(self.times),
                         truncated_at_s=None if cut_at is None else cut_at / PS_PER_S,
                         signals=tuple(s.name for s in self.signals))


@dataclass(frozen=True)
class VcdResult:
    bytes_written: int
    changes: int
    #: Virtual time the trace was cut at for lack of room; None when it is whole.
    truncated_at_s: float | None
    signals: tuple[str, ...]


class _CappedText:
    """A text file for pyvcd that passes bytes on until ``cap`` would be passed; from
    then on it drops writes and says ``full``. pyvcd writes a change with its
    timestamp in one call, so what was passed on ends on a whole line."""

    def __init__(self, sink: Callable[[bytes], None], cap: int) -> None:
        self.sink, self.cap = sink, cap
        self.total = 0
        self.full = False
        self._limited = True

    def write(self, text: str) -> int:
        data = text.encode()
        if self.full and self._limited:
            return len(text)
        if self._limited and self.total + len(data) > self.cap:
            self.full = True
            return len(text)
        self.sink(data)
        self.total += len(data)
        return len(text)

    def unlimited(self) -> None:
        """Let the closing lines through (they fit in the room kept below the cap)."""
        self._limited = False

    def flush(self) -> None:
        pass
