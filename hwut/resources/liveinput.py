"""``POST /jobs/{id}/input``: console text and button presses into a running job.

Choices where the issue is silent:
- The job's owner or an admin only (403 for others), as for cancel and the logs.
- 400 for a body that is not what :data:`hwut.liveinput.SCHEMA` describes, for a
  button the board lacks, and for input the job's backend cannot take while a job
  runs (the message names the board and the backend); 413 past
  :data:`hwut.liveinput.MAX_BODY_BYTES`; 409 while the job is not RUNNING (it has not
  started, or it has ended); 429 with Retry-After past the job's rate.
- 202 Accepted: the input is on its way to the board and is applied at the board's
  time when its backend takes it (the job's infrastructure log records it with that
  time). The answer's ``board_time_s`` is the board's time as the server last heard
  it, so a client knows the input lands at or after it.
- A job on a remote worker host takes input the same way, with the same bounds and
  answers: the input waits on the server until the host's next report fetches it
  (within the host's ``report_seconds``, 0.25 s by default; see
  :mod:`hwut.broker.protocol`), and ``board_time_s`` is the board's time in the host's
  last report. 429 also when :data:`hwut.liveinput.MAX_PENDING_REMOTE` items wait for
  the host; 400 for a host whose ``hwut worker`` is too old to take input.
"""
from __future__ import annotations

import math
from typing import Any

import falcon

from .. import liveinput
from ..jobs import JobStatus
from ..scheduler import NotRunning
from ..users import User
from .jobs import _JobBase, forbidden, may_act
from .params import bad_request


class InputResource(_JobBase):
    """Send console input or a button press into a running job."""

    #: The request body, as the OpenAPI description shows it (hwut.openapi reads it).
    request_body = {"required": True, "content": {"application/json": {
        "schema": liveinput.SCHEMA}}}

    def __init__(self, *deps: Any, rate: liveinput.RateLimit | None = None) -> None:
        super().__init__(*deps)
        self.rate = rate or liveinput.RateLimit()

    def on_post(self, req: falcon.Request, resp: falcon.Response, job_id: int) -> None:
        """Send console input and/or a button press into a running job."""
        user: User = req.context.user
        job = self.store.jobs.get(job_id)
        if not may_act(user, job):
            raise forbidden(job)
        items = self._items(req)
        if job.status is not JobStatus.RUNNING:
            raise self._not_running(job_id, job.status.value)
        info = self.scheduler.board_info(job.board)
        backend = (info.backend if info is not None and info.backend else
                   "of this board")
        text = sum(len(i.text) for i in items)
        if text and (info is None or not info.live_input):
            raise bad_request(f"board {job.board} (backend {backend}) cannot take console "
                              "input while a job runs; give it at submit ('input')")
        for item in items:
            if item.press is None:
                continue
            if info is None or not info.live_presses:
                raise bad_request(f"board {job.board} (backend {backend}) cannot press "
                                  "buttons while a job runs")
            if item.press not in info.buttons:
                raise bad_request(f"board {job.board} has no button {item.press!r}; its "
                                  f"buttons: {', '.join(info.buttons) or 'none'}")
        wait = self.rate.take(job_id, text)
        if wait is not None:
            raise falcon.HTTPTooManyRequests(
                title="Too Many Requests", retry_after=math.ceil(wait),
                description=f"Job {job_id} takes at most {self.rate.requests} inputs and "
                            f"{self.rate.data} bytes of text per second.")
        board_time = 0.0
        try:
            for item in items:
                board_time = self.scheduler.send_input(job_id, item)
        except liveinput.Unsupported as exc:
            raise bad_request(str(exc)) from None
        except liveinput.Backlog as exc:
            raise falcon.HTTPTooManyRequests(
                title="Too Many Requests", retry_after=1,
                description=f"{exc}; retry in a moment.") from None
        except NotRunning:
            status = self.store.jobs.get(job_id).status.value
            if status == JobStatus.RUNNING.value:  # its process is starting, or between tries
                raise falcon.HTTPConflict(
                    title="Conflict", headers={"Retry-After": "1"},
                    description=f"Job {job_id} is RUNNING but its board is not ready for "
                                "input yet (starting); retry in a moment.") from None
            raise self._not_running(job_id, status) from None
        resp.status = falcon.HTTP_202
        resp.media = {"job": job_id, "board_time_s": board_time, "text_bytes": text,
                      "presses": [{"button": i.press, "hold_s": i.hold_s}
                                  for i in items if i.press is not None]}

    @staticmethod
    def _items(req: falcon.Request) -> list[Any]:
        limit = liveinput.MAX_BODY_BYTES
        too_big = falcon.HTTPContentTooLarge(
            title="Content Too Large", description=f"The body is at most {limit} bytes.")
        if req.content_length is not None and req.content_length > limit:
            raise too_big
        body = req.bounded_stream.read(limit + 1)
        if len(body) > limit:
            raise too_big
        try:
            return liveinput.parse(body)
        except ValueError as exc:
            raise bad_request(str(exc)) from None

    @staticmethod
    def _not_running(job_id: int, status: str) -> falcon.HTTPConflict:
        return falcon.HTTPConflict(
            title="Conflict", description=f"Job {job_id} is {status}; input reaches a job "
                                          "only while it is RUNNING.")
