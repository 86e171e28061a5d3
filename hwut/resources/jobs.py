"""Job routes: submit, show, cancel, is_finished, list, log and the trace files.

Choices where the v1 document is silent:
- Submit answers at once, with the reason, whatever it can know before a run:
  400 for a bad or unknown query parameter, an empty body, a press of a button
  the board lacks, console input or presses its backend cannot feed, and an
  executable that needs memory the board asked for lacks; 413 for an oversized
  body; 415 for a body that is not a Cortex-M ELF/HEX/BIN at all; 503 (with
  Retry-After) when no instance of the board can run jobs (none configured, or
  every one unavailable), instead of a job that would wait for ever; 429 (with
  Retry-After) when the user already has ``quota.max_waiting_jobs`` WAITING jobs,
  checked before the body is read (admins are exempt while ``quota.admins_exempt``).
- The owner and admins get the extended view (with ``queue_position`` while
  WAITING); everybody else signed in gets the short view. Logs, trace files and
  cancel are for the owner and admins only (403 for others).
- The log exists from the moment the job is RUNNING and grows while it runs, so
  ``GET .../log`` answers 404 only before that (WAITING, QUEUED, or a job that
  never started). ``?offset=N`` returns the bytes from N on, and the headers
  ``X-HWUT-Job-Status`` and ``X-HWUT-Size`` let a poller know when it has all.
- ``GET .../other`` is the ITM/SWO trace, ``GET .../infra_log`` what the emulator
  or probe said about the run; both 404 when the run produced none.
- Several images in one job (a bootloader and its application): the body is
  ``multipart/form-data`` with one file part per image (at most ``MAX_IMAGES``, each
  within the executable size limit), named ``image``, or ``image@0x0800A000`` for a BIN
  placed at that address (a BIN without one goes at the start of flash; an ELF or HEX
  places itself, so an address for one is refused). Each must fit the board's memory,
  no two may overlap (400 naming both files and the range), and together they must
  boot. The raw body of v1 stays one image, unchanged.
- ``pin=PA0@0:1`` (repeatable): drive a pin to 1/0 at a virtual time, or release it
  (``z``) to what the board leaves on it; 400 for a pin the board lacks and on a backend
  that cannot drive pins.
"""
from __future__ import annotations

import hashlib
import logging
import os
from typing import Any
from urllib.parse import parse_qsl

import falcon
from falcon.media.multipart import (
    MultipartFormHandler,
    MultipartParseError,
    MultipartParseOptions,
)

from hwut.backends import image as firmware
from hwut.backends.base import ARMV7M, BoardInfo, MemoryMap

from .. import inputs, junit, verdict
from .. import trace as pintrace
from ..config import Config
from ..images import parse_address
from ..jobs import Job, JobStatus, TransitionError
from ..scheduler import Scheduler
from ..server import BODY_SLACK_BYTES
from ..store import QuotaExceeded, Store
from ..users import User
from .files import FileSlice, StreamSlots, byte_range
from .params import bad_request, bool_param, int_param, single

log = logging.getLogger(__name__)

MAX_COMMENT = 1000
#: Query parameters of PUT /jobs/submit; any other is refused (a typo must not turn
#: into a default silently).
SUBMIT_PARAMS = ("board", "duration_limit_seconds", "comment", "input", "press", "trace",
                 "realtime", *verdict.CRITERIA_PARAMS, "pin")
#: Images one job may carry (a multipart submit's file parts).
MAX_IMAGES = 8
#: How long a client's name of an image may be (kept for the job record, never a path).
MAX_IMAGE_NAME = 100
_MULTIPART = "multipart/form-data"
_CONTROL = dict.fromkeys([*range(32), 127], None)
#: Seconds a client is told to wait before trying a board that cannot run jobs again.
RETRY_AFTER_S = 60


def may_act(user: User, job: Job) -> bool:
    """Owners and admins see everything about a job and may cancel it."""
    return user.is_admin or user.name == job.owner


def forbidden(job: Job) -> falcon.HTTPForbidden:
    return falcon.HTTPForbidden(title="Forbidden",
                                description=f"Job {job.id} belongs to another user.")


