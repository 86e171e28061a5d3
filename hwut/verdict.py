"""A job's verdict from its criteria: what must appear, what fails it, how it must end.

Kept apart from the job's status (v1): the status says whether the run happened
(FINISHED, ERROR, CANCELED), the verdict whether the firmware did what the job asked
(``passed``, ``failed``), or why there is no answer (``error``: the infrastructure
failed; ``canceled``). Jobs without criteria have no verdict (None), as in v1.

Everything here is pure: :class:`Matcher` is fed the UART log in the chunks it arrives
in and answers as soon as the verdict is known (a fail pattern seen, or every
expectation met), so the scheduler can stop the run there; :func:`final_verdict` gives
the verdict once the run ended. Memory is bounded whatever the firmware prints: the
matcher keeps at most :data:`MAX_LINE` bytes of the current line; a longer line is
matched in pieces of that size (a text straddling two pieces of such a line is missed).

Regexes are RE2 (``google-re2``): matching is linear in the line whatever the
pattern, so a hostile regex cannot stall the server's log sink. Lines are matched as
UTF-8 text (invalid bytes replaced) without their line end.

Pin expectations (``expect_pin``, :mod:`hwut.trace`'s grammar, ``LD2:toggles:1.9-2.1Hz``)
are checked against the job's trace summary in :func:`final_verdict`: the trace is
whole only when the run ended, so a job with pin expectations is never passed early by
its log (a fail pattern still fails it at once). More criterion kinds fit in the same
way: another field of :class:`Criteria` with its check in :func:`final_verdict`; the
record keeps unknown keys out.
"""
from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import re2  # type: ignore[import-untyped]

from . import parsers
from . import trace as pintrace

#: The verdicts; None (no criteria) is not among them.
PASSED, FAILED, ERROR, CANCELED = "passed", "failed", "error", "canceled"
VERDICTS = (PASSED, FAILED, ERROR, CANCELED)
ON_LIMIT = (PASSED, FAILED)

#: Bounds on criteria (submit refuses more) and on what the matcher keeps.
MAX_PATTERNS = 32
#: Pin expectations a job may have.
MAX_PIN_EXPECTATIONS = 16
MAX_PATTERN_CHARS = 256
MAX_LINE = 8192
#: How much of a matched line a reason quotes.
QUOTE_CHARS = 80


class CriteriaError(ValueError):
    """Criteria that cannot be used; the message says which and why."""


@dataclass(frozen=True)
class Pattern:
    """A text (found as is) or an RE2 regex (searched) in one line of the log."""

    value: str
    regex: bool = False

    def __post_init__(self) -> None:
        what = "regex" if self.regex else "text"
        if not isinstance(self.value, str) or not self.value:
            raise CriteriaError(f"an empty {what} matches every line; give some characters")
        if len(self.value) > MAX_PATTERN_CHARS:
            raise CriteriaError(f"a {what} is at most {MAX_PATTERN_CHARS} characters "
                                f"({self.value[:30]!r}... has {len(self.value)})")
        if "\n" in self.value or "\r" in self.value:
            raise CriteriaError(f"{what} {self.value!r}: patterns match within one line; "
                                "no line breaks")
        if self.regex:
            try:
                re2.compile(self.value)
            except Exception as exc:  # re2.error, or a pattern RE2 cannot hold
                raise CriteriaError(f"regex {self.value!r} is not valid RE2 syntax: "
                                    f"{exc}") from None

    def search(self, line: str, start: int = 0) -> tuple[int, int] | None:
        """(start, end) of the first match in ``line`` from ``start``, or None."""
        if self.regex:
            found = _compiled(self.value).search(line, start)
            return None if found is None else (found.start(), found.end())
        pos = line.find(self.value, start)
        return None if pos < 0 else (pos, pos + len(self.value))

    def describe(self) -> str:
        return f"regex /{self.value}/" if self.regex else repr(self.value)

    def record(self) -> dict[str, Any]:
        return {"regex" if self.regex else "text": self.value}

    @classmethod
    def from_record(cls, value: Any, where: str) -> Pattern:
        """A plain string is a text; ``{"text": ...}`` or ``{"regex": ...}`` says which."""
        if isinstance(value, str):
            return cls(value)
        if isinstance(value, Mapping) and len(value) == 1:
            ((kind, text),) = value.items()
            if kind in ("text", "regex") and isinstance(text, str):
                return cls(text, regex=kind == "regex")
        raise CriteriaError(f"{where}: each entry is a string or a table with one key, "
                            f"'text' or 'regex' (got {str(value)[:60]!r})")


