"""A bounded log for what the emulator notices: repeated notes are counted, not repeated.

Firmware decides how often the emulator has something to say (a fault loop notes
every turn, a reset loop every reset), so the log must not grow with it. Lines are
grouped into kinds by their text with the numbers taken out ("bus fault: write to
0x60000000 at PC 0x08000212" and the same at another address are one kind). Of
each kind the first ``per_kind`` different texts pass through; after that the kind
is counted, and a summary ``note repeated N times so far: <first>`` is passed on
when its count reaches 10, 100, 1000 ..., and ``note repeated N times: <first>``
by ``finish`` (the end of a run); ``, numbers varying`` follows the count when the
kind's texts differed. At most ``max_kinds`` kinds are tracked and ``max_bytes`` of
text passed on; past either, lines are only counted, and ``finish`` says how many
were left out. Every line is cut to ``max_line`` characters.
"""
from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

_NUMBER = re.compile(r"0x[0-9a-fA-F]+|[0-9]+(?:\.[0-9]+)?")

MAX_KINDS = 1000
MAX_BYTES = 256 * 1024
MAX_LINE = 400
PER_KIND = 10


@dataclass
class _Kind:
    first: str
    count: int = 0
    shown: set[str] = field(default_factory=set)
    reported: int = 0  # the count the last summary gave
    varied: bool = False  # a line of this kind differed from the first (in its numbers)

    def summary(self, what: str, so_far: bool) -> str:
        how = " so far" if so_far else ""
        varied = ", numbers varying" if self.varied else ""
        return f"{what} repeated {self.count} times{how}{varied}: {self.first}"


class NoteLog:
    """Passes each line on to ``sink`` (if any) and keeps it, within the bounds above."""

    def __init__(self, sink: Callable[[str], None] | None = None, *,
                 max_kinds: int = MAX_KINDS, max_bytes: int = MAX_BYTES,
                 max_line: int = MAX_LINE, per_kind: int = PER_KIND,
                 what: str = "note") -> None:
        self._sink = sink
        #: The word the summaries use ("note repeated ...", "fault repeated ...").
        self.what = what
        self.max_kinds = max_kinds
        self.max_bytes = max_bytes
        self.max_line = max_line
        self.per_kind = per_kind
        #: What was passed on, in order (bounded by ``max_bytes`` + one final line).
        self.lines: list[str] = []
        self._kinds: dict[str, _Kind] = {}
        self._bytes = 0
        #: Lines received in all (passed on, counted or left out).
        self.received = 0
        self._untracked = 0   # left out: their kind came after max_kinds others
        self._over_bytes = 0  # left out: lines and summaries past max_bytes
        self._cap_reported = (0, 0)

    def __len__(self) -> int:
        return len(self.lines)

    def __iter__(self) -> Iterator[str]:
        return iter(self.lines)

    def add(self, line: str) -> None:
        self.received += 1
        if len(line) > self.max_line:
            line = line[:self.max_line - 3] + "..."
        key = _NUMBER.sub("#", line)
        kind = self._kinds.get(key)
        if kind is None:
            if len(self._kinds) >= self.max_kinds:
                self._untracked += 1
                return
            kind = self._kinds[key] = _Kind(line)
        kind.count += 1
        if not kind.varied and line != kind.first:
            kind.varied = True
        if len(kind.shown) < self.per_kind and line not in kind.shown:
            kind.shown.add(line)
            self._emit(line)
            return
        count = kind.count
        if count >= 10 and _is_power_of_ten(count):
            kind.reported = count
            self._emit(kind.summary(self.what, so_far=True))

    def finish(self) -> None:
        """Summaries of what was only counted; call at the end of a run (may be called
        again: later summaries give the totals)."""
        for kind in self._kinds.values():
            if kind.count > len(kind.shown) and kind.count != kind.reported:
                kind.reported = kind.count
                self._emit(kind.summary(self.what, so_far=False))
        left_out = (self._untracked, self._over_bytes)
        if left_out != (0, 0) and left_out != self._cap_reported:
            self._cap_reported = left_out
            # always kept, past the byte cap: it is the only word on what was lost
            self._emit(f"{self.what} log cap reached ({self.max_kinds} kinds, "
                       f"{self.max_bytes} bytes): {self._untracked + self._over_bytes} "
                       f"{self.what}s left out", force=True)

    def _emit(self, line: str, force: bool = False) -> None:
        size = len(line) + 1
        if self._bytes + size > self.max_bytes and not force:
            self._over_bytes += 1
            return
        self._bytes += size
        self.lines.append(line)
        if self._sink is not None:
            self._sink(line)


def _is_power_of_ten(n: int) -> bool:
    while n % 10 == 0:
        n //= 10
    return n == 1
