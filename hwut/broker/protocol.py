"""What crosses between the server and a worker host, version 1.

Jobs go out through the broker as Celery tasks named :data:`TASK_NAME` with one
argument, a :class:`Task` as JSON. Everything else goes back over the server's HTTP API
(``/apiv1/workers/...``, authenticated with the worker token): why HTTP and not a
reply queue is that the server then records a report while answering it, the answer
carries the cancel (a job learns it was canceled within one report interval), and
the log bytes land in the same file the log and SSE routes already read.

Exactly once, in order: a task carries a ``claim`` (a secret made for that publish);
a host that takes the task up opens an *attempt* with it and gets the attempt's
number and its own secret. Every report names (job, attempt, secret, seq); the server
applies seq N once, answers a repeated seq with the same acknowledgement and refuses
a gap, and refuses any report of an attempt that is not the job's current one
(fencing: a host that comes back after its job went elsewhere cannot write).

Live input into a running job (``POST /jobs/{id}/input``) goes the way a cancel goes:
in the answers to the running attempt's reports. The server numbers each item of an
attempt from 1 and repeats every item not yet acknowledged in each answer
(``"input": [...]``, :func:`input_to_json`); the host passes an item on to the job's
process once, in order, and says how far it got in its next report
(``"input_ack": n``), with the board's time it last heard from the job
(``"board_time_s"``). So an answer that is lost loses no input and a repeated one
doubles none, and only the attempt's own secret gets its input (fencing, as for the
rest). A host says it takes input when it opens the attempt (``"takes": ["input"]``);
the server refuses input for an attempt of a host that did not.

A report also carries the log's time index records made since the last one
(``"times"``: ``hwut.logtime``'s packed records, base64), so that the server keeps the
same index beside the log as for its own runs: the live stream's ``time`` events and
the verdict's match times work for remote jobs too.

Every message carries ``"v": 1``; a side refuses a version it does not know. Fields
added since (``images``; ``takes``, ``input``, ``input_ack``, ``board_time_s``;
``times``) are
optional: a side that does not know them ignores them, and their absence means what
it meant before them.
"""
from __future__ import annotations

import base64
import binascii
import math
from dataclasses import dataclass, field
from typing import Any

from hwut.backends.base import LiveItem

from .. import liveinput
from ..logtime import RECORD

VERSION = 1
TASK_NAME = "hwut.run_job"
#: Largest raw byte chunk of one stream in one report (base64 makes it a third more).
MAX_CHUNK_BYTES = 256 * 1024
#: Streams a report may carry, as the job's files name them.
STREAMS = ("uart", "other", "trace")
#: Images one task may carry besides its executable (the submit's own bound is lower).
MAX_IMAGES = 16
#: What a host may take besides running jobs (the attempt's ``takes``).
TAKES_INPUT = "input"
#: Live input items one answer carries at most (the rest come in the next answers).
MAX_INPUT_PER_ANSWER = 32
#: Largest run of log time records in one report (packed as ``hwut.logtime`` writes
#: them, 16 bytes each: 4096 records); the rest come in the next reports.
MAX_TIMES_BYTES = 64 * 1024
TIME_RECORD_BYTES = RECORD.size


class ProtocolError(ValueError):
    """A message this side cannot read; the message says what is wrong."""


def queue_name(board: str) -> str:
    """The queue of a board type: every host serving ``board`` consumes it."""
    return f"hwut.board.{board}"


def _check_version(data: Any, what: str) -> dict[str, Any]:
    if not isinstance(data, dict):
        raise ProtocolError(f"{what}: a JSON object is needed")
    if data.get("v") != VERSION:
        raise ProtocolError(f"{what}: protocol version {data.get('v')!r} is not {VERSION}")
    return data


def _field(data: dict[str, Any], key: str, kind: type | tuple[type, ...], what: str) -> Any:
    value = data.get(key)
    if not isinstance(value, kind) or isinstance(value, bool) and kind is not bool:
        raise ProtocolError(f"{what}: {key} is missing or of the wrong type")
    return value


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def unb64(text: Any, what: str, limit: int) -> bytes:
    if not isinstance(text, str) or len(text) > (limit * 4) // 3 + 8:
        raise ProtocolError(f"{what}: not base64 text within {limit} bytes")
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise ProtocolError(f"{what}: not base64") from None


