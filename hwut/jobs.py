"""Job status, the allowed transitions, and the job record with its two API views.

The transition table is the single source of truth for the lifecycle: the store
refuses any status change that is not listed here, so a race between a cancel
and a worker can never produce a job that is, say, CANCELED and then RUNNING.
"""
from __future__ import annotations

import datetime as _dt
from dataclasses import asdict, dataclass, fields
from enum import Enum
from typing import Any


class JobStatus(str, Enum):
    WAITING = "WAITING"    # accepted and stored, waiting for a board instance
    QUEUED = "QUEUED"      # a board instance has claimed it
    RUNNING = "RUNNING"    # the backend runs it; the log grows
    FINISHED = "FINISHED"  # ran to its end: limit, firmware exit or firmware fault
    ERROR = "ERROR"        # the infrastructure failed (backend raised/hung, server restarted)
    CANCELED = "CANCELED"  # by its owner or an admin

    @property
    def ended(self) -> bool:
        return self in ENDED


ENDED = frozenset({JobStatus.FINISHED, JobStatus.ERROR, JobStatus.CANCELED})

#: Every allowed status change. QUEUED -> WAITING exists for one reason: a worker
#: that claimed a job and is told to stop before starting it hands the job back to
#: the queue (graceful shutdown) instead of failing it. After a crash, QUEUED jobs
#: become ERROR instead ("server restarted"), because nobody knows how far they got.
TRANSITIONS: dict[JobStatus, frozenset[JobStatus]] = {
    JobStatus.WAITING: frozenset({JobStatus.QUEUED, JobStatus.CANCELED, JobStatus.ERROR}),
    JobStatus.QUEUED: frozenset({JobStatus.RUNNING, JobStatus.CANCELED, JobStatus.ERROR,
                                 JobStatus.WAITING}),
    JobStatus.RUNNING: frozenset({JobStatus.FINISHED, JobStatus.ERROR, JobStatus.CANCELED}),
    JobStatus.FINISHED: frozenset(),
    JobStatus.ERROR: frozenset(),
    JobStatus.CANCELED: frozenset(),
}


class TransitionError(Exception):
    """A status change the table forbids; the message names both states."""

    def __init__(self, job_id: int, current: JobStatus, wanted: JobStatus) -> None:
        super().__init__(f"job {job_id}: {current.value} -> {wanted.value} is not allowed")
        self.job_id = job_id
        self.current = current
        self.wanted = wanted


def allowed(current: JobStatus, wanted: JobStatus) -> bool:
    return wanted in TRANSITIONS[current]


#: The job fields that name one file in the artifact dir each (the images of a job that
#: carries several are named in ``images``).
ARTIFACT_FIELDS = ("filename_executable", "filename_log", "filename_other", "filename_infra",
                   "filename_trace", "filename_log_times")


def artifact_names(record: dict[str, Any]) -> list[str]:
    """Every artifact name a job record holds, skipping what is not a name (a damaged
    record is not this function's to judge)."""
    names = [record.get(f) for f in ARTIFACT_FIELDS]
    images = record.get("images")
    if isinstance(images, list):
        names.extend(i.get("filename") for i in images if isinstance(i, dict))
    return [n for n in names if isinstance(n, str) and n]


TIME_FORMAT = "%Y-%m-%d %H:%M:%S.%f"


def format_time(moment: _dt.datetime) -> str:
    """The document's timestamp form: ``2020-01-01 00:00:00.000000`` (UTC)."""
    return moment.strftime(TIME_FORMAT)


def utcnow() -> _dt.datetime:
    return _dt.datetime.now(_dt.UTC).replace(tzinfo=None)


SHORT_FIELDS = ("id", "created", "status", "owner")
EXTENDED_FIELDS = SHORT_FIELDS + (
    "comment", "duration_limit_seconds", "filename_executable", "filename_log",
    "filename_other", "board", "format", "started", "finished", "stop_reason",
    "exit_code", "detail", "time_used_seconds", "filename_infra", "input", "presses",
    # additions (issue 16): criteria and the verdict apart from the status; instructions
    "criteria", "verdict", "verdict_reason", "instructions",
    "trace", "filename_trace", "trace_summary", "retries",
    # additions (issue 13): several images in one job; scripted pin levels
    "images", "pins",
    # additions (issue 16, input into a running job; when the board printed the log)
    "realtime", "filename_log_times",
    # additions (issue 18): runs on remote worker hosts
    "attempts", "hosts")


