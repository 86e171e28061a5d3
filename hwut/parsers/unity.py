"""Unity (ThrowTheSwitch) console output.

Each test ends with one line ``FILE:LINE:NAME:PASS``, ``...:FAIL: message`` or
``...:IGNORE: message``; built with UNITY_INCLUDE_EXEC_TIME a `` (N ms)`` follows.
The run ends with a dashed line, ``N Tests M Failures K Ignored`` and ``OK`` or ``FAIL``.
"""
from __future__ import annotations

import re

from .base import Parser, TestCase

_RESULT = re.compile(r"^(?P<file>[^:\s][^:]*):(?P<line>\d+):(?P<name>[^:]+):"
                     r"(?P<what>PASS|FAIL|IGNORE)(?::\s?(?P<msg>.*?))?"
                     r"(?:\s\((?P<ms>\d+) ms\))?\s*$")
_SUMMARY = re.compile(r"^(\d+) Tests (\d+) Failures (\d+) Ignored\s*$")
_VERDICTS = {"PASS": "passed", "FAIL": "failed", "IGNORE": "skipped"}


class UnityParser(Parser):
    name = "unity"

    def feed(self, line: str) -> None:
        found = _RESULT.match(line)
        if found:
            file = found["file"].rsplit("/", 1)[-1]
            message = found["msg"] or ""
            if found["what"] != "PASS":
                message = f"{file}:{found['line']}: {message}".rstrip(": ")
            self.add(TestCase(found["name"], _VERDICTS[found["what"]],
                              int(found["ms"] or 0) / 1000, message,
                              suite=file.rsplit(".", 1)[0]))
        elif _SUMMARY.match(line):
            self.done = True
