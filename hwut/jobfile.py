"""A job file: one or more images and how to run and judge them, in TOML.

For what does not fit on a command line (many patterns, several images, input and
presses together). Everything in it is checked before anything is sent, and an error
names the file and the key::

    board = "nucleo-f303re"
    limit = 5                       # seconds of virtual time
    images = ["build/app.elf"]      # or image = "..."; relative to this file
    # one job each; a list (or "boot.elf+app.elf") is ONE job of several images, and
    # "app.bin@0x0800A000" places a BIN:  images = [["boot.elf", "app.bin@0x0800A000"]]
    input = "help\\r"
    presses = ["B1@0.5-0.7"]
    pins = ["PA0@0:1", "PA0@0.5:z"]   # pin@seconds:level (1, 0, z = released)
    comment = "smoke test"
    realtime = false                # true: the board keeps to the wall clock (hwut console)

    [criteria]
    expect = ["booted", { regex = "count=\\\\d+" }]
    ordered = true
    fail = ["PANIC", { regex = "ASSERT.*failed" }]
    exit_code = 0                   # optional
    on_limit = "failed"             # or "passed"
    run_to_end = false
    expect_pin = ["LD2:toggles:1.9-2.1Hz"]   # checked on the pin trace at the end
"""
from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .images import MAX_IMAGES as MAX_IMAGES_PER_JOB
from .images import JobImages, parse_job, parse_ref
from .verdict import Criteria, CriteriaError

#: A job file is small; anything bigger is not one.
MAX_FILE_BYTES = 64 * 1024
MAX_IMAGES = 16
KEYS = ("board", "limit", "image", "images", "input", "presses", "pins", "comment",
        "realtime", "criteria")


class JobFileError(ValueError):
    """A job file that cannot be used; the message names the file and what is wrong."""


@dataclass(frozen=True)
class JobFile:
    #: One entry per job: its images (one, or several for a bootloader and its app).
    images: tuple[JobImages, ...]
    board: str | None = None
    limit: int | None = None
    input: str | None = None
    presses: tuple[str, ...] = ()
    comment: str | None = None
    criteria: Criteria | None = field(default=None)
    pins: tuple[str, ...] = ()
    realtime: bool = False


def _typed(data: dict[str, Any], key: str, kind: type, what: str, where: str) -> Any:
    value = data.get(key)
    if value is not None and (not isinstance(value, kind) or isinstance(value, bool)
                              and kind is not bool):
        raise JobFileError(f"{where}: {key} must be {what}, not {value!r:.60}")
    return value


def load(path: Path) -> JobFile:
    """Read and check ``path``; :class:`JobFileError` says what is wrong."""
    where = str(path)
    try:
        with open(path, "rb") as fh:
            raw = fh.read(MAX_FILE_BYTES + 1)
    except OSError as exc:
        raise JobFileError(f"{where}: cannot read it: {exc.strerror}") from None
    if len(raw) > MAX_FILE_BYTES:
        raise JobFileError(f"{where}: a job file is at most {MAX_FILE_BYTES} bytes")
    try:
        data = tomllib.loads(raw.decode("utf-8"))
    except UnicodeDecodeError:
        raise JobFileError(f"{where}: not UTF-8 text") from None
    except tomllib.TOMLDecodeError as exc:
        raise JobFileError(f"{where}: not valid TOML: {exc}") from None
    return parse(data, where, path.parent)


def parse(data: dict[str, Any], where: str, base: Path) -> JobFile:
    unknown = sorted(set(data) - set(KEYS))
    if unknown:
        raise JobFileError(f"{where}: unknown key(s) {', '.join(map(repr, unknown))}; known: "
                           f"{', '.join(KEYS)}")
    if "image" in data and "images" in data:
        raise JobFileError(f"{where}: give image or images, not both")
    images = data.get("images", [data["image"]] if "image" in data else None)
    if not images:
        raise JobFileError(f"{where}: no image: give image = \"app.elf\" or images = [...]")
    if not isinstance(images, list) or not all(
            (isinstance(i, str) and i) or (isinstance(i, list) and i and all(
                isinstance(j, str) and j for j in i)) for i in images):
        raise JobFileError(f"{where}: images is a list of file names, or of lists of file "
                           "names (one job of several images)")
    if len(images) > MAX_IMAGES:
        raise JobFileError(f"{where}: at most {MAX_IMAGES} images")
    try:
        resolved = tuple(parse_job(i, base) if isinstance(i, str)
                         else tuple(parse_ref(j, base) for j in i) for i in images)
    except ValueError as exc:
        raise JobFileError(f"{where}: {exc}") from None
    for job in resolved:
        if len(job) > MAX_IMAGES_PER_JOB:
            raise JobFileError(f"{where}: at most {MAX_IMAGES_PER_JOB} images in one job")
        for image in job:
            if not image.path.is_file():
                raise JobFileError(f"{where}: image {image.path} does not exist")
    limit = _typed(data, "limit", int, "a whole number of seconds", where)
    if limit is not None and limit < 1:
        raise JobFileError(f"{where}: limit must be at least 1 second")
    presses = _typed(data, "presses", list, "a list like [\"B1@0.5-0.7\"]", where) or []
    if not all(isinstance(p, str) for p in presses):
        raise JobFileError(f"{where}: presses is a list of strings like \"B1@0.5-0.7\"")
    pins = _typed(data, "pins", list, "a list like [\"PA0@0:1\"]", where) or []
    if not all(isinstance(p, str) for p in pins):
        raise JobFileError(f"{where}: pins is a list of strings like \"PA0@0:1\"")
    table = _typed(data, "criteria", dict, "a table ([criteria])", where)
    try:
        criteria = Criteria.from_record(table) if table is not None else None
    except CriteriaError as exc:
        raise JobFileError(f"{where}: [criteria]: {exc}") from None
    if criteria is not None and criteria.empty:
        raise JobFileError(f"{where}: [criteria] has no expect, fail, exit_code, parse or "
                           "expect_pin")
    return JobFile(images=resolved, board=_typed(data, "board", str, "a board name", where),
                   limit=limit, input=_typed(data, "input", str, "text", where),
                   presses=tuple(presses), comment=_typed(data, "comment", str, "text", where),
                   criteria=criteria, pins=tuple(pins),
                   realtime=bool(_typed(data, "realtime", bool, "true or false", where)))
