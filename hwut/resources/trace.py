"""``GET /jobs/{id}/trace.vcd``: the job's pin trace as a Value Change Dump; and
``GET /jobs/{id}/executable``: the executable as it was uploaded (the web page's
download).

Streamed like the other files (``?offset=N``, ``Range``), for the owner and admins;
404 while the job runs (the trace is written when the run ends) and for a job that
kept none (``trace=none``, or a backend that cannot trace pins). Its summary is in
the job's extended view (``trace_summary``, see ``hwut.trace``).
"""
from __future__ import annotations

from ..jobs import Job
from .jobs import _FileResource


class TraceResource(_FileResource):
    """The pin trace (VCD) of a job that ended."""

    content_type = "text/x-vcd"
    what = "pin trace"

    def filename(self, job: Job) -> str | None:
        return job.filename_trace


class ExecutableResource(_FileResource):
    """The executable the job runs, as uploaded (ELF, HEX or BIN)."""

    content_type = "application/octet-stream"
    what = "executable"

    def filename(self, job: Job) -> str | None:
        return job.filename_executable
