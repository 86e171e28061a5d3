"""What a pin trace (VCD) says, as numbers CI can check: a pure summary and pin checks.

:func:`summarize` reads a VCD (any, not only ours) with ``pyvcd``'s tokenizer and
gives per signal the number of changes and edges, the first and last change, the
level at the end, and, where the signal is periodic, its frequency and duty cycle.
It depends on nothing but its input, so the job view, a verdict and a test all get
the same numbers.

Pin expectations: a small grammar a verdict criterion can take
(``--expect-pin LD2:toggles:0.9-1.1Hz``), parsed by :func:`parse_expectation` and
checked against a summary by :func:`check`::

    SIGNAL:toggles               it changes level at least twice
    SIGNAL:toggles:LO-HI[Hz|kHz|MHz]
                                 it is periodic at a frequency in [LO, HI]
    SIGNAL:duty:LO-HI%           it is periodic with a duty cycle (high share) in [LO, HI]
    SIGNAL:edges:N | LO-HI       it has N (or LO to HI) edges, rising and falling
    SIGNAL:high | SIGNAL:low     its level at the end of the trace
    SIGNAL:steady                no edge at all (its first level stays)

SIGNAL is a name in the trace (``LD2``, ``PA5``, ``USART2_TX``); a single number
stands for the range of itself (``toggles:2Hz`` is 2 Hz exactly, within 0.1 %).
"""
from __future__ import annotations

import io
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from vcd.reader import TokenKind, VCDParseError, tokenize

#: A signal is periodic when its periods differ from their mean by at most this share.
PERIOD_TOLERANCE = 0.05
#: Periods (rising edge to rising edge) needed before a frequency is claimed.
MIN_PERIODS = 2
_UNIT_S = {"s": 1.0, "ms": 1e-3, "us": 1e-6, "ns": 1e-9, "ps": 1e-12, "fs": 1e-15}


class TraceError(ValueError):
    """A file that cannot be read as VCD; the message says where."""


@dataclass
class _Signal:
    """Running figures of one signal while the VCD is read (O(1) memory per signal)."""

    names: list[str]
    width: int
    value: str = "x"
    changes: int = 0
    rising: int = 0
    falling: int = 0
    first_change: int | None = None
    last_change: int | None = None
    last_rise: int | None = None
    first_rise: int | None = None
    high_since: int | None = None
    #: High time summed over whole periods (first rise to last rise), and period bounds.
    high_in_periods: int = 0
    high_pending: int = 0
    min_period: int | None = None
    max_period: int | None = None
    values: int = 0

    def change(self, at: int, value: str) -> None:
        old, self.value = self.value, value
        if old == value:
            return
        if old == "x" and self.first_change is None and at == 0:
            return  # the initial value ($dumpvars), not a change
        self.changes += 1
        self.first_change = at if self.first_change is None else self.first_change
        self.last_change = at
        if self.width != 1:
            if value not in ("z", "x") and "z" not in value and "x" not in value:
                self.values += 1
            return
        if value == "1":
            if old == "0":
                self.rising += 1
                self._rise(at)
            self.high_since = at
        elif old == "1" and self.high_since is not None:
            if value == "0":
                self.falling += 1
            self.high_pending += at - self.high_since
            self.high_since = None

    def _rise(self, at: int) -> None:
        if self.last_rise is not None:
            period = at - self.last_rise
            self.min_period = period if self.min_period is None else min(self.min_period, period)
            self.max_period = period if self.max_period is None else max(self.max_period, period)
            self.high_in_periods += self.high_pending
        else:
            self.first_rise = at
        self.high_pending = 0
        self.last_rise = at