class _JobBase:
    def __init__(self, store: Store, scheduler: Scheduler, config: Config) -> None:
        self.store = store
        self.scheduler = scheduler
        self.config = config

    def view(self, user: User, job: Job) -> dict[str, Any]:
        if may_act(user, job):
            return job.extended_view(self.store.jobs.queue_position(job))
        return job.short_view()

    def known_boards(self) -> list[str]:
        names = {b.name for b in self.config.boards}
        names.update(self.store.targets.names("boards"))
        return sorted(names)


class SubmitResource(_JobBase):
    def _duration(self, req: falcon.Request) -> int:
        low = self.config["limits.min_duration_seconds"]
        high = self.config["limits.max_duration_seconds"]
        return int_param(req, "duration_limit_seconds",
                         self.config["limits.default_duration_seconds"], low, high)

    def _read_body(self, req: falcon.Request) -> bytes:
        limit = int(self.config["limits.max_executable_bytes"])
        too_big = falcon.HTTPContentTooLarge(
            title="Content Too Large",
            description=f"The executable is larger than the limit of {limit} bytes.")
        if req.content_length is not None and req.content_length > limit:
            raise too_big
        data = req.bounded_stream.read(limit + 1)
        if len(data) > limit:
            raise too_big
        return data

    @staticmethod
    def _check_executable(board: str, data: bytes, memory: MemoryMap,
                          name: str | None = None, address: int | None = None,
                          boot: bool = True) -> firmware.FirmwareImage:
        """The executable parsed and checked, or the refusal (400 does not fit, 415 not an
        executable); ``name``: the file's name among several, said in the refusal."""
        of = f" ({name!r})" if name is not None else ""
        if not data:
            if name is not None:
                raise bad_request(f"the image {name!r} is empty")
            raise bad_request("the executable (the request body) is empty; send an ELF, "
                              "Intel HEX or BIN file, e.g. with curl -T firmware.elf")
        if address is not None and firmware.detect_format(data) != "bin":
            raise bad_request(f"{name!r} is placed at 0x{address:08x}, but only a BIN takes "
                              "an address: an ELF or HEX places itself (name its part "
                              "'image')")
        try:
            return firmware.parse(data, memory=memory, address=address, boot=boot)
        except firmware.DoesNotFit as exc:
            raise bad_request(f"The executable{of} does not fit board {board}: {exc}") from None
        except firmware.InvalidFirmware as exc:
            raise falcon.HTTPUnsupportedMediaType(
                title="Unsupported Media Type",
                description=f"Not a runnable executable{of}: {exc}") from None
        except Exception as exc:  # noqa: BLE001 - the parser must never turn an upload into a 500
            log.warning("firmware parser failed on an upload: %r", exc)
            raise falcon.HTTPUnsupportedMediaType(
                title="Unsupported Media Type",
                description=f"Not a runnable executable{of}: it cannot be parsed as ELF, "
                            "Intel HEX or a Cortex-M BIN image") from None

    def _read_images(self, req: falcon.Request, board: str, memory: MemoryMap
                     ) -> list[tuple[dict[str, Any], bytes]]:
        """The images of a multipart submit, each checked, together checked for overlaps
        and a bootable whole: (record, bytes) in the order sent."""
        uploads = read_parts(req, int(self.config["limits.max_executable_bytes"]))
        several = len(uploads) > 1
        parsed = []
        images = []
        for name, address, data in uploads:
            image = self._check_executable(board, data, memory, name, address,
                                           boot=not several)
            parsed.append((name, image))
            images.append(({"name": name, "format": image.format, "size": len(data),
                            "sha256": hashlib.sha256(data).hexdigest(), "address": address},
                           data))
        try:
            firmware.combine(parsed, memory)
        except firmware.Overlap as exc:
            raise bad_request(f"The images do not fit together on board {board}: "
                              f"{exc}") from None
        except firmware.DoesNotFit as exc:
            raise bad_request(f"The images together do not boot on board {board}: "
                              f"{exc}") from None
        except firmware.InvalidFirmware as exc:
            raise falcon.HTTPUnsupportedMediaType(
                title="Unsupported Media Type",
                description=f"The images together are not a runnable executable: {exc}"
                ) from None
        return images

    def _refuse_unknown_params(self, req: falcon.Request) -> None:
        unknown = sorted(set(req.params) - set(SUBMIT_PARAMS))
        if unknown:
            shown = ", ".join(repr(u if len(u) <= 40 else u[:40] + "...") for u in unknown[:5])
            raise bad_request(f"unknown query parameter(s) {shown}; allowed: "
                              f"{', '.join(SUBMIT_PARAMS)}")

    def _refuse_unrunnable(self, board: str) -> None:
        """503 at once rather than a job that would wait for ever."""
        reason = self.scheduler.why_not_runnable(board)
        if reason is not None:
            raise falcon.HTTPServiceUnavailable(
                title="Service Unavailable", description=f"Not accepted: {reason}.",
                retry_after=RETRY_AFTER_S)

    def _backend_named(self, board: str) -> str:
        """'its backend, physical,' for a refusal's text (a board served by no backend
        of the config has no name to give)."""
        configured = self.config.board(board)
        return "its backend" if configured is None else f"its backend, {configured.backend},"

    def _check_for_board(self, board: str, info: BoardInfo | None, console_input: str | None,
                         presses: list[inputs.Press],
                         pins: list[inputs.PinDrive] | None = None) -> None:
        """What the board (through its backend's BoardInfo) can check before a run; with
        remote worker hosts, also what each instance the job may land on can do."""
        lacking = self.scheduler.lacking(board)
        refusals = ((pins and "pins" in lacking, "pins",
                     "cannot drive pins ('pin'): {} does not support scripted pin levels"),
                    (presses and "presses" in lacking, "presses",
                     "cannot run scripted button presses ('press'): {} does not support them"),
                    (console_input is not None and "console_input" in lacking, "console_input",
                     "cannot be fed console input ('input'): {} does not support it"))
        for refused, what, why in refusals:
            if refused:
                raise bad_request(f"board {board} {why.format(lacking[what])}")
        if pins:
            if info is None or not info.drive_pins:
                raise bad_request(f"board {board} cannot drive pins ('pin'): "
                                  f"{self._backend_named(board)} does not support scripted "
                                  "pin levels")
            unknown = sorted({p for p, _, _ in pins} - info.pin_names)
            if unknown:
                ports = "".join(sorted({p[1] for p in info.pin_names}))
                raise bad_request(f"board {board} has no pin {', '.join(map(repr, unknown))}; "
                                  f"its pins are P<port><0-15> with ports {ports} (GET "
                                  f"/targets/boards/{board} lists them with their defaults)")
        if presses:
            if info is None or not info.presses:
                raise bad_request(f"board {board} cannot run scripted button presses "
                                  f"('press'): {self._backend_named(board)} does not support "
                                  "them")
            unknown = sorted({b for b, _, _ in presses} - set(info.buttons))
            if unknown:
                raise bad_request(f"board {board} has no button {', '.join(map(repr, unknown))}"
                                  f"; its buttons: {', '.join(info.buttons) or 'none'}")
        if console_input is not None and (info is None or not info.console_input):
            raise bad_request(f"board {board} cannot be fed console input ('input'): "
                              f"{self._backend_named(board)} does not support it")

    def _max_waiting(self, user: User) -> int | None:
        """The user's waiting-jobs quota; None for no limit."""
        limit = int(self.config["quota.max_waiting_jobs"])
        if limit == 0 or (user.is_admin and self.config["quota.admins_exempt"]):
            return None
        return limit

    @staticmethod
    def _check_pin_signal(text: str, info: BoardInfo | None) -> None:
        """ValueError (400) for a pin expectation naming a signal the board lacks (its
        grammar was checked with the criteria)."""
        signal = pintrace.parse_expectation(text).signal
        try:
            known = pintrace.parse_trace_option(signal, info.leds if info else (),
                                                info.console if info else "")
        except ValueError as exc:
            why = str(exc).removeprefix("'trace': ")
            raise ValueError(f"expect_pin {text!r}: {why}") from None
        if known in (None, "none"):  # 'none' and 'default' are options, not signals
            raise ValueError(f"expect_pin {text!r}: {signal!r} is not a signal name")

    def _refuse_over_quota(self, user: User, limit: int | None) -> None:
        """429 before the body is read (the store checks again, under its lock)."""
        waiting = self.store.jobs.waiting_count(user.name)
        if limit is not None and waiting >= limit:
            raise QuotaExceeded(user.name, limit, waiting)

    def on_put(self, req: falcon.Request, resp: falcon.Response) -> None:
        user: User = req.context.user
        self._refuse_unknown_params(req)
        known = self.known_boards()
        board = single(req, "board")
        if not board:
            raise bad_request(f"'board' is required; known boards: {', '.join(known)}")
        if board not in known:
            shown = board if len(board) <= 64 else board[:64] + "..."
            raise bad_request(f"unknown board {shown!r}; known boards: {', '.join(known)}")
        duration = self._duration(req)
        # an interactive job: the board's time keeps to the wall clock (POST .../input)
        realtime = bool_param(req, "realtime")
        comment = single(req, "comment")
        if comment is not None and len(comment) > MAX_COMMENT:
            raise bad_request(f"'comment' is at most {MAX_COMMENT} characters")
        try:
            console_input = inputs.parse_input(single(req, "input"))
            presses = inputs.parse_presses(req.get_param_as_list("press"), duration)
            pins = inputs.parse_pins(req.get_param_as_list("pin"), duration)
            # in the order sent: an ordered expectation list mixes texts and regexes
            criteria = verdict.criteria_from_params(
                parse_qsl(req.query_string, keep_blank_values=True, max_num_fields=500))
        except ValueError as exc:
            raise bad_request(str(exc)) from None
        self._refuse_unrunnable(board)
        max_waiting = self._max_waiting(user)
        self._refuse_over_quota(user, max_waiting)
        info = self.scheduler.board_info(board)
        self._check_for_board(board, info, console_input, presses, pins)
        try:
            trace = pintrace.parse_trace_option(single(req, "trace"),
                                                info.leds if info else (),
                                                info.console if info else "")
            for text in criteria.expect_pin if criteria else ():
                self._check_pin_signal(text, info)
        except ValueError as exc:
            raise bad_request(str(exc)) from None
        memory = info.memory if info else ARMV7M
        images: list[tuple[dict[str, Any], bytes]] | None = None
        if req.content_type and req.content_type.split(";")[0].strip().lower() == _MULTIPART:
            images = self._read_images(req, board, memory)
            data, fmt = images[0][1], images[0][0]["format"]
        else:
            data = self._read_body(req)
            fmt = self._check_executable(board, data, memory).format
        job = self.store.jobs.submit(user.name, board, duration, data, fmt,
                                     comment=comment, console_input=console_input,
                                     presses=presses, max_waiting=max_waiting,
                                     criteria=criteria.record() if criteria else None,
                                     trace=trace, images=images, pins=pins,
                                     realtime=realtime)
        resp.status = falcon.HTTP_201
        resp.location = f"/apiv1/jobs/{job.id}"
        resp.media = self.view(user, job)


