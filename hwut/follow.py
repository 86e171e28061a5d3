"""Following a job live over ``GET /jobs/{id}/log/stream`` (Server-Sent Events).

The client side of hwut/resources/stream.py: log bytes are handed on as they arrive,
status changes as "why it waits", and the ``end`` event's job record is the result.
A stream that closes early (the server's stream time bound, a proxy, a dropped
connection) is reopened from the last event id, so nothing is lost or repeated; after
:data:`MAX_FAILURES` failed connections in a row it gives up with the reason. A
server without the stream route (an older HWUT) is followed by polling instead.
"""
from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import httpx
from httpx_sse import SSEError, connect_sse

if TYPE_CHECKING:
    from .client import Client

#: Failed connections in a row before giving up.
MAX_FAILURES = 5

#: ``on_time(offset, t, marks)``: the board's time ``t`` of the log byte before
#: ``offset``; ``marks``: ``(offset, t)`` of line ends up to it.
TimeCallback = Callable[[int, float, list[tuple[int, float]]], None]


class StreamUnsupported(Exception):
    """The server has no stream route (404 before any event)."""


def follow(client: Client, job_id: int, on_log: Callable[[bytes], None],
           on_wait: Callable[[str], None], timeout: float | None, offset: int = 0,
           on_time: TimeCallback | None = None) -> dict[str, Any]:
    """The ended job's record, following its log live from byte ``offset``; see the
    module docstring. Raises WaitTimeout after ``timeout`` seconds (None: never), like
    Client.wait; an exception ``on_log`` raises ends the following (and propagates)."""
    from .client import HwutError, WaitTimeout

    failures, why = 0, ""
    started = client.monotonic()
    while True:
        left = None if timeout is None else timeout - (client.monotonic() - started)
        if left is not None and left <= 0:
            raise WaitTimeout(client.job(job_id), timeout or 0.0, why)
        read = 30.0 if left is None else max(0.05, min(30.0, left))
        try:
            with connect_sse(client._http, "GET", f"/jobs/{job_id}/log/stream",
                             params={"offset": offset},
                             timeout=(10.0, read, 10.0, 10.0)) as source:
                status = source.response.status_code
                if status in (404, 405):
                    source.response.read()
                    client.job(job_id)  # raises when the job itself is not there
                    raise StreamUnsupported
                if status >= 400:
                    source.response.read()
                    if status == 503:  # too many streams: wait a little, like a drop
                        raise httpx.ReadError("the server has no free log stream")
                    client._request("GET", f"/jobs/{job_id}")  # raises with its reason
                    raise HwutError(status, "Stream refused", source.response.text[:200])
                for sse in source.iter_sse():
                    failures = 0
                    if sse.event == "log":
                        data = base64.b64decode(sse.data, validate=True)
                        offset += len(data)
                        on_log(data)
                    elif sse.event == "time" and on_time is not None:
                        stamp = json.loads(sse.data)
                        on_time(int(stamp["offset"]), float(stamp["t"]),
                                [(int(o), float(t)) for o, t in stamp.get("marks", ())])
                    elif sse.event == "status":
                        state = json.loads(sse.data)
                        if state.get("status") == "WAITING":
                            now = client.why_waiting({**client.job(job_id)})
                            if now != why:
                                why = now
                                on_wait(why)
                    elif sse.event == "end":
                        job: dict[str, Any] = json.loads(sse.data)
                        job.pop("log_size", None)
                        return job
                    if timeout is not None and client.monotonic() - started > timeout:
                        raise WaitTimeout(client.job(job_id), timeout, why)
        except StreamUnsupported:
            left = None if timeout is None else max(0.0, timeout - (client.monotonic() - started))
            return client.wait(job_id, on_log=on_log, timeout=left, on_wait=on_wait,
                               start_offset=offset)
        except (httpx.TransportError, SSEError, binascii.Error, ValueError, KeyError,
                TypeError) as exc:
            if isinstance(exc, httpx.ReadTimeout) and timeout is not None \
                    and client.monotonic() - started >= timeout:
                continue  # the loop's head raises WaitTimeout
            failures += 1
            if failures > MAX_FAILURES:
                raise HwutError(0, "Connection failed", f"lost the log stream of job {job_id} "
                                f"{failures} times: {exc}") from None
            client.sleep(min(0.1 * 2 ** failures, 2.0))
