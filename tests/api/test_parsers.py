"""Unity, ztest and CppUTest console output as test cases (issue 16): our fixtures run
on the real sim backend print the way each framework does; the verdict, the CLI and
the JUnit report follow the parsed cases."""
from __future__ import annotations

import junitparser
import pytest
from fixture_firmware import path
from hwut_testenv import Env
from test_junit import SCHEMA, serve, served  # noqa: F401 - the fixtures

from hwut import parsers, verdict

EXPECTED = {"test_crc8": "passed", "test_sat_add": "passed", "test_reverse": "passed",
            "test_isqrt": "failed", "test_ignored": "skipped"}


def run(env: Env, firmware: str, **params) -> dict:
    r = env.submit(firmware=firmware, limit=5, **params)
    assert r.status_code == 201, r.text
    env.wait(r.json["id"], timeout=30)
    return env.get(f"/apiv1/jobs/{r.json['id']}").json


@pytest.mark.parametrize("fmt", ["unity", "ztest", "cpputest"])
def test_each_framework_parsed_from_the_running_firmware(env: Env, fmt: str):
    job = run(env, f"fw_{fmt}", parse=fmt)
    # decided at the summary; the firmware then sleeps in WFI with nothing pending, which
    # the emulator skips to the limit at once, so the run may end by either
    assert job["verdict"] == "failed" and job["stop_reason"] in ("verdict", "limit")
    assert job["verdict_reason"].startswith("test test_isqrt failed")
    assert "Expected 32 Was isqrt(1000)" in job["verdict_reason"] or fmt == "cpputest"
    assert "3 passed, 1 failed, 1 skipped" in job["verdict_reason"]
    log = env.log(job["id"])
    found = verdict.test_cases(fmt, [log[i:i + 7] for i in range(0, len(log), 7)])
    assert {c.name: c.verdict for c in found.cases} == EXPECTED
    crc = next(c for c in found.cases if c.name == "test_crc8")
    assert 0.005 < crc.time_s < 0.05  # ~10 ms measured by the firmware
    text = env.get(f"/apiv1/jobs/{job['id']}/junit").text
    SCHEMA.validate(text)
    suite = next(iter(junitparser.JUnitXml.fromstring(text)))
    assert suite.tests == 6 and suite.failures == 2 and suite.skipped == 1  # run + 5
    cases = {c.name: c for c in suite}
    assert cases["test_isqrt"].result and not cases["test_crc8"].result
    assert cases["test_crc8"].classname.startswith(fmt)


def test_all_passing_unity_passes_at_its_summary(env: Env):
    job = run(env, "fw_unity_pass", parse="unity")
    assert job["verdict"] == "passed", job
    assert "unity: 4 passed, 0 failed, 1 skipped" in job["verdict_reason"]


def test_parse_with_no_test_output_fails(env: Env):
    job = run(env, "hello", parse="ztest", run_to_end="true")
    assert job["verdict"] == "failed" and "no ztest test results" in job["verdict_reason"]


def test_unknown_format_refused(env: Env):
    r = env.submit(parse="junit5")
    assert r.status_code == 400 and "cpputest, unity, ztest" in r.json["description"]


def test_cli_parse_and_junit(served, tmp_path):  # noqa: F811
    out = tmp_path / "r.xml"
    r = served.run("submit", "--board", "nucleo-f303re", "--limit", "5", "--parse", "unity",
                   "--junit", str(out), str(path("fw_unity_pass")))
    assert r.exit_code == 0, r.output
    assert "PASSED: unity: 4 passed" in r.stderr
    SCHEMA.validate(out.read_text())


# ---- the parsers on their own: hostile and odd input ------------------------------------

@pytest.mark.parametrize("fmt", parsers.names())
def test_parsers_survive_garbage(fmt: str):
    p = parsers.make(fmt)
    for line in ("", ":::", "x" * 8192, "TEST(", " PASS - in  seconds", "a:1:b:FAIL",
                 "\x00\xff", "Errors (", "START - x", "1 Tests 0 Failures 0 Ignored"):
        p.feed(line)
    assert p.total <= 10


def test_cases_are_bounded():
    p = parsers.make("unity")
    for i in range(parsers.MAX_CASES + 50):
        p.feed(f"t.c:{i}:t{i}:FAIL: " + "m" * 2000)
    assert len(p.cases) == parsers.MAX_CASES and p.counts["failed"] == parsers.MAX_CASES + 50
    assert all(len(c.message) <= parsers.MAX_MESSAGE for c in p.cases)
