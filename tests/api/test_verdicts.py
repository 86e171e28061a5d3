"""Criteria on submit and the job's verdict, on the real sim backend (issue 16)."""
from __future__ import annotations

from hwut_testenv import Env

from hwut.jobs import JobStatus


def run(env: Env, firmware: str = "hello", limit: int = 5, **params) -> dict:
    r = env.submit(firmware=firmware, limit=limit, **params)
    assert r.status_code == 201, r.text
    job_id = r.json["id"]
    assert env.wait(job_id, timeout=30).ended
    return env.get(f"/apiv1/jobs/{job_id}").json


def test_expectation_met_passes_and_stops_the_run_there(env):
    # a long limit: how far past count=3 (at ~0.3 s) the run goes depends on the wall time
    # the log takes to reach the server, and the sim runs some 30 times faster than real
    job = run(env, limit=300, expect=["count=3"])
    assert job["status"] == "FINISHED" and job["verdict"] == "passed"
    assert job["stop_reason"] == "verdict"
    assert job["time_used_seconds"] < 300
    assert "'count=3'" in job["verdict_reason"] and "line 6" in job["verdict_reason"]
    assert job["criteria"]["expect"] == [{"text": "count=3"}]
    assert b"count=3" in env.log(job["id"])


def test_fail_pattern_stops_the_run_at_once(env):
    job = run(env, limit=300, expect_regex=r"count=9\d", fail="count=2")
    assert job["verdict"] == "failed" and job["stop_reason"] == "verdict"
    assert "fail pattern 'count=2' at line 5" in job["verdict_reason"]
    assert job["time_used_seconds"] < 300  # before the limit (see above)


def test_missing_expectation_fails_at_the_limit(env):
    job = run(env, limit=1, expect="never printed")
    assert job["verdict"] == "failed" and job["stop_reason"] == "limit"
    assert "'never printed' never appeared" in job["verdict_reason"]


def test_ordered_mix_of_texts_and_regexes_in_query_order(env):
    r = env.client.simulate_put(
        "/apiv1/jobs/submit", headers=env.headers["alice"], body=_hello(),
        query_string="board=nucleo-f303re&duration_limit_seconds=2&expect=count=4"
                     "&expect_regex=%5Ecount%3D%5B0-3%5D%24&ordered=true")
    assert r.status_code == 201, r.text
    assert r.json["criteria"]["expect"] == [{"text": "count=4"}, {"regex": "^count=[0-3]$"}]
    env.wait(r.json["id"], timeout=30)
    job = env.get(f"/apiv1/jobs/{r.json['id']}").json
    assert job["verdict"] == "failed" and "in order" in job["verdict_reason"]


def test_exit_code_criterion(env):
    assert run(env, "semihost_exit", exit_code=3)["verdict"] == "passed"
    job = run(env, "semihost_exit", exit_code=0, expect="ok")
    assert job["verdict"] == "failed" and "expected 0" in job["verdict_reason"]


def test_fault_fails(env):
    job = run(env, "fault", limit=1, expect="never")
    assert job["verdict"] == "failed"


def test_no_criteria_no_verdict(env):
    job = run(env, limit=1)
    assert job["verdict"] is None and job["criteria"] is None
    short = env.get("/apiv1/jobs").json[0]
    assert "verdict" not in short  # the v1 short view is unchanged


def test_canceled_while_waiting_is_canceled(idle_env):
    r = idle_env.submit(expect="x")
    job_id = r.json["id"]
    assert idle_env.client.simulate_delete(f"/apiv1/jobs/{job_id}",
                                           headers=idle_env.headers["alice"]).status_code == 204
    job = idle_env.get(f"/apiv1/jobs/{job_id}").json
    assert job["status"] == "CANCELED" and job["verdict"] == "canceled"


def test_canceled_while_running_is_canceled_not_a_verdict(env):
    r = env.submit(firmware="hello", limit=30, expect="never")
    job_id = r.json["id"]
    env.wait(job_id, until=lambda s: s is JobStatus.RUNNING)
    env.client.simulate_delete(f"/apiv1/jobs/{job_id}", headers=env.headers["alice"])
    env.wait(job_id, timeout=30)
    job = env.get(f"/apiv1/jobs/{job_id}").json
    assert job["status"] == "CANCELED" and job["verdict"] == "canceled"
    assert job["verdict_reason"] == "canceled by alice"


def test_bad_criteria_are_refused_with_the_reason(env):
    for params, words in (({"expect_regex": "(a"}, "RE2"),
                          ({"expect": ""}, "empty text"),
                          ({"ordered": "true"}, "without any expect"),
                          ({"on_limit": "maybe", "expect": "a"}, "on_limit"),
                          ({"exit_code": "zero"}, "integer"),
                          ({"expect": ["a"] * 33}, "at most 32")):
        r = env.submit(**params)
        assert r.status_code == 400, (params, r.text)
        assert words in r.json["description"], (params, r.json)


def _hello() -> bytes:
    from fixture_firmware import image
    return image("hello")