_CACHE: dict[str, Any] = {}


def _compiled(pattern: str) -> Any:
    compiled = _CACHE.get(pattern)
    if compiled is None:
        if len(_CACHE) > 1024:
            _CACHE.clear()
        compiled = _CACHE[pattern] = re2.compile(pattern)
    return compiled


@dataclass(frozen=True)
class Criteria:
    """What a job must show. ``run_to_end``: do not stop once every expectation is met
    (to keep watching for fail patterns, or when the exit code matters: a job with
    ``exit_code`` always runs until it exits)."""

    expect: tuple[Pattern, ...] = ()
    ordered: bool = False
    fail: tuple[Pattern, ...] = ()
    exit_code: int | None = None
    on_limit: str = FAILED
    run_to_end: bool = False
    #: A test framework whose console output becomes test cases (hwut.parsers): a failed
    #: case fails the job, its final summary ends the run.
    parse: str | None = None
    #: Pin expectations (``SIGNAL:KIND[:RANGE]``, see hwut.trace), checked at the end.
    expect_pin: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if len(self.expect_pin) > MAX_PIN_EXPECTATIONS:
            raise CriteriaError(f"at most {MAX_PIN_EXPECTATIONS} pin expectations; "
                                f"got {len(self.expect_pin)}")
        for text in self.expect_pin:
            if not isinstance(text, str):
                raise CriteriaError(f"expect_pin is a list of strings like "
                                    f"'LD2:toggles:1.9-2.1Hz', not {text!r:.60}")
            try:
                pintrace.parse_expectation(text)
            except ValueError as exc:
                raise CriteriaError(str(exc)) from None
        if self.parse is not None and self.parse not in parsers.names():
            raise CriteriaError(f"parse is one of {', '.join(parsers.names())}, not "
                                f"{str(self.parse)[:30]!r}")
        if len(self.expect) + len(self.fail) > MAX_PATTERNS:
            raise CriteriaError(f"at most {MAX_PATTERNS} patterns (expect and fail together)"
                                f"; got {len(self.expect) + len(self.fail)}")
        if self.on_limit not in ON_LIMIT:
            raise CriteriaError(f"on_limit is one of {', '.join(ON_LIMIT)}, not "
                                f"{self.on_limit!r}")
        if self.exit_code is not None and (isinstance(self.exit_code, bool)
                                           or not isinstance(self.exit_code, int)
                                           or not -2**31 <= self.exit_code < 2**32):
            raise CriteriaError(f"exit_code must be an integer, not {self.exit_code!r}")

    @property
    def empty(self) -> bool:
        return (not self.expect and not self.fail and self.exit_code is None
                and self.parse is None and not self.expect_pin)

    @property
    def waits_for_end(self) -> bool:
        """Met expectations do not end the run: the verdict needs how it ended (an exit
        code, the whole pin trace) or the run is to be watched to its end."""
        return self.run_to_end or self.exit_code is not None or bool(self.expect_pin)

    def record(self) -> dict[str, Any]:
        return {"expect": [p.record() for p in self.expect], "ordered": self.ordered,
                "fail": [p.record() for p in self.fail], "exit_code": self.exit_code,
                "on_limit": self.on_limit, "run_to_end": self.run_to_end, "parse": self.parse,
                "expect_pin": list(self.expect_pin)}

    @classmethod
    def from_record(cls, record: Mapping[str, Any]) -> Criteria:
        """From a stored record or a job file's ``[criteria]`` table; unknown keys refused."""
        known = {"expect", "ordered", "fail", "exit_code", "on_limit", "run_to_end", "parse",
                 "expect_pin"}
        unknown = sorted(set(record) - known)
        if unknown:
            raise CriteriaError(f"unknown criteria key(s) {', '.join(map(repr, unknown))}; "
                                f"known: {', '.join(sorted(known))}")
        lists = {}
        for key in ("expect", "fail"):
            value = record.get(key, ())
            if isinstance(value, (str, Mapping)):
                value = [value]
            if not isinstance(value, (list, tuple)):
                raise CriteriaError(f"{key} is a list of patterns")
            if len(value) > MAX_PATTERNS:
                raise CriteriaError(f"at most {MAX_PATTERNS} patterns in {key}")
            lists[key] = tuple(Pattern.from_record(v, key) for v in value)
        for key in ("ordered", "run_to_end"):
            if not isinstance(record.get(key, False), bool):
                raise CriteriaError(f"{key} is true or false")
        pins = record.get("expect_pin") or ()
        if isinstance(pins, str):
            pins = [pins]
        if not isinstance(pins, (list, tuple)):
            raise CriteriaError("expect_pin is a list of strings like 'LD2:toggles:1.9-2.1Hz'")
        return cls(expect=lists["expect"], fail=lists["fail"],
                   ordered=record.get("ordered", False), exit_code=record.get("exit_code"),
                   on_limit=record.get("on_limit", FAILED),
                   run_to_end=record.get("run_to_end", False), parse=record.get("parse"),
                   expect_pin=tuple(pins))


