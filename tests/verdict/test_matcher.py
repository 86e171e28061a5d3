"""The verdict rules, fed log chunks as a job's process sends them (hwut.verdict)."""
from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hwut.verdict import (
    MAX_LINE,
    Criteria,
    CriteriaError,
    Matcher,
    Pattern,
    criteria_from_params,
    final_verdict,
)

LOG = b"boot\r\nSYSCLK=72000000\r\ncount=0\r\ncount=1\r\nPANIC: stack\r\ncount=2\r\n"


def crit(**kw) -> Criteria:
    for key in ("expect", "fail"):
        kw[key] = tuple(p if isinstance(p, Pattern) else Pattern(p) for p in kw.get(key, ()))
    return Criteria(**kw)


def feed_all(criteria: Criteria, data: bytes, size: int = 3) -> Matcher:
    m = Matcher(criteria)
    for i in range(0, len(data), size):
        m.feed(data[i:i + size])
    return m


def test_fail_pattern_decides_at_once_with_line_and_text():
    m = feed_all(crit(fail=["PANIC"]), LOG)
    assert m.decided is not None and m.decided.verdict == "failed"
    assert "line 5" in m.decided.reason and "PANIC: stack" in m.decided.reason
    assert m.feed(b"more\n") is None  # decided once: the rest is not looked at


def test_expectations_met_pass_early_unless_run_to_end_or_exit_code():
    assert feed_all(crit(expect=["count=1"]), LOG).decided.verdict == "passed"
    assert "line 4" in feed_all(crit(expect=["count=1"]), LOG).decided.reason
    assert feed_all(crit(expect=["count=1"], run_to_end=True), LOG).decided is None
    assert feed_all(crit(expect=["count=1"], exit_code=0), LOG).decided is None


def test_ordered_expectations_must_come_in_order():
    ok = crit(expect=["SYSCLK", Pattern(r"count=\d", regex=True), "count=2"], ordered=True)
    assert feed_all(ok, LOG).decided.verdict == "passed"
    wrong = crit(expect=["count=1", "count=0"], ordered=True)
    m = feed_all(wrong, LOG)
    assert m.decided is None
    decision = final_verdict(m, "FINISHED", "limit", None, 1.0, None)
    assert decision.verdict == "failed"
    assert "'count=0' never appeared in order" in decision.reason
    assert "1 of 2" in decision.reason and "1 s virtual" in decision.reason
    # unordered, the same two pass
    assert feed_all(crit(expect=["count=1", "count=0"]), LOG).decided.verdict == "passed"


def test_ordered_expectations_in_one_line_follow_each_other():
    c = crit(expect=["a", "b"], ordered=True)
    assert feed_all(c, b"ba\n").decided is None
    assert feed_all(c, b"ab\n").decided.verdict == "passed"


def test_limit_fails_by_default_and_passes_when_asked():
    only_fail = crit(fail=["PANIC"])
    m = feed_all(only_fail, b"fine\n")
    assert final_verdict(m, "FINISHED", "limit", None, 2.0, None).verdict == "failed"
    passing = crit(fail=["PANIC"], on_limit="passed")
    m = feed_all(passing, b"fine\n")
    assert final_verdict(m, "FINISHED", "limit", None, 2.0, None).verdict == "passed"


def test_exit_code_criterion():
    c = crit(exit_code=0)
    assert final_verdict(Matcher(c), "FINISHED", "exit", 0, 0.1, None).verdict == "passed"
    bad = final_verdict(Matcher(c), "FINISHED", "exit", 3, 0.1, None)
    assert bad.verdict == "failed" and "code 3" in bad.reason and "expected 0" in bad.reason
    hang = final_verdict(Matcher(c), "FINISHED", "limit", None, 5.0, None)
    assert hang.verdict == "failed" and "without the firmware exiting" in hang.reason


def test_error_canceled_fault():
    c = crit(expect=["x"])
    assert final_verdict(Matcher(c), "ERROR", None, None, None, "boom").verdict == "error"
    assert final_verdict(Matcher(c), "CANCELED", "cancel", None, 0.1,
                         "canceled by alice").reason == "canceled by alice"
    fault = final_verdict(Matcher(c), "FINISHED", "fault", None, 0.2, "HardFault at 0x8")
    assert fault.verdict == "failed" and "HardFault" in fault.reason


def test_last_line_without_line_end_counts_at_the_end():
    m = feed_all(crit(expect=["done"], exit_code=0), b"done")
    assert m.missing()  # not yet: the line may go on
    assert final_verdict(m, "FINISHED", "exit", 0, 0.1, None).verdict == "passed"


