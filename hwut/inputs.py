"""What a job feeds the board while it runs: console input, button presses, pin levels.

Given as query parameters of the submit (``input=...``, ``press=B1@0.5-0.7``,
``pin=PA0@0:1``), checked here so that a bad one is a 400 that says what is allowed.
"""
from __future__ import annotations

import re

MAX_INPUT_BYTES = 4096
MAX_PRESSES = 64
_PRESS = re.compile(r"^(?P<button>[A-Za-z][A-Za-z0-9_]{0,15})@(?P<at>\d+(\.\d+)?)"
                    r"(-(?P<release>\d+(\.\d+)?))?$")

Press = tuple[str, float, float | None]

MAX_PINS = 64
#: ``PA0@0.5:1``: pin, virtual seconds, level (1, 0, or z: released to the board's own).
_PIN = re.compile(r"^(?P<pin>[Pp][A-Za-z]\d{1,2})@(?P<at>\d{1,6}(\.\d{1,9})?)"
                  r":(?P<level>[01zZ])$")
#: (pin "PA0", at virtual s, 1/0 or None = released to what the board leaves on it).
PinDrive = tuple[str, float, int | None]


def parse_input(text: str | None) -> str | None:
    if text is None or text == "":
        return None
    if len(text.encode()) > MAX_INPUT_BYTES:
        raise ValueError(f"'input' is at most {MAX_INPUT_BYTES} bytes")
    return text


def parse_presses(values: list[str] | None, limit_s: float) -> list[Press]:
    """``B1@0.5`` presses B1 at 0.5 s and holds it; ``B1@0.5-0.7`` releases it at 0.7 s."""
    presses: list[Press] = []
    for raw in values or []:
        m = _PRESS.match(raw.strip())
        if m is None:
            shown = raw if len(raw) <= 40 else raw[:40] + "..."
            raise ValueError(f"'press' must look like B1@0.5 or B1@0.5-0.7 (button@seconds"
                             f"[-seconds]), not {shown!r}")
        at = float(m["at"])
        release = float(m["release"]) if m["release"] else None
        if at > limit_s or (release is not None and not at < release <= limit_s):
            raise ValueError(f"'press' {raw!r}: times must be within the job's "
                             f"{limit_s:g} s and the release after the press")
        presses.append((m["button"], at, release))
    if len(presses) > MAX_PRESSES:
        raise ValueError(f"at most {MAX_PRESSES} presses")
    return presses


def parse_pins(values: list[str] | None, limit_s: float) -> list[PinDrive]:
    """``PA0@0:1`` drives PA0 to 1 from the start; ``PA0@0.5:0`` to 0 at 0.5 s;
    ``PA0@0.7:z`` releases it to what the board leaves on it (its pull, or floating).
    Names are upper-cased; whether the board has the pin is the board's to say."""
    pins: list[PinDrive] = []
    for raw in values or []:
        m = _PIN.match(raw.strip())
        if m is None:
            shown = raw if len(raw) <= 40 else raw[:40] + "..."
            raise ValueError(f"'pin' must look like PA0@0:1, PA0@0.5:0 or PA0@0.7:z "
                             f"(pin@seconds:level, level 1, 0 or z for released), not {shown!r}")
        at = float(m["at"])
        if at > limit_s:
            raise ValueError(f"'pin' {raw!r}: the time must be within the job's {limit_s:g} s")
        level = m["level"].lower()
        pins.append((m["pin"].upper(), at, None if level == "z" else int(level)))
        if len(pins) > MAX_PINS:
            raise ValueError(f"at most {MAX_PINS} pin levels ('pin')")
    return pins
