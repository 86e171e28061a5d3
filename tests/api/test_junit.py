"""JUnit XML (issue 16): the route, the CLI's merged report, validated against our schema
of the format CI servers read (tests/junit.xsd) and read back with junitparser."""
from __future__ import annotations

import hashlib
import re
import xml.etree.ElementTree as ET
from pathlib import Path

import cli_served
import junitparser
import pytest
import xmlschema
from cli_served import Served
from fixture_firmware import image, path
from hwut_testenv import Env

from hwut import junit

serve, served = cli_served.serve, cli_served.served  # the fixtures
SCHEMA = xmlschema.XMLSchema(str(Path(__file__).resolve().parents[1] / "junit.xsd"))


def system_out(text: str) -> str:
    return ET.fromstring(text).find("testsuite/system-out").text or ""


def props(suite: junitparser.TestSuite) -> dict[str, str]:
    return {p.name: p.value for p in suite.properties()}


def test_route_gives_a_valid_report_with_the_run_facts(env: Env):
    r = env.submit(limit=5, expect="count=2", fail="PANIC")
    job_id = r.json["id"]
    assert env.get(f"/apiv1/jobs/{job_id}/junit").status_code in (409, 200)
    env.wait(job_id, timeout=30)
    r = env.get(f"/apiv1/jobs/{job_id}/junit")
    assert r.status_code == 200 and r.headers["content-type"] == "application/xml"
    SCHEMA.validate(r.text)
    xml = junitparser.JUnitXml.fromstring(r.text)
    (suite,) = list(xml)
    p = props(suite)
    assert p["board"] == "nucleo-f303re" and p["instance"] == "nucleo-f303re#0"
    assert p["image_sha256"] == hashlib.sha256(image("hello")).hexdigest()
    assert p["verdict"] == "passed" and "count=2" in p["verdict_reason"]
    # the verdict settled at its line's board time; the run stops when the server's cancel
    # reaches the job's process, which a loaded machine delays while the sim runs on
    settled = re.search(r"\((\d+\.\d+) s virtual\)", p["verdict_reason"])
    assert settled is not None and float(settled[1]) < 1.0, p["verdict_reason"]
    assert float(settled[1]) <= float(p["virtual_time_seconds"]) <= 5.0
    assert int(p["instructions"]) > 1000
    assert p["retries"] == "0"
    (case,) = list(suite)
    assert case.name == "run" and case.is_passed
    assert "count=2" in system_out(r.text)


def test_failed_verdict_is_a_failure_and_others_may_not_read_it(env: Env):
    job_id = env.submit(limit=5, fail="count=1").json["id"]
    env.wait(job_id, timeout=30)
    assert env.get(f"/apiv1/jobs/{job_id}/junit", user="bob").status_code == 403
    text = env.get(f"/apiv1/jobs/{job_id}/junit").text
    SCHEMA.validate(text)
    (case,) = list(next(iter(junitparser.JUnitXml.fromstring(text))))
    assert not case.is_passed
    assert "fail pattern 'count=1'" in case.result[0].message


def test_waiting_job_has_no_report_yet(idle_env: Env):
    job_id = idle_env.submit(expect="x").json["id"]
    r = idle_env.get(f"/apiv1/jobs/{job_id}/junit")
    assert r.status_code == 409 and "WAITING" in r.json["description"]


def test_cli_merges_several_jobs_into_one_report(served: Served):
    out = served.tmp / "report.xml"
    r = served.run("submit", "--board", "nucleo-f303re", "--limit", "1", "--exit-code", "3",
                   "--junit", str(out), str(path("hello")), str(path("semihost_exit")))
    assert r.exit_code == 41, r.output
    text = out.read_text()
    SCHEMA.validate(text)
    xml = junitparser.JUnitXml.fromfile(str(out))
    suites = list(xml)
    assert len(suites) == 2
    assert xml.tests == 2 and xml.failures == 1
    assert [props(s)["verdict"] for s in suites] == ["failed", "passed"]
    assert not out.with_name("report.xml.partial").exists()


def test_hostile_log_text_stays_valid_xml():
    job = {"id": 1, "board": "b", "status": "FINISHED", "verdict": "failed",
           "verdict_reason": "fail pattern 'x\x00\x1b[31m' at line 1", "started": "bad"}
    log = bytes(range(256)) * 1000 + b"]]></system-out><evil/>"
    doc = junit.report([junit.testsuite(job, [junit.job_case(job)], log)])
    SCHEMA.validate(doc.decode())
    out = system_out(doc.decode())
    assert out.endswith("]]></system-out><evil/>")
    assert len(out) <= junit.MAX_OUT_BYTES + 20


@pytest.mark.parametrize("verdict,tag", [("error", "error"), ("canceled", "skipped")])
def test_error_and_canceled(verdict: str, tag: str):
    job = {"id": 2, "board": "b", "status": "ERROR", "verdict": verdict, "verdict_reason": "r"}
    doc = junit.report([junit.testsuite(job, [junit.job_case(job)])])
    SCHEMA.validate(doc.decode())
    assert f"<{tag} " in doc.decode()
