"""``GET /jobs/{id}/log/stream``: the log as it grows, pushed as Server-Sent Events.

Why SSE: any HTTP client reads it (curl -N shows it), it is one long GET that proxies
pass, and it names a resume point (``id:``) that a reconnecting client sends back as
``Last-Event-ID`` (or ``?offset=N``), so a dropped connection loses nothing.

Events, in order:
- ``status`` (JSON ``{"status", "queue_position"}``): when the job's status changes;
- ``time`` (JSON ``{"offset", "t", "marks"}``): when the board printed the ``log``
  event that follows: ``t`` is the board's time (virtual seconds on an emulator) of
  the byte before ``offset``, ``marks`` ``[offset, t]`` of each line end in it (and of
  where the board's output was cut into chunks; at most :data:`MAX_MARKS`, an event
  is cut there): a line's time is that of the first mark at or after its end. While the board prints nothing, a
  ``time`` event without bytes after it says how far the board's time got. Sent
  before its ``log`` event, which has the ``id:``: a client resuming from that id
  misses no time. Jobs run before the log's times were kept have no ``time`` events;
- ``log`` (``id:`` the offset after these bytes; data: the bytes in base64, so the
  log crosses exactly, whatever the firmware printed);
- ``end`` (JSON: the job's extended view, with its verdict): the job ended and every
  byte was sent; the stream then closes.

Bounds: at most ``slots`` streams at once (503 with Retry-After past that), each at most
:data:`MAX_STREAM_S` long (then it closes without ``end``: the client reconnects from
the last id), so neither followers nor a server stopping wait on a long job. A
comment line every :data:`KEEPALIVE_S` keeps idle connections open through proxies
and lets the server notice a client that went away (its slot is freed at that write).
"""
from __future__ import annotations

import base64
import json
import os
import time
from collections.abc import Callable, Generator, Iterator
from typing import Any

import falcon

from ..logtime import IndexReader
from .files import CHUNK_BYTES, StreamSlots
from .jobs import _JobBase, forbidden, may_act
from .params import bad_request, int_param

#: A stream closes after this long; the client reconnects from where it was.
MAX_STREAM_S = 60.0
KEEPALIVE_S = 1.0
#: How often a stream looks for new bytes while the job runs (and while it waits).
POLL_S = (0.02, 0.25)
#: Line-end times in one ``time`` event at most.
MAX_MARKS = 256


def event(name: str, data: str, event_id: str | None = None, retry: int | None = None
          ) -> bytes:
    head = f"id: {event_id}\n" if event_id is not None else ""
    head += f"retry: {retry}\n" if retry is not None else ""
    return f"{head}event: {name}\ndata: {data}\n\n".encode()


class LogStream:
    """The WSGI body: a generator of events; the slot is released on close."""

    def __init__(self, resource: LogStreamResource, job_id: int, offset: int,
                 release: Callable[[], None]) -> None:
        self.resource, self.job_id, self.offset = resource, job_id, offset
        self._release = release
        self._index: IndexReader | None = None
        self._sent_t = -1.0
        self._events = self._generate()

    def __iter__(self) -> Iterator[bytes]:
        return self._events

    def close(self) -> None:
        self._events.close()
        self._release()

    def _generate(self) -> Generator[bytes, None, None]:
        jobs = self.resource.store.jobs
        started = time.monotonic()
        last_sent = started
        shown: tuple[str, Any] | None = None
        delay = POLL_S[0]
        while time.monotonic() - started < MAX_STREAM_S:
            job = jobs.get(self.job_id)
            state = (job.status.value, jobs.queue_position(job))
            if state != shown:
                shown = state
                yield event("status", json.dumps({"status": state[0],
                                                  "queue_position": state[1]}),
                            retry=1000)
                last_sent = time.monotonic()
            data = self._read(job.filename_log)
            timed = self._times(job.filename_log_times, data)
            if data:
                data, stamp = timed if timed is not None else (data, None)
                if stamp is not None:
                    yield event("time", stamp)
                self.offset += len(data)
                yield event("log", base64.b64encode(data).decode(), str(self.offset))
                last_sent, delay = time.monotonic(), POLL_S[0]
                continue
            if timed is not None and timed[1] is not None:  # the board's time moved
                yield event("time", timed[1])
                last_sent = time.monotonic()
            if job.status.ended:
                view = {**job.extended_view(), "log_size": self.offset}
                yield event("end", json.dumps(view), str(self.offset))
                return
            if time.monotonic() - last_sent > KEEPALIVE_S:
                yield b": keepalive\n\n"
                last_sent = time.monotonic()
            time.sleep(delay)
            delay = min(delay * 2, POLL_S[1])

    def _times(self, name: str | None, data: bytes) -> tuple[bytes, str | None] | None:
        """``data`` (cut at MAX_MARKS line ends) and the ``time`` event for it; with no
        data, the event saying how far the board's time got (None when it did not move);
        None when the job keeps no log times."""
        if name is None:
            return None
        if self._index is None:
            self._index = IndexReader(self.resource.store.jobs.artifact_path(name))
        index = self._index
        if not index.refresh(keep_from=self.offset):
            return None
        if not data:
            # not while the index runs ahead of the log (written first): the time would
            # claim bytes the client has not had yet
            if index.now <= self._sent_t or index.covered > self.offset:
                return data, None
            self._sent_t = index.now
            return data, json.dumps({"offset": self.offset, "t": index.now, "marks": []})
        end, marks = index.marks(self.offset, self.offset + len(data), MAX_MARKS)
        data = data[:end - self.offset]
        t = index.time_at(end)
        t = index.now if t is None else t
        self._sent_t = max(self._sent_t, t)
        return data, json.dumps({"offset": end, "t": t, "marks": marks})

    def _read(self, name: str | None) -> bytes:
        if not name:
            return b""
        try:
            with open(self.resource.store.jobs.artifact_path(name), "rb") as fh:
                if os.fstat(fh.fileno()).st_size <= self.offset:
                    return b""
                fh.seek(self.offset)
                return fh.read(CHUNK_BYTES)
        except FileNotFoundError:
            return b""


class LogStreamResource(_JobBase):
    def __init__(self, *deps: Any, slots: StreamSlots) -> None:
        super().__init__(*deps)
        self.slots = slots

    def on_get(self, req: falcon.Request, resp: falcon.Response, job_id: int) -> None:
        user = req.context.user
        job = self.store.jobs.get(job_id)
        if not may_act(user, job):
            raise forbidden(job)
        offset = int_param(req, "offset", 0, 0)
        resume = req.get_header("Last-Event-ID")
        if resume:
            if not resume.isdigit() or len(resume) > 18:
                raise bad_request("Last-Event-ID is the byte offset of a log event")
            offset = max(offset, int(resume))
        release = self.slots.take()
        if release is None:
            raise falcon.HTTPServiceUnavailable(
                title="Service Unavailable", retry_after=2,
                description="Too many log streams are open right now; retry shortly.")
        resp.content_type = "text/event-stream"
        resp.set_header("Cache-Control", "no-store")
        resp.set_header("X-Accel-Buffering", "no")
        resp.stream = LogStream(self, job_id, offset, release)
