"""What every console-output parser keeps, and its bounds."""
from __future__ import annotations

from dataclasses import dataclass

MAX_CASES = 10_000
MAX_MESSAGE = 500
#: How many lines of a failing test's output become its message (before the verdict line).
MAX_CONTEXT_LINES = 5


@dataclass
class TestCase:
    """One test as the framework reported it. ``verdict``: passed, failed or skipped."""

    name: str
    verdict: str
    time_s: float = 0.0
    message: str = ""
    suite: str = ""


class Parser:
    """Fed lines; keeps cases, counts and whether the run's summary was printed."""

    name = "base"

    def __init__(self) -> None:
        self.cases: list[TestCase] = []
        self.counts = {"passed": 0, "failed": 0, "skipped": 0}
        self.done = False
        self.first_failure: TestCase | None = None

    def feed(self, line: str) -> None:
        raise NotImplementedError

    def add(self, case: TestCase) -> None:
        case.message = case.message[:MAX_MESSAGE]
        self.counts[case.verdict] = self.counts.get(case.verdict, 0) + 1
        if case.verdict == "failed" and self.first_failure is None:
            self.first_failure = case
        if len(self.cases) < MAX_CASES:
            self.cases.append(case)

    @property
    def total(self) -> int:
        return sum(self.counts.values())