def criteria_from_params(pairs: Iterable[tuple[str, str]]) -> Criteria | None:
    """Criteria from submit's query parameters, in the order given (so ``ordered``
    mixes texts and regexes as the client listed them); None when there are none.

    ``expect``, ``expect_regex``, ``fail``, ``fail_regex``, ``expect_pin`` repeat;
    ``ordered`` and ``run_to_end`` are booleans; ``exit_code`` an integer; ``on_limit``
    passed/failed."""
    expect: list[Pattern] = []
    fail: list[Pattern] = []
    pins: list[str] = []
    options: dict[str, Any] = {}
    for key, value in pairs:
        if key in ("expect", "expect_regex"):
            expect.append(Pattern(value, regex=key.endswith("_regex")))
        elif key in ("fail", "fail_regex"):
            fail.append(Pattern(value, regex=key.endswith("_regex")))
        elif key in ("ordered", "run_to_end"):
            lowered = value.strip().lower()
            if lowered not in ("1", "0", "true", "false", "yes", "no"):
                raise CriteriaError(f"'{key}' is true or false, not {value[:20]!r}")
            options[key] = lowered in ("1", "true", "yes")
        elif key == "exit_code":
            try:
                options[key] = int(value)
            except ValueError:
                raise CriteriaError(f"'exit_code' is an integer, not {value[:20]!r}") from None
        elif key in ("on_limit", "parse"):
            options[key] = value.strip().lower()
        elif key == "expect_pin":
            pins.append(value)
            if len(pins) > MAX_PIN_EXPECTATIONS:
                raise CriteriaError(f"at most {MAX_PIN_EXPECTATIONS} pin expectations")
        if len(expect) + len(fail) > MAX_PATTERNS:
            raise CriteriaError(f"at most {MAX_PATTERNS} patterns (expect and fail together)")
    criteria = Criteria(expect=tuple(expect), fail=tuple(fail), expect_pin=tuple(pins),
                        **options)
    if criteria.empty:
        if options:
            raise CriteriaError(f"{', '.join(sorted(options))} without any expect, fail, "
                                "exit_code, parse or expect_pin criterion means nothing")
        return None
    return criteria


#: Query parameters of submit that carry criteria.
CRITERIA_PARAMS = ("expect", "expect_regex", "fail", "fail_regex", "ordered", "exit_code",
                   "on_limit", "run_to_end", "parse", "expect_pin")


@dataclass(frozen=True)
class Decision:
    """A verdict and its one-line reason; ``at_s``: the board's time of the line that
    settled it, when the log's times are known."""

    verdict: str
    reason: str
    at_s: float | None = None


def _quote(line: str) -> str:
    line = line.strip()
    return repr(line if len(line) <= QUOTE_CHARS else line[:QUOTE_CHARS] + "...")


