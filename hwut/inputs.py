"""What a job feeds the board while it runs: console input and button presses.

Given as query parameters of the submit (``input=...``, ``press=B1@0.5-0.7``),
checked here so that a bad one is a 400 that says what is allowed.
"""
from __future__ import annotations

import re

MAX_INPUT_BYTES = 4096
MAX_PRESSES = 64
_PRESS = re.compile(r"^(?P<button>[A-Za-z][A-Za-z0-9_]{0,15})@(?P<at>\d+(\.\d+)?)"
                    r"(-(?P<release>\d+(\.\d+)?))?$")

Press = tuple[str, float, float | None]


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
