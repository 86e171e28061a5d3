"""When the board printed each part of a job's log: the log's time index.

The job's process stamps UART output with the board's time (virtual seconds on an
emulator, wall seconds since the start on hardware; see ``hwut.runner.child``): each
frame says the time of its last byte and of every line end in it, and while the board
prints nothing a TIME frame says how far the board's time has got. :class:`LogTimes`
keeps those times beside the log, in a file of fixed records (log offset, board time):

- a record ``(offset, t)`` says the log's bytes up to ``offset`` had arrived by the
  board's time ``t``; a line ending just before ``offset`` arrived at ``t``;
- records are in log order; offsets and times never decrease; a record whose offset
  did not move says how far the board's time got without output.

Why a file: the live stream (``GET .../log/stream``) reads it as it reads the log, for
running and ended jobs alike, so that a client learns when the board printed what it
receives (a test's ``expect(..., timeout=virtual seconds)``); the verdict reads the
match time from it while the run is going on. The index is written before the bytes
it describes reach the log, so every byte a reader sees has a time. Bounded: past
:data:`MAX_BYTES` no record is added (the run goes on; later bytes then take the
index's last time).
"""
from __future__ import annotations

import bisect
import math
import os
import struct
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

RECORD = struct.Struct("<Qd")
#: Largest index file (65536 records).
MAX_BYTES = 1024 * 1024

Mark = tuple[int, float]


class LogTimes:
    """The writing side, fed by the job's frames in the server (see the module docstring).

    :meth:`chunk` is called *before* the chunk's bytes go to the log (and the verdict's
    tap), so that :meth:`time_at` answers for any byte of it."""

    def __init__(self, path: Path, opener: Any = None,
                 on_records: Callable[[bytes], None] | None = None) -> None:
        self._fh = open(path, "ab", buffering=0, opener=opener)  # noqa: SIM115 - close()
        #: Gets each batch of records written (packed as in the file): a worker host
        #: sends them to the server with the log (see :meth:`replay`).
        self.on_records = on_records
        self._lock = threading.Lock()
        #: Log bytes described so far; the board's latest time.
        self.offset = 0
        self.now = 0.0
        self.size = 0
        self._chunk: list[Mark] = []
        #: The latest bytes came without a time.
        self.untimed = False
        #: For :meth:`replay`: log bytes seen, and whether any record came.
        self._bytes = 0
        self._seen_times = False

    def chunk(self, size: int, t: float | None, marks: Sequence[Sequence[float]]) -> None:
        """``size`` log bytes arrive; their last at board time ``t``, line ends at
        ``marks`` (``[offset within the chunk, t]``). ``t`` None: the backend does not
        know the board's time; the bytes get none (and :meth:`time_at` says None)."""
        with self._lock:
            base = self.offset
            if t is None:
                self.offset += size
                self._chunk = []
                self.untimed = True
                return
            self.untimed = False
            records: list[Mark] = []
            for end, at in marks:
                end = int(end)
                if 0 < end <= size:
                    records.append((base + end, max(float(at), self.now)))
            end_t = max(float(t), self.now)
            if not records or records[-1][0] != base + size:
                records.append((base + size, end_t))
            self.offset = base + size
            self.now = max(end_t, records[-1][1])
            self._chunk = records
            self._write(records)

    def tick(self, t: float) -> None:
        """The board's time moved to ``t`` (it printed nothing meanwhile)."""
        with self._lock:
            if t > self.now:
                self.now = t
                self._write([(self.offset, t)])

    def replay(self, data: bytes, size: int) -> None:
        """Records made on a worker host (packed as in the file, in its log's offsets,
        which are this log's: the host sends every byte) for the next ``size`` log bytes.
        Called before those bytes go to the log, as :meth:`chunk` is. Records that would
        go back in offset or time are dropped; bytes with no record before the first
        one came are untimed (a backend that does not know the board's time)."""
        whole = len(data) - len(data) % RECORD.size
        with self._lock:
            records: list[Mark] = []
            for offset, t in RECORD.iter_unpack(data[:whole]):
                last_offset = records[-1][0] if records else self.offset
                if offset < last_offset or not math.isfinite(t) or t < self.now:
                    continue
                records.append((offset, t))
                self.now = t
            if records:
                self.offset = max(self.offset, records[-1][0])
                self._chunk = [r for r in records if r[0] > 0]
                self.untimed = False
                self._seen_times = True
                self._write(records)
            self._bytes += size
            if size and not self._seen_times:
                self.offset = self._bytes
                self.untimed = True

    def time_at(self, offset: int) -> float | None:
        """The board's time when the log byte just before ``offset`` arrived (exact for
        the latest chunk; else the latest time known); None when it came untimed."""
        with self._lock:
            for end, t in self._chunk:
                if end >= offset:
                    return t
            return None if self.untimed else self.now

    def restart(self) -> None:
        """Empty the index: a retried job's log is its last attempt's."""
        with self._lock:
            if not self._fh.closed:
                self._fh.truncate(0)
            self.offset, self.now, self.size, self._chunk = 0, 0.0, 0, []
            self.untimed = False
            self._bytes, self._seen_times = 0, False

    def close(self) -> None:
        with self._lock:
            self._fh.close()

    def _write(self, records: list[Mark]) -> None:
        if self._fh.closed:
            return
        data = b"".join(RECORD.pack(o, t) for o, t in records)
        if self.size + len(data) > MAX_BYTES:
            return
        view = memoryview(data)
        while view:
            view = view[self._fh.write(view):]
        self.size += len(data)
        if self.on_records is not None:
            self.on_records(data)