def summarize(source: bytes | str | Path | IO[bytes]) -> dict[str, Any]:
    """Per-signal figures of a VCD (bytes, a path, or a binary stream).

    Returns ``{"timescale_s", "end_s", "truncated", "signals": {name: {...}}}`` where each
    signal has ``width``, ``changes``, ``edges``, ``rising``, ``falling``,
    ``first_change_s``, ``last_change_s``, ``final`` and, when periodic,
    ``frequency_hz``, ``period_s`` and ``duty_cycle`` (0..1); a vector (a UART's bytes)
    has ``values``: the changes to a defined value. Names sharing one VCD identifier
    (an LED and its pin) get the same figures.
    """
    if isinstance(source, Path):
        with open(source, "rb") as fh:
            return summarize(fh)
    stream: IO[bytes] = io.BytesIO(source.encode() if isinstance(source, str) else source) \
        if isinstance(source, (bytes, str)) else source
    by_id: dict[str, _Signal] = {}
    scale = 1e-9
    now = 0
    truncated = False
    try:
        for token in tokenize(stream):  # type: ignore[arg-type]
            kind, data = token.kind, token.data
            if kind is TokenKind.CHANGE_TIME:
                now = int(data)  # type: ignore[arg-type]
            elif kind is TokenKind.CHANGE_SCALAR or kind is TokenKind.CHANGE_VECTOR:
                sig = by_id.get(data.id_code)  # type: ignore[union-attr]
                if sig is not None:
                    sig.change(now, str(data.value).lower())  # type: ignore[union-attr]
            elif kind is TokenKind.VAR:
                decl = token.var
                if decl.id_code in by_id:
                    by_id[decl.id_code].names.append(decl.reference)
                else:
                    by_id[decl.id_code] = _Signal([decl.reference], decl.size)
            elif kind is TokenKind.TIMESCALE:
                ts = token.timescale
                scale = int(ts.magnitude) * _UNIT_S[str(getattr(ts.unit, "value", ts.unit))]
            elif kind is TokenKind.COMMENT and "cut at" in str(data):
                truncated = True
    except VCDParseError as exc:
        raise TraceError(f"not a VCD file: {exc}") from None
    signals: dict[str, Any] = {}
    for sig in by_id.values():
        figures = _figures(sig, scale, now)
        for name in sig.names:
            signals[name] = figures
    return {"timescale_s": scale, "end_s": _s(now, scale), "truncated": truncated,
            "signals": signals}


def _s(units: int | None, scale: float) -> float | None:
    return None if units is None else round(units * scale, 12)


def _figures(sig: _Signal, scale: float, end: int) -> dict[str, Any]:
    out: dict[str, Any] = {
        "width": sig.width, "changes": sig.changes,
        "first_change_s": _s(sig.first_change, scale),
        "last_change_s": _s(sig.last_change, scale), "final": sig.value}
    if sig.width != 1:
        out["values"] = sig.values
        return out
    out.update(edges=sig.rising + sig.falling, rising=sig.rising, falling=sig.falling,
               frequency_hz=None, period_s=None, duty_cycle=None)
    periods = sig.rising - 1
    if (periods >= MIN_PERIODS and sig.first_rise is not None and sig.last_rise is not None
            and sig.min_period and sig.max_period):
        mean = (sig.last_rise - sig.first_rise) / periods
        if mean > 0 and (sig.max_period - mean <= PERIOD_TOLERANCE * mean
                         and mean - sig.min_period <= PERIOD_TOLERANCE * mean):
            out["period_s"] = round(mean * scale, 12)
            out["frequency_hz"] = round(1.0 / (mean * scale), 9)
            out["duty_cycle"] = round(sig.high_in_periods / (mean * periods), 6)
    return out


# -- pin expectations -------------------------------------------------------------------

KINDS = ("toggles", "duty", "edges", "high", "low", "steady")
_RANGE = re.compile(r"^\s*([0-9]*\.?[0-9]+)\s*(?:-\s*([0-9]*\.?[0-9]+))?\s*([a-zA-Z%]*)\s*$")
_FREQ_UNITS = {"": 1.0, "hz": 1.0, "khz": 1e3, "mhz": 1e6}