def image_name(raw: str | None, n: int) -> str:
    """A client's file name as the job record keeps it (never used as a path): control
    characters dropped, at most MAX_IMAGE_NAME characters; ``image<n>`` when none."""
    text = (raw or "").translate(_CONTROL).strip()
    text = text.replace("\\", "/").rsplit("/", 1)[-1]  # a path's last part
    return text[:MAX_IMAGE_NAME] or f"image{n}"


def part_address(field: str | None) -> int | None:
    """``image`` -> None, ``image@0x0800A000`` -> the address; ValueError otherwise."""
    if field == "image":
        return None
    if field is None or not field.startswith("image@"):
        shown = repr(field if field is None or len(field) <= 40 else field[:40] + "...")
        raise ValueError(f"form field {shown} is not an image: name each file part "
                         "'image', or 'image@0x0800A000' for a BIN placed at that address")
    return parse_address(field.removeprefix("image@"))


def read_parts(req: falcon.Request, limit: int) -> list[tuple[str, int | None, bytes]]:
    """(name, BIN address or None, bytes) of each file part of a multipart submit, in
    order: at most MAX_IMAGES parts, the whole body within one upload's bound (``limit``
    and the framing the server allows: waitress refuses more before the app sees it),
    read in bounded chunks; 413 past it, 400 for anything else. One bound for the whole
    body keeps what one request may make the server spool to disk what it was."""
    total_limit = limit + BODY_SLACK_BYTES
    if req.content_length is None:  # the multipart reader needs to know where the body ends
        raise falcon.HTTPLengthRequired(
            title="Length Required",
            description="a multipart submit needs a Content-Length header")
    if req.content_length == 0:
        raise bad_request("the multipart body is empty; send one file part named 'image' "
                          "per image")
    if req.content_length > total_limit:
        raise falcon.HTTPContentTooLarge(
            title="Content Too Large",
            description=f"The images of one job are together larger than the limit of "
                        f"{limit} bytes.")
    options = MultipartParseOptions()
    options.max_body_part_count = MAX_IMAGES
    options.max_body_part_headers_size = 4096
    options.max_secure_filename_length = MAX_IMAGE_NAME
    form = MultipartFormHandler(options).deserialize(
        req.bounded_stream, req.content_type or "", req.content_length)
    out: list[tuple[str, int | None, bytes]] = []
    parts = iter(form)
    while True:
        try:
            part = next(parts, None)
            if part is None:
                break
            field, filename = part.name, part.filename
        except MultipartParseError as exc:
            raise bad_request(f"the multipart body cannot be read ({exc.description}); at "
                              f"most {MAX_IMAGES} file parts, one per image") from None
        try:
            address = part_address(field)
        except ValueError as exc:
            raise bad_request(str(exc)) from None
        name = image_name(filename, len(out) + 1)
        try:
            data = part.stream.read(limit + 1)
        except MultipartParseError as exc:
            raise bad_request(f"the multipart body cannot be read ({exc.description})"
                              ) from None
        if len(data) > limit:
            raise falcon.HTTPContentTooLarge(
                title="Content Too Large",
                description=f"The image {name!r} is larger than the limit of {limit} bytes.")
        out.append((name, address, data))
    if not out:
        raise bad_request("the multipart body holds no image; send one file part named "
                          "'image' per image")
    return out


