"""Serving a job's files as streams: a byte range of a file that may still grow, read in
chunks as the client takes them, with a bounded number of streams at once.

Why: a log can be large (up to the job's cap) and its reader slow. Reading it whole
would hold it in the server's memory; letting every reader stream at once would let
slow readers hold every HTTP thread. A stream holds a slot until the server has sent
it (or the connection times out), and past the slots a reader is told to come back.
"""
from __future__ import annotations

import threading
from collections.abc import Callable
from typing import IO

import falcon

CHUNK_BYTES = 64 * 1024


class StreamSlots:
    """At most ``count`` file streams at once; ``take`` returns a release, or None."""

    def __init__(self, count: int) -> None:
        self._semaphore = threading.BoundedSemaphore(max(1, count))

    def take(self) -> Callable[[], None] | None:
        if not self._semaphore.acquire(blocking=False):
            return None
        released = threading.Event()

        def release() -> None:
            if not released.is_set():
                released.set()
                self._semaphore.release()

        return release


class FileSlice:
    """``length`` bytes of an open file from its current position, as a WSGI stream; the
    file and the slot are released when the server closes the stream."""

    def __init__(self, fh: IO[bytes], length: int, release: Callable[[], None]) -> None:
        self._fh = fh
        self._left = length
        self._release = release

    def read(self, size: int = -1) -> bytes:
        """Up to ``size`` bytes; a chunk when no size is given (the server reads until
        it gets b"", so a large file never sits in memory whole)."""
        if self._left <= 0:
            return b""
        wanted = CHUNK_BYTES if size is None or size < 0 else size
        data = self._fh.read(min(wanted, self._left))
        self._left = self._left - len(data) if data else 0
        return data

    def __iter__(self) -> FileSlice:
        return self

    def __next__(self) -> bytes:
        data = self.read(CHUNK_BYTES)
        if not data:
            raise StopIteration
        return data

    def close(self) -> None:
        try:
            self._fh.close()
        finally:
            self._release()


def byte_range(req: falcon.Request, size: int) -> tuple[int, int] | None:
    """The ``Range: bytes=...`` of the request as [start, end) within ``size``, None
    without one; 416 when it asks for nothing the file has."""
    try:
        wanted = req.range
    except falcon.HTTPInvalidHeader:
        raise falcon.HTTPRangeNotSatisfiable(size, title="Range Not Satisfiable",
                                             description="Give one range, bytes=START-[END] "
                                                         "or bytes=-SUFFIX.") from None
    if wanted is None or req.range_unit != "bytes":
        return None
    start, last = wanted
    if start < 0:  # a suffix: the last -start bytes
        start = max(0, size + start)
        last = size - 1
    elif last < 0 or last >= size:
        last = size - 1
    if start >= size or start > last:
        raise falcon.HTTPRangeNotSatisfiable(
            size, title="Range Not Satisfiable",
            description=f"The file has {size} bytes; the range asks for none of them.")
    return start, last + 1