@dataclass
class Job:
    """One job as stored. Filenames are random names inside the data dir, never user input."""

    id: int
    created: str
    status: JobStatus
    owner: str
    board: str
    duration_limit_seconds: int
    filename_executable: str
    format: str
    comment: str | None = None
    filename_log: str | None = None
    filename_other: str | None = None
    #: Emulator or probe messages for this run, kept apart from the UART log.
    filename_infra: str | None = None
    started: str | None = None
    finished: str | None = None
    stop_reason: str | None = None
    exit_code: int | None = None
    detail: str | None = None
    time_used_seconds: float | None = None
    instance: str | None = None
    #: Console input sent once the firmware listens; scripted button presses.
    input: str | None = None
    presses: list[list[Any]] | None = None
    #: The board's time never runs ahead of the wall clock (an interactive job).
    realtime: bool = False
    #: When the board printed each part of the log (hwut.logtime), beside the log.
    filename_log_times: str | None = None
    #: What the job must show (hwut.verdict.Criteria.record()); None: no verdict.
    criteria: dict[str, Any] | None = None
    #: passed/failed/error/canceled with a one-line reason; None without criteria.
    verdict: str | None = None
    verdict_reason: str | None = None
    #: Instructions the run executed, when the backend counts them.
    instructions: int | None = None
    #: Which signals the pin trace holds: None (the board's default), "none" (no
    #: trace), or names joined by commas ("LD2,PA6,USART2_TX"); see hwut.trace.
    trace: str | None = None
    filename_trace: str | None = None
    #: ``hwut.trace.summarize`` of the pin trace, computed once the job ended.
    trace_summary: dict[str, Any] | None = None
    #: How often the job was run again after an infrastructure error (board option
    #: ``retries``); the failed attempts are in its infrastructure log.
    retries: int = 0
    #: A job that carries several images: one record each, in the order given
    #: (``name``, ``format``, ``size``, ``sha256``, ``address`` for a BIN or None, and
    #: ``filename``, its artifact); None: the one ``filename_executable`` (the v1 job).
    images: list[dict[str, Any]] | None = None
    #: Scripted pin levels: [pin, at virtual s, 1/0 or None = released].
    pins: list[list[Any]] | None = None

    #: Remote workers (hwut.broker): how many hosts took the job up (a worker lost
    #: mid-job hands it to another: attempt 2), and which, in order ("host/instance").
    attempts: int = 0
    hosts: list[str] | None = None

    def artifact_names(self) -> list[str]:
        """Every artifact file the job names (its images', its logs' ...)."""
        return artifact_names(self.to_record())

    def to_record(self) -> dict[str, Any]:
        record = asdict(self)
        record["status"] = self.status.value
        return record

    @classmethod
    def from_record(cls, record: dict[str, Any]) -> Job:
        names = {f.name for f in fields(cls)}
        data = {k: v for k, v in record.items() if k in names}
        data["status"] = JobStatus(data["status"])
        return cls(**data)

    def short_view(self) -> dict[str, Any]:
        return {"id": self.id, "created": self.created, "status": self.status.value,
                "owner": self.owner}

    def extended_view(self, queue_position: int | None = None) -> dict[str, Any]:
        """What the owner needs to act: timing, why it stopped, and the queue position."""
        record = self.to_record()
        view = {name: record[name] for name in EXTENDED_FIELDS}
        if self.criteria and self.verdict is None and self.status in (JobStatus.ERROR,
                                                                      JobStatus.CANCELED):
            # ended before it ran (canceled while waiting, never runnable)
            view["verdict"] = "error" if self.status is JobStatus.ERROR else "canceled"
            view["verdict_reason"] = self.detail
        if self.status is JobStatus.WAITING:
            view["queue_position"] = queue_position
        return view