class JobResource(_JobBase):
    def on_get(self, req: falcon.Request, resp: falcon.Response, job_id: int) -> None:
        resp.media = self.view(req.context.user, self.store.jobs.get(job_id))

    def on_delete(self, req: falcon.Request, resp: falcon.Response, job_id: int) -> None:
        user: User = req.context.user
        job = self.store.jobs.get(job_id)
        if not may_act(user, job):
            raise forbidden(job)
        try:
            self.scheduler.cancel(job_id, by=user.name)
        except TransitionError as exc:
            raise bad_request(
                f"Unable to cancel job. Current job status: {exc.current.value}") from None
        resp.status = falcon.HTTP_204


class IsFinishedResource(_JobBase):
    def on_get(self, req: falcon.Request, resp: falcon.Response, job_id: int) -> None:
        job = self.store.jobs.get(job_id)
        if not job.status.ended:
            raise falcon.HTTPNotFound(title="Not Found",
                                      description=f"Job {job_id} is {job.status.value}.")
        resp.status = falcon.HTTP_204


class JobListResource(_JobBase):
    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        user: User = req.context.user
        limit = int_param(req, "limit", 50, 0, 1000)
        offset = int_param(req, "offset", 0, 0)
        raw_status = single(req, "status")
        status = None
        if raw_status:
            try:
                status = JobStatus(raw_status.strip().upper())
            except ValueError:
                raise bad_request("'status' must be one of "
                                  f"{', '.join(s.value for s in JobStatus)}") from None
        board = single(req, "board") or None
        # admins see every owner's jobs, or one owner's (``owner=``); others their own
        owner = (single(req, "owner") or None) if user.is_admin else user.name
        extended = bool_param(req, "extended")
        jobs = self.store.jobs.list(owner=owner, status=status, board=board, limit=limit,
                                    offset=offset)
        # extended: the owner's (or an admin's) view of each job, as GET /jobs/{id} gives
        resp.media = [self.view(user, job) if extended else job.short_view() for job in jobs]