@dataclass(frozen=True)
class TaskImage:
    """One image of a job that carries several: as the job record names it, and its bytes."""

    name: str
    format: str
    #: Where a BIN goes; None: it places itself (ELF, HEX) or goes at the flash start.
    address: int | None
    data: bytes

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "format": self.format, "address": self.address,
                "data": b64(self.data)}

    @classmethod
    def from_json(cls, data: Any, max_bytes: int) -> TaskImage:
        if not isinstance(data, dict):
            raise ProtocolError("task image: a JSON object is needed")
        address = data.get("address")
        if address is not None and (not isinstance(address, int) or isinstance(address, bool)
                                    or not 0 <= address < 1 << 32):
            raise ProtocolError("task image: address is not a 32-bit address")
        fmt = _field(data, "format", str, "task image")
        if fmt not in ("elf", "hex", "bin"):
            raise ProtocolError(f"task image: format {fmt[:20]!r} is not elf, hex or bin")
        return cls(name=_field(data, "name", str, "task image")[:200], format=fmt,
                   address=address, data=unb64(data.get("data"), "task image", max_bytes))


@dataclass(frozen=True)
class Task:
    """One job as published: the run (a :class:`hwut.runner.spec.JobSpec` without what
    the host decides: backend, options, where the executable lies) and the executable."""

    job_id: int
    board: str
    claim: str
    #: JobSpec fields the server decides (time limit, input, presses, limits, budget).
    run: dict[str, Any]
    executable: bytes
    #: Every image of a job that carries several, in order; empty: the one executable.
    images: tuple[TaskImage, ...] = ()
    #: The broker's consumer timeout as the server's config states it: a host that
    #: would hold the message longer (its backend's allowance added) does not run the
    #: job. None (absent: an older server): not checked.
    consumer_timeout_s: float | None = None

    def to_json(self) -> dict[str, Any]:
        data = {"v": VERSION, "job_id": self.job_id, "board": self.board, "claim": self.claim,
                "run": self.run, "executable": b64(self.executable)}
        if self.images:  # absent for a one-image job: the version-1 task as it was
            data["images"] = [i.to_json() for i in self.images]
        if self.consumer_timeout_s is not None:  # additive, as images
            data["consumer_timeout_s"] = self.consumer_timeout_s
        return data

    @classmethod
    def from_json(cls, data: Any, max_executable: int = 64 * 1024 * 1024) -> Task:
        data = _check_version(data, "task")
        return cls(job_id=_field(data, "job_id", int, "task"),
                   board=_field(data, "board", str, "task"),
                   claim=_field(data, "claim", str, "task"),
                   run=_field(data, "run", dict, "task"),
                   executable=unb64(data.get("executable"), "task executable", max_executable),
                   images=cls._images(data.get("images", []), max_executable),
                   consumer_timeout_s=cls._seconds(data.get("consumer_timeout_s")))

    @staticmethod
    def _seconds(value: Any) -> float | None:
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
            raise ProtocolError("task: consumer_timeout_s is not a positive number")
        return float(value)

    @staticmethod
    def _images(data: Any, max_bytes: int) -> tuple[TaskImage, ...]:
        if not isinstance(data, list) or len(data) > MAX_IMAGES:
            raise ProtocolError(f"task: images is not a list of at most {MAX_IMAGES}")
        return tuple(TaskImage.from_json(i, max_bytes) for i in data)


