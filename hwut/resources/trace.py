"""``GET /jobs/{id}/trace.vcd``: the job's pin trace as a Value Change Dump; and
``GET /jobs/{id}/executable``: the executable as it was uploaded (the web page's
download).

Streamed like the other files (``?offset=N``, ``Range``), for the owner and admins;
404 while the job runs (the trace is written when the run ends) and for a job that
kept none (``trace=none``, or a backend that cannot trace pins). Its summary is in
the job's extended view (``trace_summary``, see ``hwut.trace``).
"""
from __future__ import annotations

import falcon

from ..jobs import Job
from .jobs import MAX_IMAGES, _FileResource
from .params import int_param


class TraceResource(_FileResource):
    """The pin trace (VCD) of a job that ended."""

    content_type = "text/x-vcd"
    what = "pin trace"

    def filename(self, job: Job) -> str | None:
        return job.filename_trace


class ExecutableResource(_FileResource):
    """The executable the job runs, as uploaded (ELF, HEX or BIN); ``?image=N`` the Nth
    image (from 1) of a job that carries several (404 past the last)."""

    content_type = "application/octet-stream"
    what = "executable"

    def filename(self, job: Job) -> str | None:
        return job.filename_executable

    def filename_for(self, req: falcon.Request, job: Job) -> str | None:
        n = int_param(req, "image", 1, 1, MAX_IMAGES)
        if job.images:
            return str(job.images[n - 1]["filename"]) if n <= len(job.images) else None
        return job.filename_executable if n == 1 else None