class _FileResource(_JobBase):
    """A job's file, readable by its owner or an admin, streamed.

    ``?offset=N`` skips what a poller already has (200, possibly empty); a ``Range``
    header gets 206 with ``Content-Range``. The headers ``X-HWUT-Size`` (the file's size
    when the request was served) and ``X-HWUT-Job-Status`` tell a poller whether to come
    back. At most ``streams`` files are sent at once; past that, 503 with Retry-After.
    """

    content_type = "text/plain"
    what = "file"

    def __init__(self, store: Store, scheduler: Scheduler, config: Config,
                 streams: StreamSlots | None = None) -> None:
        super().__init__(store, scheduler, config)
        self.streams = streams or StreamSlots(4)

    def filename(self, job: Job) -> str | None:
        raise NotImplementedError

    def filename_for(self, req: falcon.Request, job: Job) -> str | None:
        """The file this request asks for (a resource with a query of its own overrides)."""
        return self.filename(job)

    def on_get(self, req: falcon.Request, resp: falcon.Response, job_id: int) -> None:
        user: User = req.context.user
        job = self.store.jobs.get(job_id)
        if not may_act(user, job):
            raise forbidden(job)
        offset = int_param(req, "offset", 0, 0)
        if offset and req.range is not None:
            raise bad_request("give 'offset' or a Range header, not both")
        name = self.filename_for(req, job)
        path = self.store.jobs.artifact_path(name) if name else None
        if path is None or not path.exists():
            raise falcon.HTTPNotFound(
                title="Not Found",
                description=f"Job {job_id} has no {self.what} (status {job.status.value}).")
        release = self.streams.take()
        if release is None:
            raise falcon.HTTPServiceUnavailable(
                title="Service Unavailable", retry_after=1,
                description="Too many files are being sent right now; retry in a second.")
        try:
            fh = open(path, "rb")  # noqa: SIM115 - closed by FileSlice.close
        except OSError:
            release()
            raise
        size = os.fstat(fh.fileno()).st_size
        try:
            span = byte_range(req, size)
        except falcon.HTTPError:
            fh.close()
            release()
            raise
        if span is None:
            start, end = min(offset, size), size
        else:
            start, end = span
            resp.status = falcon.HTTP_206
            resp.content_range = (start, end - 1, size)
        fh.seek(start)
        resp.content_type = self.content_type
        resp.set_header("Accept-Ranges", "bytes")
        resp.set_header("X-HWUT-Job-Status", job.status.value)
        resp.set_header("X-HWUT-Size", str(size))
        resp.set_stream(FileSlice(fh, end - start, release), end - start)