@dataclass
class Matcher:
    """Watches the log for the criteria, chunk by chunk; see the module docstring.

    :meth:`feed` returns a :class:`Decision` the first time the verdict is settled by
    the log alone: ``failed`` at a fail pattern, ``passed`` when every expectation is
    met (unless ``run_to_end``, an expected exit code or pin expectations); None
    otherwise."""

    criteria: Criteria
    decided: Decision | None = None
    #: Expectations met so far, by index (in order: the first ``len(met)``).
    met: list[int] = field(default_factory=list)
    lines: int = 0
    _line: bytearray = field(default_factory=bytearray)
    #: The test framework's parser when the criteria ask for one.
    parser: parsers.Parser | None = None
    #: Log bytes fed so far.
    consumed: int = 0
    #: The board's time of the log byte before an offset (hwut.logtime); None: unknown.
    time_at: Callable[[int], float | None] | None = None

    def __post_init__(self) -> None:
        if self.criteria.parse is not None and self.parser is None:
            self.parser = parsers.make(self.criteria.parse)

    def feed(self, data: bytes) -> Decision | None:
        if self.decided is not None:
            return None
        base, start = self.consumed, 0
        self.consumed += len(data)
        while self.decided is None:
            end = data.find(b"\n", start)
            if end < 0:
                break
            self._take(data[start:end], ends_line=True)
            start = end + 1
            if self.decided is not None:
                self._stamp(base + start)
        if self.decided is None and start < len(data):
            self._take(data[start:], ends_line=False)
            if self.decided is not None:  # a line cut at MAX_LINE decided it
                self._stamp(base + len(data))
        return self.decided

    def close(self) -> Decision | None:
        """The run ended: match what is left of the last line (it had no line end)."""
        if self.decided is None and self._line:
            self.lines += 1
            self._check(bytes(self._line))
            self._line.clear()
            if self.decided is not None:
                self._stamp(self.consumed)
        return self.decided

    def _stamp(self, offset: int) -> None:
        """Say in the reason when the deciding line arrived: the board's time of the log
        byte before ``offset`` (the line's end), when the matcher knows the log's times."""
        if self.time_at is None or self.decided is None:
            return
        t = self.time_at(offset)
        if t is None:  # the backend cannot tell the board's time (Renode)
            return
        reason = self.decided.reason
        where = f"at line {self.lines}"
        stamped = f"{where} ({t:.6f} s virtual)"
        self.decided = Decision(self.decided.verdict,
                                reason.replace(where, stamped, 1) if where in reason
                                else f"{reason} ({t:.6f} s virtual)", t)

    def _take(self, piece: bytes, ends_line: bool) -> None:
        while len(self._line) + len(piece) > MAX_LINE and self.decided is None:
            room = MAX_LINE - len(self._line)
            self._line += piece[:room]
            piece = piece[room:]
            self._check(bytes(self._line), partial=True)
            self._line.clear()
        if self.decided is not None:
            return
        self._line += piece
        if ends_line:
            self.lines += 1
            self._check(bytes(self._line))
            self._line.clear()

    def _check(self, raw: bytes, partial: bool = False) -> None:
        line = raw.decode("utf-8", "replace").rstrip("\r")
        where = f"line {self.lines + (1 if partial else 0)}"
        for pattern in self.criteria.fail:
            if pattern.search(line) is not None:
                self.decided = Decision(FAILED, f"fail pattern {pattern.describe()} at "
                                                f"{where}: {_quote(line)}")
                return
        if self.parser is not None and not self.parser.done:
            self.parser.feed(line)
            if self.parser.done and self._judge_tests(where):
                return
        expect = self.criteria.expect
        if self.criteria.ordered:
            pos = 0
            while len(self.met) < len(expect):
                span = expect[len(self.met)].search(line, pos)
                if span is None:
                    break
                self.met.append(len(self.met))
                pos = span[1]
        else:
            for index, pattern in enumerate(expect):
                if index not in self.met and pattern.search(line) is not None:
                    self.met.append(index)
        if (expect and len(self.met) == len(expect) and not self.criteria.waits_for_end
                and (self.parser is None or self.parser.done)):
            last = expect[self.met[-1]]
            self.decided = Decision(PASSED, f"every expectation met; the last, "
                                            f"{last.describe()}, at {where}")

    def _judge_tests(self, where: str) -> bool:
        """The framework printed its summary: a failed case decides; all passed decides
        too when nothing else is left to wait for. True when decided."""
        assert self.parser is not None
        failed = self.parser.first_failure
        if failed is not None:
            self.decided = Decision(FAILED, self.tests_failed())
            return True
        if self.parser.total == 0:
            self.decided = Decision(FAILED, f"the {self.parser.name} summary at {where} "
                                            "follows no test results")
            return True
        if len(self.met) == len(self.criteria.expect) and not self.criteria.waits_for_end:
            self.decided = Decision(PASSED, f"{self.tests_summary()}; summary at {where}")
            return True
        return False

    def tests_summary(self) -> str:
        assert self.parser is not None
        c = self.parser.counts
        return (f"{self.parser.name}: {c['passed']} passed, {c['failed']} failed, "
                f"{c['skipped']} skipped")

    def tests_failed(self) -> str:
        assert self.parser is not None and self.parser.first_failure is not None
        case = self.parser.first_failure
        return (f"test {case.name} failed" + (f": {case.message}" if case.message else "")
                + f" ({self.tests_summary()})")

    def missing(self) -> list[Pattern]:
        return [p for i, p in enumerate(self.criteria.expect) if i not in self.met]