@dataclass(frozen=True)
class Report:
    """A running attempt's news: bytes of its streams, and at the end its outcome."""

    attempt: int
    token: str
    seq: int
    chunks: dict[str, bytes] = field(default_factory=dict)
    #: The run's outcome (set once, in the last report): reason, exit_code, time_used_s,
    #: instructions, detail, infra_log, cancel_reason, cancel_detail.
    outcome: dict[str, Any] | None = None
    #: The last live input item passed on to the job (None: the host takes no input).
    input_ack: int | None = None
    #: The board's time the host last heard from the job (None: not known).
    board_time_s: float | None = None
    #: The log's time index records made since the last report (``hwut.logtime``'s
    #: packed records, in the log's offsets), so the server keeps the same index.
    times: bytes = b""

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {"v": VERSION, "attempt": self.attempt, "token": self.token,
                                "seq": self.seq}
        data.update({name: b64(chunk) for name, chunk in self.chunks.items() if chunk})
        if self.outcome is not None:
            data["outcome"] = self.outcome
        if self.input_ack is not None:
            data["input_ack"] = self.input_ack
        if self.board_time_s is not None:
            data["board_time_s"] = self.board_time_s
        if self.times:
            data["times"] = b64(self.times)
        return data

    @classmethod
    def from_json(cls, data: Any) -> Report:
        data = _check_version(data, "report")
        seq = _field(data, "seq", int, "report")
        attempt = _field(data, "attempt", int, "report")
        if seq < 0 or attempt < 1:
            raise ProtocolError("report: seq must be >= 0 and attempt >= 1")
        chunks = {name: unb64(data[name], f"report {name}", MAX_CHUNK_BYTES)
                  for name in STREAMS if name in data}
        outcome = data.get("outcome")
        if outcome is not None and not isinstance(outcome, dict):
            raise ProtocolError("report: outcome must be an object")
        ack = data.get("input_ack")
        if ack is not None and (not isinstance(ack, int) or isinstance(ack, bool) or ack < 0):
            raise ProtocolError("report: input_ack must be an integer >= 0")
        board_time = data.get("board_time_s")
        if board_time is not None and (isinstance(board_time, bool)
                                       or not isinstance(board_time, int | float)
                                       or not math.isfinite(board_time) or board_time < 0):
            raise ProtocolError("report: board_time_s must be a number of seconds >= 0")
        times = unb64(data["times"], "report times", MAX_TIMES_BYTES) if "times" in data \
            else b""
        if len(times) % TIME_RECORD_BYTES:
            raise ProtocolError(f"report: times must be whole {TIME_RECORD_BYTES}-byte "
                                "records")
        return cls(attempt, _field(data, "token", str, "report"), seq, chunks, outcome, ack,
                   None if board_time is None else float(board_time), times)


def input_to_json(number: int, item: LiveItem) -> dict[str, Any]:
    """One live input item of an answer: its number in the attempt, text or press."""
    if item.press is not None:
        return {"n": number, "press": item.press, "hold_s": item.hold_s}
    return {"n": number, "text": b64(item.text)}


def input_from_json(data: Any) -> tuple[int, LiveItem]:
    """(number, item) of an answer's input, within the API's own bounds
    (:mod:`hwut.liveinput`), or :class:`ProtocolError`."""
    if not isinstance(data, dict):
        raise ProtocolError("input: a JSON object is needed")
    number = _field(data, "n", int, "input")
    if number < 1:
        raise ProtocolError("input: n must be >= 1")
    press = data.get("press")
    if press is not None:
        hold = data.get("hold_s")
        if not isinstance(press, str) or not 0 < len(press) <= 16 or not press.isascii() \
                or not press.replace("_", "").isalnum():
            raise ProtocolError("input: press is not a button name")
        if isinstance(hold, bool) or not isinstance(hold, int | float) \
                or not 0 < hold <= liveinput.MAX_HOLD_S:
            raise ProtocolError(f"input: hold_s is not a number of seconds within "
                                f"{liveinput.MAX_HOLD_S:g}")
        return number, LiveItem(press=press, hold_s=float(hold))
    text = unb64(data.get("text"), "input text", liveinput.MAX_TEXT_BYTES)
    if not text or len(text) > liveinput.MAX_TEXT_BYTES:
        raise ProtocolError(f"input: text is 1 to {liveinput.MAX_TEXT_BYTES} bytes")
    return number, LiveItem(text=text)


def check(data: Any, what: str) -> dict[str, Any]:
    """A versioned message as a dict, or :class:`ProtocolError`."""
    return _check_version(data, what)