@dataclass(frozen=True)
class PinExpectation:
    """One parsed ``SIGNAL:KIND[:RANGE]``; ``low``/``high`` bound the number checked."""

    signal: str
    kind: str
    low: float | None = None
    high: float | None = None
    text: str = field(default="", compare=False)


def parse_expectation(text: str) -> PinExpectation:
    """``LD2:toggles:0.9-1.1Hz`` as a :class:`PinExpectation`; ValueError says what is
    wrong and what is accepted."""
    parts = [p.strip() for p in text.split(":")]
    if len(parts) not in (2, 3) or not parts[0] or not re.fullmatch(r"[A-Za-z0-9_]+", parts[0]):
        raise ValueError(f"pin expectation {text!r}: write SIGNAL:KIND[:RANGE], e.g. "
                         "LD2:toggles:0.9-1.1Hz")
    signal, kind = parts[0], parts[1].lower()
    if kind not in KINDS:
        raise ValueError(f"pin expectation {text!r}: unknown kind {parts[1]!r}; "
                         f"kinds: {', '.join(KINDS)}")
    if len(parts) == 2:
        if kind in ("duty", "edges"):
            raise ValueError(f"pin expectation {text!r}: {kind} needs a range, e.g. "
                             + ("40-60%" if kind == "duty" else "4-6"))
        return PinExpectation(signal, kind, text=text)
    if kind in ("high", "low", "steady"):
        raise ValueError(f"pin expectation {text!r}: {kind} takes no range")
    match = _RANGE.match(parts[2])
    if not match:
        raise ValueError(f"pin expectation {text!r}: the range is LO-HI or a number, "
                         "with a unit (Hz, kHz, MHz for toggles, % for duty)")
    low, high = float(match.group(1)), float(match.group(2) or match.group(1))
    unit = match.group(3).lower()
    if kind == "toggles":
        if unit not in _FREQ_UNITS:
            raise ValueError(f"pin expectation {text!r}: a frequency is in Hz, kHz or MHz")
        low, high = low * _FREQ_UNITS[unit], high * _FREQ_UNITS[unit]
        if match.group(2) is None:  # one number: itself, within 0.1 %
            low, high = low * 0.999, high * 1.001
    elif kind == "duty":
        if unit not in ("%", ""):
            raise ValueError(f"pin expectation {text!r}: a duty cycle is in %")
        low, high = low / 100.0, high / 100.0
    elif unit:
        raise ValueError(f"pin expectation {text!r}: edges are counted, with no unit")
    if low > high:
        raise ValueError(f"pin expectation {text!r}: the range goes from low to high")
    return PinExpectation(signal, kind, low, high, text=text)


def check(expectation: PinExpectation | str, summary: dict[str, Any]) -> tuple[bool, str]:
    """Whether a trace summary (:func:`summarize`) meets the expectation, and a line that
    says what was seen ("LD2 toggles at 2.000 Hz, expected 0.9-1.1 Hz")."""
    exp = parse_expectation(expectation) if isinstance(expectation, str) else expectation
    signals = summary.get("signals", {})
    sig = signals.get(exp.signal) or next(
        (v for k, v in signals.items() if k.upper() == exp.signal.upper()), None)
    if sig is None:
        return False, (f"{exp.signal} is not in the pin trace (traced: "
                       f"{', '.join(sorted(signals)) or 'nothing'})")
    # a vector (a UART's bytes) counts the defined values it took
    edges = sig["edges"] if "edges" in sig else sig.get("values", 0)
    freq, duty = sig.get("frequency_hz"), sig.get("duty_cycle")
    name = exp.signal
    if exp.kind == "toggles" and exp.low is None:
        return edges >= 2, f"{name} has {edges} edges (expected at least 2)"
    if exp.kind == "toggles":
        assert exp.low is not None and exp.high is not None
        wanted = f"{exp.low:g}-{exp.high:g} Hz"
        if freq is None:
            return False, f"{name} is not periodic ({edges} edges), expected {wanted}"
        return exp.low <= freq <= exp.high, f"{name} toggles at {freq:.4g} Hz, expected {wanted}"
    if exp.kind == "duty":
        assert exp.low is not None and exp.high is not None
        wanted = f"{exp.low * 100:g}-{exp.high * 100:g} %"
        if duty is None:
            return False, f"{name} is not periodic ({edges} edges), expected duty {wanted}"
        return (exp.low <= duty <= exp.high,
                f"{name} is high {duty * 100:.3g} % of its period, expected {wanted}")
    if exp.kind == "edges":
        assert exp.low is not None and exp.high is not None
        wanted = f"{exp.low:g}" if exp.low == exp.high else f"{exp.low:g}-{exp.high:g}"
        return exp.low <= edges <= exp.high, f"{name} has {edges} edges, expected {wanted}"
    if exp.kind == "steady":
        return edges == 0, f"{name} has {edges} edges, expected none"
    level = {"high": "1", "low": "0"}[exp.kind]
    final = sig.get("final")
    return final == level, f"{name} ends {final!r}, expected {exp.kind} ({level})"