def final_verdict(matcher: Matcher, status: str, stop_reason: str | None,
                  exit_code: int | None, time_used_s: float | None,
                  detail: str | None, trace_summary: Mapping[str, Any] | None = None,
                  no_trace: str = "the run kept no pin trace") -> Decision:
    """The verdict of an ended job with criteria, from what the matcher saw and how
    the run ended (v1 status, stop reason, exit code, virtual time used) and, for pin
    expectations, the job's trace summary (``no_trace`` says why there is none)."""
    decision = _log_verdict(matcher, status, stop_reason, exit_code, time_used_s, detail)
    pins = matcher.criteria.expect_pin
    if decision.verdict != PASSED or not pins:
        return decision
    if trace_summary is None:
        return Decision(FAILED, f"pin expectation {pins[0]!r} cannot be checked: {no_trace}")
    if trace_summary.get("error"):
        return Decision(FAILED, f"pin expectation {pins[0]!r} cannot be checked: the pin "
                                f"trace cannot be read ({trace_summary['error']})")
    for text in pins:
        ok, seen = pintrace.check(text, dict(trace_summary))
        if not ok:
            cut = " (the trace was cut at its size limit)" if trace_summary.get("truncated") \
                else ""
            hint = "; name it in the job's trace option" if " is not in the pin trace" in seen \
                else ""
            return Decision(FAILED, f"pin expectation {text!r} not met: {seen}{cut}{hint}")
    return Decision(PASSED, f"{decision.reason}; "
                            + (f"pin expectation {pins[0]!r} met" if len(pins) == 1
                               else f"all {len(pins)} pin expectations met"))


def _log_verdict(matcher: Matcher, status: str, stop_reason: str | None,
                 exit_code: int | None, time_used_s: float | None,
                 detail: str | None) -> Decision:
    """The verdict as the log and the run's end give it (pin expectations aside)."""
    at = f" at {time_used_s:.6g} s virtual" if time_used_s is not None else ""
    if status == "ERROR":
        return Decision(ERROR, f"infrastructure error, no verdict: {detail or 'unknown'}")
    if status == "CANCELED":
        return Decision(CANCELED, detail or "canceled")
    decided = matcher.close()
    if decided is not None:
        # when the deciding line arrived, not when the run stopped: stopping takes the
        # wall time a cancel needs, in which an emulator may run on for seconds
        return decided
    if stop_reason == "fault":
        return Decision(FAILED, f"the firmware faulted{at}" + (f": {detail}" if detail else ""))
    if stop_reason == "cpu_limit":
        return Decision(ERROR, f"no verdict: {detail or 'the job used its CPU budget'}")
    if stop_reason == "output_limit":
        return Decision(FAILED, f"{detail or 'the output reached its limit'}{at}")
    parser = matcher.parser
    if parser is not None and parser.first_failure is not None:
        return Decision(FAILED, matcher.tests_failed() + at)
    if parser is not None and parser.total == 0:
        return Decision(FAILED, f"no {parser.name} test results in the log "
                                f"({matcher.lines} lines, run ended by {stop_reason}{at})")
    missing = matcher.missing()
    if missing:
        expect = matcher.criteria.expect
        return Decision(FAILED, f"{missing[0].describe()} never appeared"
                                f"{' in order' if matcher.criteria.ordered else ''} "
                                f"({len(expect) - len(missing)} of {len(expect)} expectations "
                                f"met, {matcher.lines} lines, run ended by "
                                f"{stop_reason or 'unknown'}{at})")
    want = matcher.criteria.exit_code
    if stop_reason == "exit":
        if want is not None and exit_code != want:
            return Decision(FAILED, f"the firmware exited with code {exit_code}{at}; "
                                    f"expected {want}")
        return Decision(PASSED, f"the firmware exited with code {exit_code}{at}"
                                + (" as expected" if want is not None else "")
                                + ("; every expectation met" if matcher.criteria.expect else ""))
    if want is not None:
        return Decision(FAILED, f"the time limit was reached{at} without the firmware exiting"
                                f"; expected exit code {want}")
    if parser is not None and not parser.done:
        return Decision(FAILED, f"the {parser.name} run did not finish before the time "
                                f"limit{at} ({matcher.tests_summary()})")
    if parser is not None:
        return Decision(PASSED, f"{matcher.tests_summary()}; ran to the time limit{at}")
    if matcher.criteria.expect:
        return Decision(PASSED, f"every expectation met; ran to the time limit{at}")
    if matcher.criteria.expect_pin:  # the pins are the expectations: checked next
        return Decision(PASSED, f"ran to the time limit{at}")
    if matcher.criteria.on_limit == PASSED:
        return Decision(PASSED, f"no fail pattern appeared before the time limit{at}")
    return Decision(FAILED, f"the time limit was reached{at} (on_limit: failed)")


