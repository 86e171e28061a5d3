"""CppUTest console output (verbose, ``-v``, and the default dots).

Verbose: ``TEST(Group, Name) - N ms`` for a test that passed, ``IGNORE_TEST(Group, Name)
- N ms`` for an ignored one; a failure prints ``FILE:LINE: error: Failure in TEST(Group,
Name)`` and indented lines saying what was expected, then `` - N ms``. The run ends with
``OK (N tests, ...)`` or ``Errors (N failures, ...)``.
"""
from __future__ import annotations

import re

from .base import MAX_CONTEXT_LINES, Parser, TestCase

_TEST = re.compile(r"^(IGNORE_)?TEST\((\w+), (\w+)\)(?: - (\d+) ms)?\s*$")
_FAILURE = re.compile(r"^(.*?):(\d+): error: Failure in TEST\((\w+), (\w+)\)")
_TIME = re.compile(r"^\s*- (\d+) ms\s*$")
_END = re.compile(r"^(OK|Errors) \(")


class CppUTestParser(Parser):
    name = "cpputest"

    def __init__(self) -> None:
        super().__init__()
        self.pending: TestCase | None = None  # a test whose time line is still to come
        self.context: list[str] = []

    def _flush(self, ms: int = 0) -> None:
        if self.pending is not None:
            self.pending.time_s = ms / 1000
            if self.pending.verdict == "failed" and self.context:
                self.pending.message += " | " + " | ".join(self.context)
            self.add(self.pending)
        self.pending, self.context = None, []

    def feed(self, line: str) -> None:
        if found := _FAILURE.match(line):
            if self.pending is None or self.pending.name != found[4]:
                self._flush()
                self.pending = TestCase(found[4], "failed", suite=found[3])
            self.pending.verdict = "failed"
            self.pending.message = f"{found[1].rsplit('/', 1)[-1]}:{found[2]}: failure"
        elif found := _TEST.match(line):
            self._flush()
            verdict = "skipped" if found[1] else "passed"
            case = TestCase(found[3], verdict, suite=found[2])
            if found[4] is not None:
                self.pending = case
                self._flush(int(found[4]))
            else:
                self.pending = case
        elif found := _TIME.match(line):
            self._flush(int(found[1]))
        elif _END.match(line):
            self._flush()
            self.done = True
        elif self.pending is not None and self.pending.verdict == "failed" \
                and line.strip() and len(self.context) < MAX_CONTEXT_LINES:
            self.context.append(line.strip()[:200])