# -- the job option and the job's record ------------------------------------------------

#: At most this many signals may be named in a job's trace option.
MAX_SIGNALS = 64
_SIGNAL_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_]{0,31}$")
_PIN_NAME = re.compile(r"^P[A-Z](?:[0-9]|1[0-5])$")


def parse_trace_option(text: str | None, leds: tuple[str, ...] = (), console: str = ""
                       ) -> str | None:
    """The submit option ``trace`` normalised for the job record: None for the default
    (absent, empty or ``default``), ``"none"`` for no trace, else the signal names joined
    by commas. ValueError (the API's 400) for a name no board could have; with the
    board's ``leds`` and ``console`` known, a name this board lacks too (the backend
    checks pin names against the board's ports)."""
    if text is None or text.strip().lower() in ("", "default"):
        return None
    if text.strip().lower() == "none":
        return "none"
    names = [n.strip() for n in text.split(",") if n.strip()]
    if len(names) > MAX_SIGNALS:
        raise ValueError(f"'trace' names at most {MAX_SIGNALS} signals")
    upper_leds = {led.upper(): led for led in leds}
    out = []
    for name in names:
        if not _SIGNAL_NAME.match(name):
            raise ValueError(f"'trace': {name[:40]!r} is not a signal name; give LEDs, pins "
                             "(PA5) or a UART's TX line (USART2_TX), separated by commas, "
                             "or 'none', or 'default'")
        upper = name.upper()
        if upper in upper_leds:
            out.append(upper_leds[upper])
        elif _PIN_NAME.match(upper) or (upper.endswith("_TX") and "ART" in upper):
            out.append(upper)
        elif leds or console:
            raise ValueError(
                f"'trace': the board has no signal {name!r}; it has LEDs "
                f"{', '.join(leds) or '(none)'}, pins PA0 ... and "
                f"{(console + '_TX') if console else 'UART TX lines'}")
        else:
            out.append(upper)
    return ",".join(dict.fromkeys(out)) or None


def signals_option(stored: str | None) -> tuple[str, ...] | None:
    """What the job's process is told to trace: () the board's default, None nothing."""
    if stored is None:
        return ()
    if stored == "none":
        return None
    return tuple(n for n in stored.split(",") if n)


def job_fields(path: Path, name: str, written: int) -> dict[str, Any]:
    """The job record's ``filename_trace`` and ``trace_summary`` for a run whose trace
    went to ``path`` (``written`` bytes; 0: the run kept none). A file that cannot be
    read as VCD keeps its name and gets a summary that says why."""
    if not written:
        return {"filename_trace": None, "trace_summary": None}
    try:
        summary = summarize(path)
    except (TraceError, OSError) as exc:
        summary = {"error": str(exc)[:300], "signals": {}}
    return {"filename_trace": name, "trace_summary": summary}
