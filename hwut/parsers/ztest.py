"""Zephyr ztest console output.

``Running TESTSUITE name``, then per test ``START - test_x``, what the test printed
(assertion messages), and `` PASS - test_x in 0.001 seconds`` (``FAIL``, ``SKIP``).
The run ends with ``PROJECT EXECUTION SUCCESSFUL`` or ``PROJECT EXECUTION FAILED``.
"""
from __future__ import annotations

import re

from .base import MAX_CONTEXT_LINES, Parser, TestCase

_SUITE = re.compile(r"^\s*Running TESTSUITE (\S+)")
_START = re.compile(r"^\s*START - (\S+)")
_RESULT = re.compile(r"^\s*(PASS|FAIL|SKIP) - (\S+) in (\d+(?:\.\d+)?) seconds")
_END = re.compile(r"^\s*PROJECT EXECUTION (SUCCESSFUL|FAILED)")
_VERDICTS = {"PASS": "passed", "FAIL": "failed", "SKIP": "skipped"}


class ZtestParser(Parser):
    name = "ztest"

    def __init__(self) -> None:
        super().__init__()
        self.suite = ""
        self.context: list[str] = []

    def feed(self, line: str) -> None:
        if found := _RESULT.match(line):
            verdict = _VERDICTS[found[1]]
            message = " | ".join(self.context) if verdict == "failed" else ""
            self.add(TestCase(found[2], verdict, float(found[3]), message, self.suite))
            self.context = []
        elif found := _START.match(line):
            self.context = []
        elif found := _SUITE.match(line):
            self.suite = found[1]
        elif _END.match(line):
            self.done = True
        elif line.strip() and len(self.context) < MAX_CONTEXT_LINES:
            self.context.append(line.strip()[:200])
