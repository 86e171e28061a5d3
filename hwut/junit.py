"""JUnit XML for jobs: what CI servers (Jenkins, GitLab) read as test results.

One ``<testsuite>`` per job, carrying what a CI reader needs to tell runs apart and
to trust them: board and instance, the image's SHA-256, virtual time and instruction
count, retries and the verdict with its reason (as ``<properties>``). Its test cases
are the job's own verdict (``run``) and, when the console output was parsed
(``--parse unity`` and friends), one per test case the firmware reported. Several
jobs merge into one ``<testsuites>`` (:func:`merge`).

The shape follows the JUnit format as Jenkins and GitLab document it; the tests
validate every report against a schema of ours written from that (tests/junit.xsd).
Text from the firmware is stripped of characters XML cannot hold and capped
(:data:`MAX_OUT_BYTES`, the log's end is kept: that is where a failure shows).
"""
from __future__ import annotations

import datetime as _dt
import re
import xml.etree.ElementTree as ET
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from .jobs import TIME_FORMAT

#: How much of the log a testsuite's <system-out> keeps (its end).
MAX_OUT_BYTES = 64 * 1024
#: Characters XML 1.0 cannot hold.
_NOT_XML = re.compile("[^\u0009\u000a\u000d\u0020-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")
#: Properties of a testsuite, from the job record, in this order.
PROPERTIES = ("job_id", "board", "instance", "image_sha256", "virtual_time_seconds",
              "instructions", "retries", "status", "stop_reason", "exit_code", "verdict",
              "verdict_reason", "comment")


@dataclass(frozen=True)
class Case:
    """One test case: ``verdict`` is passed, failed, error or skipped."""

    name: str
    verdict: str
    time_s: float = 0.0
    message: str = ""
    classname: str = ""


def clean(text: str, limit: int | None = None) -> str:
    """``text`` as XML can hold it; with ``limit``, only its last ``limit`` characters."""
    if limit is not None and len(text) > limit:
        text = "[... cut ...]\n" + text[-limit:]
    return _NOT_XML.sub("\ufffd", text)


def _wall_seconds(job: Mapping[str, Any]) -> float:
    try:
        start = _dt.datetime.strptime(job["started"], TIME_FORMAT)
        end = _dt.datetime.strptime(job["finished"], TIME_FORMAT)
    except (KeyError, TypeError, ValueError):
        return 0.0
    return max(0.0, (end - start).total_seconds())


def job_case(job: Mapping[str, Any]) -> Case:
    """The job itself as a test case. With criteria, its verdict; without, how it ended
    (only a firmware exit with code 0 counts as passed, as for ``hwut submit --wait``)."""
    verdict = job.get("verdict")
    if verdict is None:
        status = job.get("status")
        verdict = ("error" if status == "ERROR" else "skipped" if status == "CANCELED"
                   else "passed" if job.get("stop_reason") == "exit" and job.get("exit_code") == 0
                   else "failed")
        message = f"{status}: stop reason {job.get('stop_reason')}, exit code " \
                  f"{job.get('exit_code')}" + (f" ({job['detail']})" if job.get("detail") else "")
    else:
        verdict = "skipped" if verdict == "canceled" else verdict
        message = str(job.get("verdict_reason") or "")
    return Case("run", verdict, float(job.get("time_used_seconds") or 0.0), message,
                classname=f"hwut.{job.get('board')}")


def _image_properties(job: Mapping[str, Any]) -> list[tuple[str, str]]:
    """``image.N.name/format/size/sha256/address`` for a job with several images (N from
    1, in the order given), and ``pins`` for scripted pin levels."""
    out = []
    for n, image in enumerate(job.get("images") or (), 1):
        for key in ("name", "format", "size", "sha256", "address"):
            value = image.get(key) if isinstance(image, Mapping) else None
            if value is not None:
                shown = f"0x{value:08x}" if key == "address" and isinstance(value, int) else value
                out.append((f"image.{n}.{key}", str(shown)))
    pins = job.get("pins") or ()
    if pins:
        out.append(("pins", " ".join(f"{p}@{at:g}:{'z' if level is None else level}"
                                     for p, at, level in pins)))
    return out


def testsuite(job: Mapping[str, Any], cases: Sequence[Case], log: bytes = b"",
              image_sha256: str | None = None) -> ET.Element:
    """The ``<testsuite>`` of one ended job (its extended view as the API gives it)."""
    counts = {v: sum(1 for c in cases if c.verdict == v) for v in ("failed", "error", "skipped")}
    suite = ET.Element("testsuite", {
        "name": f"job {job.get('id')} on {job.get('board')}", "id": str(job.get("id")),
        "tests": str(len(cases)), "failures": str(counts["failed"]),
        "errors": str(counts["error"]), "skipped": str(counts["skipped"]),
        "time": f"{_wall_seconds(job):.3f}",
        "timestamp": _timestamp(job.get("started") or job.get("created")),
        "hostname": str(job.get("instance") or job.get("board") or "hwut")})
    values = {**job, "job_id": job.get("id"), "image_sha256": image_sha256,
              "virtual_time_seconds": job.get("time_used_seconds"),
              "retries": job.get("retries", 0)}
    props = ET.SubElement(suite, "properties")
    for name in PROPERTIES:
        if values.get(name) is not None:
            ET.SubElement(props, "property", {"name": name, "value": clean(str(values[name]))})
    for name, value in _image_properties(job):
        ET.SubElement(props, "property", {"name": name, "value": clean(value)})
    for case in cases:
        element = ET.SubElement(suite, "testcase", {
            "name": clean(case.name), "classname": clean(case.classname or suite.get("name", "")),
            "time": f"{case.time_s:.6f}"})
        tag = {"failed": "failure", "error": "error", "skipped": "skipped"}.get(case.verdict)
        if tag is not None:
            child = ET.SubElement(element, tag, {"message": clean(case.message)})
            if tag != "skipped":
                child.set("type", case.verdict)
                child.text = clean(case.message)
    out = ET.SubElement(suite, "system-out")
    out.text = clean(log.decode("utf-8", "replace"), MAX_OUT_BYTES)
    return suite


def _timestamp(value: Any) -> str:
    try:
        return _dt.datetime.strptime(str(value), TIME_FORMAT).strftime("%Y-%m-%dT%H:%M:%S")
    except ValueError:
        return "1970-01-01T00:00:00"


def report(suites: Iterable[ET.Element], name: str = "hwut") -> bytes:
    """``<testsuites>`` around ``suites``, with the totals CI servers show."""
    root = ET.Element("testsuites", {"name": name})
    totals = dict.fromkeys(("tests", "failures", "errors", "skipped"), 0)
    time = 0.0
    for suite in suites:
        root.append(suite)
        for key in totals:
            totals[key] += int(suite.get(key, "0"))
        time += float(suite.get("time", "0"))
    for key, value in totals.items():
        root.set(key, str(value))
    root.set("time", f"{time:.3f}")
    ET.indent(root)
    return ET.tostring(root, encoding="utf-8", xml_declaration=True) + b"\n"


def merge(documents: Iterable[bytes], name: str = "hwut") -> bytes:
    """One report from several (each a ``<testsuites>`` or a lone ``<testsuite>``), as
    ``hwut submit --junit`` writes for several jobs."""
    suites: list[ET.Element] = []
    for document in documents:
        root = ET.fromstring(document)
        suites.extend([root] if root.tag == "testsuite" else root.findall("testsuite"))
    return report(suites, name)
