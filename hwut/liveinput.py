"""Input into a running job (``POST /jobs/{id}/input``): what a request may carry, and
how much of it a job takes per second.

Kept apart from ``hwut.inputs`` (input given at submit, replayed at set virtual times):
this input is applied at the board's time when its backend receives it. The body is
JSON, ``{"text": "..."}`` for the console and/or ``{"press": "B1", "hold_s": 0.1}``
for a button; both in one request are applied text first. :data:`SCHEMA` is the body's
JSON schema, as the OpenAPI description shows it, and :func:`parse` enforces the same.
"""
from __future__ import annotations

import json
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from hwut.backends.base import LiveItem

#: Largest request body, and largest text in one request (UTF-8 bytes).
MAX_BODY_BYTES = 8192
MAX_TEXT_BYTES = 1024
#: A press is held at most this long (board seconds); the default hold.
MAX_HOLD_S = 10.0
DEFAULT_HOLD_S = 0.1
#: Per job, per second: requests and text bytes (past them: 429 with Retry-After).
MAX_REQUESTS_PER_S = 20
MAX_BYTES_PER_S = 4096
#: Items waiting on the server for the worker host that runs a remote job (it fetches
#: them with its next report); past it: 429, as for the rate.
MAX_PENDING_REMOTE = 64
_BUTTON_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_")

SCHEMA: dict[str, Any] = {
    "type": "object", "additionalProperties": False, "minProperties": 1,
    "properties": {
        "text": {"type": "string", "minLength": 1,
                 "description": f"console input, at most {MAX_TEXT_BYTES} bytes as UTF-8"},
        "press": {"type": "string", "pattern": "^[A-Za-z][A-Za-z0-9_]{0,15}$",
                  "description": "a button of the board (its buttons: GET "
                                 "/targets/boards/{name})"},
        "hold_s": {"type": "number", "exclusiveMinimum": 0, "maximum": MAX_HOLD_S,
                   "description": f"how long the press is held, board seconds "
                                  f"(default {DEFAULT_HOLD_S:g}); only with press"},
    },
}


class Backlog(Exception):
    """The job's input waits for its worker host already (:data:`MAX_PENDING_REMOTE`
    items): the host has not fetched it yet. Answered 429, retry in a moment."""


class Unsupported(Exception):
    """The host that runs the job cannot take input while it runs (the message says
    which and why). Answered 400."""


def parse(body: bytes) -> list[LiveItem]:
    """The items a request body carries (text first); ValueError saying what is wrong."""
    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        raise ValueError('the body is JSON: {"text": "..."} and/or {"press": "B1", '
                         '"hold_s": 0.1}') from None
    if not isinstance(data, dict) or not data:
        raise ValueError('the body is a JSON object with "text" and/or "press"')
    unknown = sorted(set(data) - set(SCHEMA["properties"]))
    if unknown:
        shown = ", ".join(repr(k[:20]) for k in unknown[:5])
        raise ValueError(f"unknown key(s) {shown}; allowed: text, press, hold_s")
    items: list[LiveItem] = []
    text = data.get("text")
    if text is not None:
        if not isinstance(text, str) or not text:
            raise ValueError("'text' is a non-empty string")
        raw = text.encode("utf-8", "surrogatepass")
        if len(raw) > MAX_TEXT_BYTES:
            raise ValueError(f"'text' is at most {MAX_TEXT_BYTES} bytes (UTF-8); "
                             f"got {len(raw)}")
        items.append(LiveItem(text=raw))
    press, hold = data.get("press"), data.get("hold_s")
    if press is not None:
        if (not isinstance(press, str) or not 0 < len(press) <= 16
                or not press[0].isascii() or not press[0].isalpha()
                or not set(press) <= _BUTTON_CHARS):
            raise ValueError("'press' is a button name like B1")
        if hold is None:
            hold = DEFAULT_HOLD_S
        if isinstance(hold, bool) or not isinstance(hold, int | float) \
                or not 0 < hold <= MAX_HOLD_S:
            raise ValueError(f"'hold_s' is a number of seconds, more than 0 and at most "
                             f"{MAX_HOLD_S:g}")
        items.append(LiveItem(press=press, hold_s=float(hold)))
    elif hold is not None:
        raise ValueError("'hold_s' goes with 'press'")
    if not items:
        raise ValueError('give "text" and/or "press"')
    return items


@dataclass
class _Window:
    sent: deque[tuple[float, int]]


class RateLimit:
    """At most :data:`MAX_REQUESTS_PER_S` requests and :data:`MAX_BYTES_PER_S` text
    bytes per job in any second; the clock is injected (tests move it)."""

    def __init__(self, clock: Callable[[], float] = time.monotonic,
                 requests: int = MAX_REQUESTS_PER_S, data: int = MAX_BYTES_PER_S) -> None:
        self.clock, self.requests, self.data = clock, requests, data
        self._jobs: dict[int, _Window] = {}
        self._lock = threading.Lock()

    def take(self, job_id: int, size: int) -> float | None:
        """Count one request of ``size`` bytes; None when allowed, else the seconds after
        which it would be."""
        now = self.clock()
        with self._lock:
            if len(self._jobs) > 1024:  # jobs come and go: forget the idle ones
                self._jobs = {j: w for j, w in self._jobs.items()
                              if w.sent and now - w.sent[-1][0] < 1.0}
            window = self._jobs.setdefault(job_id, _Window(deque()))
            while window.sent and now - window.sent[0][0] >= 1.0:
                window.sent.popleft()
            used = sum(n for _, n in window.sent)
            if len(window.sent) >= self.requests or (size and used + size > self.data):
                oldest = window.sent[0][0] if window.sent else now
                return max(0.05, 1.0 - (now - oldest))
            window.sent.append((now, size))
        return None