class LogResource(_FileResource):
    """The UART log: there from the moment the job is RUNNING and growing while it runs
    (so clients can stream it with ``?offset=N``); 404 before the job started."""

    what = "log yet"

    def filename(self, job: Job) -> str | None:
        return job.filename_log


class InfraLogResource(_FileResource):
    """What the emulator or probe reported about the run (not the board's output)."""

    what = "infrastructure log"

    def filename(self, job: Job) -> str | None:
        return job.filename_infra


class OtherResource(_FileResource):
    """The secondary trace (ITM/SWO) a backend produced; 404 when there is none."""

    content_type = "application/octet-stream"
    what = "trace file"

    def filename(self, job: Job) -> str | None:
        return job.filename_other


class JunitResource(_JobBase):
    """The ended job as a JUnit XML report (hwut.junit); 409 while it has not ended."""

    def on_get(self, req: falcon.Request, resp: falcon.Response, job_id: int) -> None:
        user: User = req.context.user
        job = self.store.jobs.get(job_id)
        if not may_act(user, job):
            raise forbidden(job)
        if not job.status.ended:
            raise falcon.HTTPConflict(
                title="Conflict", description=f"Job {job_id} is {job.status.value}; its "
                                              "JUnit report exists once it has ended.")
        view = {**job.extended_view(), "instance": job.instance}
        cases = [junit.job_case(view)] + self._parsed_cases(job)
        suite = junit.testsuite(view, cases, self._log_tail(job),
                                self._sha256(job.filename_executable))
        resp.content_type = "application/xml"
        resp.data = junit.report([suite])

    def _parsed_cases(self, job: Job) -> list[junit.Case]:
        """The firmware's own test cases, when the job asked for its output parsed."""
        parse = (job.criteria or {}).get("parse")
        if not parse or not job.filename_log:
            return []
        try:
            with open(self.store.jobs.artifact_path(job.filename_log), "rb") as fh:
                found = verdict.test_cases(parse, iter(lambda: fh.read(65536), b""))
        except (OSError, ValueError):
            return []
        return [junit.Case(c.name, c.verdict, c.time_s, c.message,
                           classname=f"{parse}.{c.suite}" if c.suite else parse)
                for c in found.cases]

    def _log_tail(self, job: Job) -> bytes:
        if not job.filename_log:
            return b""
        try:
            with open(self.store.jobs.artifact_path(job.filename_log), "rb") as fh:
                size = os.fstat(fh.fileno()).st_size
                fh.seek(max(0, size - junit.MAX_OUT_BYTES))
                return fh.read(junit.MAX_OUT_BYTES)
        except OSError:
            return b""

    def _sha256(self, name: str) -> str | None:
        try:
            with open(self.store.jobs.artifact_path(name), "rb") as fh:
                return hashlib.file_digest(fh, "sha256").hexdigest()
        except OSError:
            return None