class IndexReader:
    """The reading side: a log's index read as it grows, kept only from a log offset on
    (what a reader has not passed yet)."""

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self._pos = 0
        self._offsets: list[int] = []
        self._times: list[float] = []
        #: The board's latest time in the index (-1: nothing read yet).
        self.now = -1.0
        #: The log offset the index covers (bytes up to it have a time).
        self.covered = 0

    def refresh(self, keep_from: int) -> bool:
        """Read what was added to the file; forget records before ``keep_from``. False
        when there is no index (a job from before it existed)."""
        if self.path is None:
            return False
        try:
            with open(self.path, "rb") as fh:
                size = os.fstat(fh.fileno()).st_size
                if size < self._pos:  # truncated: a retried run started over
                    self._pos, self._offsets, self._times = 0, [], []
                    self.now, self.covered = -1.0, 0
                fh.seek(self._pos)
                data = fh.read(max(0, size - self._pos))
        except FileNotFoundError:
            return False
        whole = len(data) - len(data) % RECORD.size
        self._pos += whole
        for offset, t in RECORD.iter_unpack(data[:whole]):
            self._offsets.append(offset)
            self._times.append(t)
            self.now = max(self.now, t)
            self.covered = max(self.covered, offset)
        cut = bisect.bisect_left(self._offsets, keep_from)
        if cut:
            del self._offsets[:cut], self._times[:cut]
        return True

    def marks(self, start: int, end: int, limit: int) -> tuple[int, list[Mark]]:
        """Records in ``(start, end]`` (at most ``limit``); returns the offset the list
        covers (``end``, or the last record's offset when cut) and the records."""
        lo = bisect.bisect_right(self._offsets, start)
        hi = bisect.bisect_right(self._offsets, end)
        found: list[Mark] = []
        for offset, t in zip(self._offsets[lo:hi], self._times[lo:hi], strict=True):
            if found and found[-1][0] == offset:
                continue  # the board's time moving on without output: not a line end
            if len(found) == limit:
                return found[-1][0], found
            found.append((offset, t))
        return end, found

    def time_at(self, offset: int) -> float | None:
        """The board's time of the log byte just before ``offset``; None: not covered."""
        i = bisect.bisect_left(self._offsets, offset)
        return self._times[i] if i < len(self._times) else None