def test_regex_is_re2_linear_and_validated():
    with pytest.raises(CriteriaError, match="RE2"):
        Pattern("(a", regex=True)
    with pytest.raises(CriteriaError, match="RE2"):
        Pattern(r"(a)\1", regex=True)  # backreferences: not in RE2
    evil = crit(fail=[Pattern("(a+)+$", regex=True)])
    m = Matcher(evil)
    m.feed(b"a" * 5000 + b"!\n")  # catastrophic for backtracking engines; linear here
    assert m.decided is None


@pytest.mark.parametrize("bad", ["", "a\nb", "x" * 300])
def test_bad_patterns_refused(bad):
    with pytest.raises(CriteriaError):
        Pattern(bad)


def test_params_keep_order_and_refuse_nonsense():
    c = criteria_from_params([("expect", "a"), ("expect_regex", "b+"), ("expect", "c"),
                              ("ordered", "true"), ("fail", "PANIC"), ("board", "x")])
    assert c is not None and c.ordered
    assert [(p.value, p.regex) for p in c.expect] == [("a", False), ("b+", True), ("c", False)]
    assert criteria_from_params([("board", "x")]) is None
    for pairs in ([("ordered", "true")], [("exit_code", "zero")], [("on_limit", "maybe"),
                                                                    ("expect", "a")],
                  [("expect", "a")] * 40, [("ordered", "perhaps"), ("expect", "a")]):
        with pytest.raises(CriteriaError):
            criteria_from_params(pairs)


def test_record_round_trip_and_unknown_keys():
    c = crit(expect=["a", Pattern("b.", regex=True)], fail=["F"], exit_code=1, ordered=True)
    assert Criteria.from_record(c.record()) == c
    with pytest.raises(CriteriaError, match="unknown criteria key"):
        Criteria.from_record({"expect": ["a"], "expect_pins": "PA5:high"})
    pins = Criteria.from_record({"expect_pin": ["PA5:high", "LD2:toggles:2Hz"]})
    assert Criteria.from_record(pins.record()) == pins and pins.waits_for_end
    with pytest.raises(CriteriaError, match="write SIGNAL:KIND"):
        Criteria.from_record({"expect_pin": "PA5"})
    with pytest.raises(CriteriaError, match="'text' or 'regex'"):
        Criteria.from_record({"expect": [{"glob": "a*"}]})


# ---- hostile and huge output ----------------------------------------------------------

lines = st.lists(st.sampled_from([b"count=1", b"PANIC", b"ok", b"", b"\xff\xfe", b"x" * 50,
                                  b"\r", b"count=2 PANIC"]), max_size=40)


@settings(max_examples=200, deadline=None)
@given(parts=lines, cuts=st.lists(st.integers(min_value=1, max_value=17), min_size=1))
def test_chunking_never_changes_the_decision(parts, cuts):
    """However the log is cut into chunks, the decision is the one on the whole log."""
    data = b"\n".join(parts) + b"\n"
    c = crit(expect=["count=1", Pattern(r"count=\d", regex=True)], ordered=True,
             fail=["PANIC"])
    whole = Matcher(c)
    whole.feed(data)
    m = Matcher(c)
    pos, i = 0, 0
    while pos < len(data):
        size = cuts[i % len(cuts)]
        m.feed(data[pos:pos + size])
        pos, i = pos + size, i + 1
    assert m.decided == whole.decided
    assert m.met == whole.met


@settings(max_examples=30, deadline=None)
@given(size=st.integers(min_value=1, max_value=200_000),
       chunk=st.integers(min_value=1, max_value=70_000), newline=st.booleans())
def test_memory_stays_bounded_on_huge_output(size, chunk, newline):
    """A line of any length keeps at most MAX_LINE bytes in the matcher."""
    m = Matcher(crit(expect=["never"], fail=["nope"]))
    block = (b"y" * (chunk - 1) + (b"\n" if newline else b"y"))
    fed = 0
    while fed < size:
        m.feed(block)
        fed += len(block)
        assert len(m._line) <= MAX_LINE
    assert m.decided is None


def test_text_in_a_huge_line_is_found():
    m = Matcher(crit(fail=["PANIC"]))
    m.feed(b"z" * (MAX_LINE * 3 + 10))
    m.feed(b"PANIC")
    m.feed(b"\n")
    assert m.decided is not None and m.decided.verdict == "failed"
