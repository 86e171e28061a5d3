"""One INFO line per request for the operator: who asked what, the answer and its time.

The query string is left out (it may carry console input), and so is every header:
credentials never reach the log.
"""
from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

import falcon

log = logging.getLogger("hwut.requests")


class RequestLogMiddleware:
    def __init__(self, monotonic: Callable[[], float] = time.monotonic) -> None:
        self.monotonic = monotonic

    def process_request(self, req: falcon.Request, resp: falcon.Response) -> None:
        req.context.started = self.monotonic()

    def process_response(self, req: falcon.Request, resp: falcon.Response, resource: Any,
                         req_succeeded: bool) -> None:
        started = getattr(req.context, "started", None)
        elapsed_ms = (self.monotonic() - started) * 1000 if started is not None else 0.0
        user = getattr(req.context, "user", None)
        log.info("%s %s %s -> %s in %.1f ms (%s)", req.remote_addr or "-", req.method,
                 req.path, resp.status.split(" ", 1)[0] if isinstance(resp.status, str)
                 else resp.status, elapsed_ms, user.name if user is not None else "anonymous")
