"""``hwut submit`` for CI: criteria from options or a job file, several images at once,
one exit status and one summary line per job.

Kept out of cli.py so the command stays a thin layer: this module decides what to
submit and how several jobs' outcomes combine into one exit status.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from . import junit
from .client import EXIT_CANCELED, EXIT_ERROR, EXIT_FAILED, EXIT_TIMEOUT, Client, exit_code_for
from .images import ImageRef, JobImages, parse_job
from .jobfile import JobFile
from .verdict import Criteria, Pattern

#: How several jobs' exit statuses combine: the first of these any job has wins, so an
#: infrastructure error is never reported as a firmware failure, and a failure never
#: hides behind a pass.
SEVERITY = (EXIT_TIMEOUT, EXIT_ERROR, EXIT_CANCELED, EXIT_FAILED)


def criteria_from_options(expect: Sequence[str], expect_regex: Sequence[str],
                          fail: Sequence[str], fail_regex: Sequence[str], ordered: bool,
                          exit_code: int | None, on_limit: str | None,
                          run_to_end: bool, base: Criteria | None = None,
                          parse: str | None = None,
                          expect_pin: Sequence[str] = ()) -> Criteria | None:
    """The command line's criteria, added to a job file's (``base``); None: no criteria.
    Raises :class:`hwut.verdict.CriteriaError` with the reason."""
    base = base or Criteria()
    criteria = Criteria(
        expect=base.expect + tuple(Pattern(t) for t in expect)
        + tuple(Pattern(r, regex=True) for r in expect_regex),
        fail=base.fail + tuple(Pattern(t) for t in fail)
        + tuple(Pattern(r, regex=True) for r in fail_regex),
        ordered=ordered or base.ordered,
        exit_code=exit_code if exit_code is not None else base.exit_code,
        on_limit=on_limit or base.on_limit, run_to_end=run_to_end or base.run_to_end,
        parse=parse or base.parse, expect_pin=base.expect_pin + tuple(expect_pin))
    return None if criteria.empty else criteria


def combined_exit(codes: Sequence[int]) -> int:
    """One exit status for several jobs (see :data:`SEVERITY`); a single job's as is."""
    if len(codes) == 1:
        return codes[0]
    for code in SEVERITY:
        if code in codes:
            return code
    return next((c for c in codes if c != 0), 0)


def submit_all(client: Client, images: Sequence[JobImages], board: str, limit: int | None,
               comment: str | None, console_input: str | None, presses: Sequence[str],
               criteria: Criteria | None, trace: str | None = None,
               pins: Sequence[str] = (), realtime: bool = False) -> list[dict[str, Any]]:
    """Submit every job (each one image, or several: ``boot.elf+app.elf``) before waiting
    for any, so they run in parallel on the board's instances. A job of one image with
    no address goes as the v1 raw upload; one of several as one multipart upload."""
    return [client.submit(_upload(job), board, limit, comment, console_input=console_input,
                          presses=list(presses), criteria=criteria, trace=trace,
                          pins=list(pins), realtime=realtime)
            for job in images]


def _upload(job: JobImages) -> Path | list[ImageRef]:
    if len(job) == 1 and job[0].address is None:
        return job[0].path
    return list(job)


def jobs_from_args(files: Sequence[str]) -> list[JobImages]:
    """Each command-line argument is one job: ``app.elf``, or ``boot.elf+app.elf`` (one
    job, two images); ValueError for a bad one or a file that does not exist."""
    jobs = [parse_job(f) for f in files]
    missing = [str(i.path) for job in jobs for i in job if not i.path.is_file()]
    if missing:
        raise ValueError(f"no such file: {', '.join(missing)} (join the images of one job "
                         "with '+', e.g. boot.elf+app.elf; place a BIN with @ADDRESS)")
    return jobs


def merge_jobfile(job_file: JobFile | None, files: Sequence[str], board: str | None,
                  limit: int | None, comment: str | None, console_input: str | None,
                  presses: Sequence[str], pins: Sequence[str] = ()
                  ) -> tuple[list[JobImages], str | None, int | None, str | None, str | None,
                             list[str], list[str]]:
    """The command line wins over the job file, option by option; images (jobs) add up.
    ValueError for an argument that names no file."""
    images = jobs_from_args(files)
    if job_file is None:
        return images, board, limit, comment, console_input, list(presses), list(pins)
    return (list(job_file.images) + images, board or job_file.board,
            limit if limit is not None else job_file.limit, comment or job_file.comment,
            console_input if console_input is not None else job_file.input,
            list(presses) or list(job_file.presses), list(pins) or list(job_file.pins))


def exit_codes(finals: Sequence[dict[str, Any]]) -> list[int]:
    return [exit_code_for(job) for job in finals]


Stream = Callable[[bytes], None]


def write_junit(client: Client, finals: Sequence[dict[str, Any]], target: Path) -> None:
    """One JUnit report for every job; a job given up on (--timeout) is an error case.
    Written next to ``target`` and renamed, so CI never reads half a file."""
    documents = []
    for job in finals:
        if job.get("_timeout"):
            case = junit.Case("run", "error", 0.0, f"gave up waiting: job still {job['status']}")
            documents.append(junit.report([junit.testsuite(job, [case])]))
        else:
            documents.append(client.junit(job["id"]))
    partial = target.with_name(target.name + ".partial")
    partial.write_bytes(junit.merge(documents))
    partial.replace(target)
