"""A worker host's report channel for one attempt: buffers the job's bytes, sends them to
the server in numbered reports, and takes the server's answers (a cancel; live input;
a refusal when the attempt was superseded) back to the run."""
from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

import httpx

from hwut.backends.base import CancelReason, CancelToken, LiveItem, Outcome

from .protocol import (
    MAX_CHUNK_BYTES,
    MAX_INPUT_PER_ANSWER,
    MAX_TIMES_BYTES,
    STREAMS,
    ProtocolError,
    Report,
    input_from_json,
)

log = logging.getLogger(__name__)

#: Wait between tries when the server cannot be reached (the report is sent again as is).
RETRY_S = 0.5


class ReportChannel:
    """Reports for (job, attempt) in order, each sent until the server acknowledges it.

    Why one report in flight at a time, resent unchanged: the server applies sequence
    number N once and acknowledges a repeat, so a report whose answer was lost is sent
    again without doubling bytes, and nothing arrives out of order."""

    def __init__(self, client: httpx.Client, job_id: int, attempt: int, token: str,
                 cancel: CancelToken, interval_s: float, give_up_s: float,
                 monotonic: Callable[[], float] = time.monotonic) -> None:
        self.client, self.job_id, self.attempt, self.token = client, job_id, attempt, token
        self.cancel = cancel
        self.interval_s, self.give_up_s = interval_s, give_up_s
        self.monotonic = monotonic
        self._buffers = {name: bytearray() for name in STREAMS}
        #: The log's time index records not sent yet (``hwut.logtime``'s packing).
        self._times = bytearray()
        self._lock = threading.Lock()
        self._pending: Report | None = None
        self._seq = 0
        self._last_ok = monotonic()
        #: The server refused this attempt (superseded, or the job is gone): stop writing.
        self.refused: str | None = None
        #: Where live input goes (the job process's ``send_input``; False: not taken,
        #: e.g. not started yet): set by the host while the job's process runs.
        self.deliver: Callable[[LiveItem], bool] | None = None
        #: The board's time the job last told (None: not known), read for each report.
        self.board_time: Callable[[], float | None] = lambda: None
        #: Live input: the last item passed on, and those received but not yet taken.
        self._input_done = 0
        self._inbox: list[tuple[int, LiveItem]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True,
                                        name=f"hwut-report-{job_id}")

    def sink(self, stream: str) -> Callable[[bytes], None]:
        def write(data: bytes) -> None:
            with self._lock:
                self._buffers[stream] += data
        return write

    def add_times(self, records: bytes) -> None:
        """Time index records of the log (``LogTimes.on_records``): they go with the
        next report, ahead of or with the bytes they describe."""
        with self._lock:
            self._times += records

    def start(self) -> None:
        self._thread.start()

    def _loop(self) -> None:
        while not self._stop.wait(self.interval_s):
            self._round(None)

    def finish(self, outcome: Outcome, cancel: CancelToken, unsupported: bool = False) -> bool:
        """Send what is left and the outcome; True once the server has recorded it.
        ``unsupported``: the host did not run the job (it cannot do what the job scripts)."""
        self._stop.set()
        self._thread.join()
        fields: dict[str, Any] = {
            "reason": outcome.reason.value, "exit_code": outcome.exit_code,
            "time_used_s": outcome.time_used_s, "instructions": outcome.instructions,
            "detail": outcome.detail, "infra_log": outcome.infra_log,
            "cancel_reason": cancel.reason.value if cancel.reason is not None else None,
            "cancel_detail": cancel.detail}
        if unsupported:  # absent otherwise: the version-1 outcome as it was
            fields["unsupported"] = True
        while self.refused is None:
            result = self._round(fields)
            if result == "outcome sent":
                return True
            if result == "unreachable":
                if self.monotonic() - self._last_ok > self.give_up_s:
                    log.error("job %d: the server did not take the outcome for %.0f s; "
                              "dropped", self.job_id, self.give_up_s)
                    return False
                time.sleep(RETRY_S)
        return False

    def _next(self, outcome: dict[str, Any] | None) -> Report:
        """The pending report, or a new one from the buffers (the outcome only once every
        buffered byte went out before it)."""
        if self._pending is not None:
            return self._pending
        with self._lock:
            chunks = {}
            for name, buffer in self._buffers.items():
                chunks[name] = bytes(buffer[:MAX_CHUNK_BYTES])
                del buffer[:MAX_CHUNK_BYTES]
            times = bytes(self._times[:MAX_TIMES_BYTES])
            del self._times[:MAX_TIMES_BYTES]
            empty = not any(self._buffers.values()) and not self._times
        self._pass_input()
        self._pending = Report(self.attempt, self.token, self._seq, chunks,
                               outcome if empty else None, self._input_done,
                               self.board_time(), times)
        return self._pending

    def _take_input(self, items: object) -> None:
        """An answer's live input: each item once, in its order; an unreadable answer
        drops nothing that was read before it (the server sends the rest again)."""
        if not isinstance(items, list):
            return
        last = self._inbox[-1][0] if self._inbox else self._input_done
        for data in items[:MAX_INPUT_PER_ANSWER]:
            try:
                number, item = input_from_json(data)
            except ProtocolError as exc:
                log.warning("job %d: live input dropped: %s", self.job_id, exc)
                return
            if number == last + 1:
                self._inbox.append((number, item))
                last = number
        self._pass_input()

    def _pass_input(self) -> None:
        """Pass waiting input on to the job's process, in order, as far as it takes it."""
        deliver = self.deliver
        while self._inbox and deliver is not None and deliver(self._inbox[0][1]):
            self._input_done = self._inbox.pop(0)[0]

    def _round(self, outcome: dict[str, Any] | None) -> str:
        report = self._next(outcome)
        try:
            answer = self.client.post(f"/apiv1/workers/jobs/{self.job_id}/reports",
                                      json=report.to_json())
        except httpx.HTTPError as exc:
            return self._unreachable(str(exc))
        if answer.status_code in (409, 410):
            self.refused = _description(answer)
            log.warning("job %d attempt %d: the server refused it: %s", self.job_id,
                        self.attempt, self.refused)
            self.cancel.cancel(CancelReason.SHUTDOWN, f"the server refused this attempt: "
                                                      f"{self.refused}")
            return "refused"
        if answer.status_code != 200:
            return self._unreachable(f"HTTP {answer.status_code}: {_description(answer)}")
        self._last_ok = self.monotonic()
        self._pending = None
        self._seq += 1
        data = answer.json()
        self._take_input(data.get("input"))
        cancel = data.get("cancel")
        if isinstance(cancel, dict):
            try:
                reason = CancelReason(cancel.get("reason"))
            except ValueError:
                reason = CancelReason.USER
            self.cancel.cancel(reason, str(cancel.get("detail") or ""))
        return "outcome sent" if report.outcome is not None else "sent"

    def _unreachable(self, why: str) -> str:
        silent = self.monotonic() - self._last_ok
        if silent > self.give_up_s and not self.cancel.is_set():
            log.error("job %d: no report reached the server for %.0f s (%s); stopping it",
                      self.job_id, silent, why)
            self.cancel.cancel(CancelReason.SHUTDOWN,
                               f"the worker lost the server for {silent:.0f} s")
        return "unreachable"


def _description(answer: httpx.Response) -> str:
    try:
        return str(answer.json().get("description") or answer.reason_phrase)[:300]
    except ValueError:
        return answer.reason_phrase