class Tap:
    """Between the job's process and its log file: passes every byte on, feeds the
    matcher, and calls ``stop`` the moment the log settles the verdict (fail-fast, or
    every expectation met), so the run ends there instead of at its limit."""

    def __init__(self, criteria: Criteria, sink: Any, stop: Callable[[], object],
                 trace_option: str | None = None,
                 time_at: Callable[[int], float | None] | None = None) -> None:
        self.matcher = Matcher(criteria, time_at=time_at)
        self.sink, self.stop = sink, stop
        #: The job's trace option as stored ("none": the job asked for no pin trace).
        self.trace_option = trace_option

    @classmethod
    def for_job(cls, record: Mapping[str, Any] | None, sink: Any,
                stop: Callable[[], object], trace_option: str | None = None,
                time_at: Callable[[int], float | None] | None = None) -> Tap | None:
        """``time_at``: the board's time of a log offset (the job's LogTimes), so that
        the reason says when the deciding line arrived."""
        return None if not record else cls(Criteria.from_record(record), sink, stop,
                                           trace_option, time_at)

    @property
    def decided(self) -> bool:
        return self.matcher.decided is not None

    def restart(self) -> None:
        """Forget what was seen: the job runs again (a retry after an infrastructure error)."""
        self.matcher = Matcher(self.matcher.criteria, time_at=self.matcher.time_at)

    def __call__(self, data: bytes) -> None:
        self.sink(data)
        if self.matcher.feed(data) is not None:
            self.stop()

    def verdict(self, status: str, stop_reason: str | None, exit_code: int | None,
                time_used_s: float | None, detail: str | None,
                trace_summary: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """The job fields for the verdict (``verdict``, ``verdict_reason``)."""
        no_trace = ("the job asked for no pin trace (trace=none)" if self.trace_option == "none"
                    else "the run kept no pin trace (this board's backend cannot trace pins)")
        decision = final_verdict(self.matcher, status, stop_reason, exit_code, time_used_s,
                                 detail, trace_summary, no_trace)
        return {"verdict": decision.verdict, "verdict_reason": decision.reason}


def criteria_params(criteria: Criteria) -> list[tuple[str, str]]:
    """Submit's query parameters for ``criteria`` (the inverse of criteria_from_params)."""
    pairs = [("expect_regex" if p.regex else "expect", p.value) for p in criteria.expect]
    pairs += [("fail_regex" if p.regex else "fail", p.value) for p in criteria.fail]
    if criteria.ordered:
        pairs.append(("ordered", "true"))
    if criteria.run_to_end:
        pairs.append(("run_to_end", "true"))
    if criteria.exit_code is not None:
        pairs.append(("exit_code", str(criteria.exit_code)))
    if criteria.on_limit != FAILED:
        pairs.append(("on_limit", criteria.on_limit))
    if criteria.parse is not None:
        pairs.append(("parse", criteria.parse))
    pairs += [("expect_pin", text) for text in criteria.expect_pin]
    return pairs


def test_cases(parse: str, chunks: Iterable[bytes]) -> parsers.Parser:
    """The test cases of a log in ``parse``'s format, read the way the run's matcher
    read it (same lines, same bounds); for reports written after the run."""
    matcher = Matcher(Criteria(parse=parse))
    for chunk in chunks:
        matcher.feed(chunk)
    matcher.close()
    assert matcher.parser is not None
    return matcher.parser
