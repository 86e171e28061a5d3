"""The report channel as a worker host sees it, against a real server and a real broker:
the test takes the published task off the queue itself (as a worker would) and speaks
the protocol by hand, so fencing, idempotency and the token checks are seen directly."""
from __future__ import annotations

import base64
import json
import string
import subprocess
import sys
import time
from typing import Any

import httpx
import pytest
from cluster import TOKEN, wait_until
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

WORKER = {"Authorization": f"Bearer {TOKEN}"}


def _take_task(url: str, timeout: float = 30.0) -> dict[str, Any]:
    """The next task of the board's queue, acknowledged (Celery's message: args first)."""
    from kombu import Connection  # the broker extra; absent, conftest says why it skips

    with Connection(url) as conn:
        queue = conn.SimpleQueue("hwut.board.nucleo-f303re")
        try:
            message = queue.get(block=True, timeout=timeout)
            message.ack()
        finally:
            queue.close()
    body = message.body if isinstance(message.body, bytes | str) else json.dumps(message.body)
    args = json.loads(body)[0]
    return dict(args[0])


def _report(http: httpx.Client, job: int, attempt: int, token: str, seq: int,
            uart: bytes = b"", outcome: dict[str, Any] | None = None) -> httpx.Response:
    data: dict[str, Any] = {"v": 1, "attempt": attempt, "token": token, "seq": seq}
    if uart:
        data["uart"] = base64.b64encode(uart).decode()
    if outcome is not None:
        data["outcome"] = outcome
    return http.post(f"/apiv1/workers/jobs/{job}/reports", json=data)


@pytest.fixture
def by_hand(make_cluster):
    """A cluster with no worker process: the test announces a host and is its worker."""
    cluster = make_cluster()
    http = httpx.Client(base_url=f"http://127.0.0.1:{cluster.port}", headers=WORKER)
    r = http.post("/apiv1/workers/heartbeat", json={"v": 1, "host": "hand", "instances": [
        {"name": "nucleo-f303re#0", "board": "nucleo-f303re", "backend": "sim",
         "state": "idle", "job": None}]})
    assert r.status_code == 200, r.text
    yield cluster, http
    http.close()


def test_reports_are_applied_once_in_order_and_old_attempts_are_fenced(by_hand):
    cluster, http = by_hand
    job = cluster.api.submit("hello")
    task = _take_task(cluster.rabbit.url())
    assert task["v"] == 1 and task["job_id"] == job and task["board"] == "nucleo-f303re"
    assert base64.b64decode(task["executable"]).startswith(b"\x7fELF")

    # a claim that is not the job's is refused, and the job is left alone
    assert http.post(f"/apiv1/workers/jobs/{job}/attempts",
                     json={"v": 1, "claim": "forged", "host": "x/y"}).status_code == 410
    r = http.post(f"/apiv1/workers/jobs/{job}/attempts",
                  json={"v": 1, "claim": task["claim"], "host": "hand/nucleo-f303re#0"})
    assert r.status_code == 200, r.text
    first = r.json()
    assert first["attempt"] == 1
    assert cluster.api.job(job)["status"] == "RUNNING"

    assert _report(http, job, 1, first["token"], 0, b"one ").json()["ack"] == 0
    # the same report again (its answer was lost): acknowledged, not applied twice
    assert _report(http, job, 1, first["token"], 0, b"one ").json()["ack"] == 0
    assert _report(http, job, 1, first["token"], 2, b"gap").status_code == 409
    assert _report(http, job, 1, "not-the-secret", 1, b"x").status_code == 409
    assert _report(http, job, 1, first["token"], 1, b"two").json()["ack"] == 1
    assert cluster.api.log(job) == b"one two"

    # the broker handed the task to another host: attempt 2, the first is fenced
    r = http.post(f"/apiv1/workers/jobs/{job}/attempts",
                  json={"v": 1, "claim": task["claim"], "host": "other/nucleo-f303re#0"})
    second = r.json()
    assert second["attempt"] == 2
    assert _report(http, job, 1, first["token"], 2, b"late").status_code == 409
    assert _report(http, job, 2, second["token"], 0, b"fresh").status_code == 200
    r = _report(http, job, 2, second["token"], 1, outcome={
        "reason": "limit", "exit_code": None, "time_used_s": 1.0, "detail": "",
        "infra_log": "", "cancel_reason": None, "cancel_detail": ""})
    assert r.status_code == 200, r.text
    done = cluster.api.job(job)
    assert done["status"] == "FINISHED" and done["attempts"] == 2
    assert done["hosts"] == ["hand/nucleo-f303re#0", "other/nucleo-f303re#0"]
    assert cluster.api.log(job) == b"fresh"  # the log is the last attempt's
    r = cluster.api.http.get(f"/apiv1/jobs/{job}/infra_log")
    assert b"attempt 1 on hand/nucleo-f303re#0" in r.content
    # nothing more may be written to an ended job
    assert _report(http, job, 2, second["token"], 2, b"more").status_code == 410


def test_tokens_open_only_their_own_routes(by_hand):
    cluster, http = by_hand
    base = f"http://127.0.0.1:{cluster.port}"
    # the worker token is no user's credential
    assert httpx.get(f"{base}/apiv1/jobs", headers=WORKER).status_code == 401
    # a user's token is no worker's
    user = dict(cluster.api.http.headers)
    r = httpx.post(f"{base}/apiv1/workers/heartbeat", headers=user,
                   json={"v": 1, "host": "evil", "instances": []})
    assert r.status_code == 401
    assert httpx.post(f"{base}/apiv1/workers/heartbeat",
                      json={"v": 1, "host": "evil", "instances": []}).status_code == 401
    # a version this server does not speak is refused, as is a malformed report
    assert http.post("/apiv1/workers/heartbeat",
                     json={"v": 2, "host": "h", "instances": []}).status_code == 400
    assert http.post("/apiv1/workers/jobs/1/reports", content=b"{not json").status_code == 400


def test_remote_instances_show_with_host_heartbeat_age_and_health(by_hand):
    cluster, http = by_hand
    found = cluster.api.remote_instances()
    assert [i["name"] for i in found] == ["hand/nucleo-f303re#0"]
    assert found[0]["host"] == "hand" and found[0]["health"] == "ok"
    assert found[0]["heartbeat_age_seconds"] >= 0
    shown = subprocess.run(
        [sys.executable, "-m", "hwut", "--url", f"http://127.0.0.1:{cluster.port}", "--token",
         cluster.api.http.headers["Authorization"].split()[1], "boards"],
        capture_output=True, text=True, timeout=60)
    assert shown.returncode == 0, shown.stderr
    # (ok, or stale already when the command took past host_stale_seconds to start)
    assert "hand/nucleo-f303re#0" in shown.stdout and "[host hand, " in shown.stdout
    assert " s ago]" in shown.stdout
    # silent past host_stale_seconds (3 s here): stale, and no new job is published to it
    stale = wait_until(lambda: [i for i in cluster.api.remote_instances()
                                if i["health"] == "stale"], 20, "the host to go stale", 0.5)
    assert stale[0]["state"] == "unavailable"
    job = cluster.api.submit("hello")
    time.sleep(1.0)
    assert cluster.api.job(job)["status"] == "WAITING"


def _attempt(http: httpx.Client, job: int, claim: str, host: str, takes: list[str]):
    r = http.post(f"/apiv1/workers/jobs/{job}/attempts",
                  json={"v": 1, "claim": claim, "host": host, "takes": takes})
    assert r.status_code == 200, r.text
    return r.json()


def _ack_report(http: httpx.Client, job: int, attempt: dict[str, Any], seq: int, ack: int,
                board_time: float) -> dict[str, Any]:
    r = http.post(f"/apiv1/workers/jobs/{job}/reports", json={
        "v": 1, "attempt": attempt["attempt"], "token": attempt["token"], "seq": seq,
        "input_ack": ack, "board_time_s": board_time})
    assert r.status_code == 200, r.text
    return dict(r.json())


def test_live_input_waits_for_the_host_s_report_once_in_order_and_fenced(by_hand):
    """Input into a remote job rides on the answers to the attempt's reports: numbered,
    repeated until the host acknowledges it, dropped for a new attempt, never given to
    an old one; a host that did not say it takes input has the API refuse it."""
    cluster, http = by_hand
    user = cluster.api.http
    job = cluster.api.submit("echo", limit=60)
    task = _take_task(cluster.rabbit.url())
    # an old hwut worker opens the attempt without "takes": input is refused, with why
    old = _attempt(http, job, task["claim"], "hand/nucleo-f303re#0", [])
    r = user.post(f"/apiv1/jobs/{job}/input", json={"text": "x"})
    assert r.status_code == 400 and "takes no input" in r.text, r.text
    # the broker hands the task on to a host that takes input (attempt 2)
    first = _attempt(http, job, task["claim"], "hand/nucleo-f303re#0", ["input"])
    assert first["attempt"] == old["attempt"] + 1
    r = user.post(f"/apiv1/jobs/{job}/input", json={"text": "ping\r"})
    assert r.status_code == 202, r.text
    assert r.json()["board_time_s"] == 0.0  # no report of this attempt said a time yet
    answer = _ack_report(http, job, first, 0, 0, 1.25)
    assert answer["input"] == [{"n": 1, "text": base64.b64encode(b"ping\r").decode()}]
    r = user.post(f"/apiv1/jobs/{job}/input", json={"press": "B1", "hold_s": 0.2})
    assert r.status_code == 202 and r.json()["board_time_s"] == 1.25, r.text
    # the host lost the answer and sends the same report again: the same input comes
    again = _ack_report(http, job, first, 0, 0, 1.25)
    assert [i["n"] for i in again["input"]] == [1, 2]
    assert again["input"][1] == {"n": 2, "press": "B1", "hold_s": 0.2}
    # it passed both on: acknowledged, they come no more
    assert "input" not in _ack_report(http, job, first, 1, 2, 1.5)
    # a report of an attempt that is not the current one gets no input
    user.post(f"/apiv1/jobs/{job}/input", json={"text": "late"})
    second = _attempt(http, job, task["claim"], "other/nucleo-f303re#0", ["input"])
    assert http.post(f"/apiv1/workers/jobs/{job}/reports", json={
        "v": 1, "attempt": first["attempt"], "token": first["token"], "seq": 2,
        "input_ack": 2}).status_code == 409
    # the new attempt runs the job from its start: what was meant for the old run is
    # dropped, and its numbers begin again
    assert "input" not in _ack_report(http, job, second, 0, 0, 0.1)
    assert user.post(f"/apiv1/jobs/{job}/input", json={"text": "new"}).status_code == 202
    assert _ack_report(http, job, second, 1, 0, 0.2)["input"] == [
        {"n": 1, "text": base64.b64encode(b"new").decode()}]
    # the protocol's own bounds: a malformed ack or time is refused
    for bad in ({"input_ack": -1}, {"input_ack": "1"}, {"board_time_s": float("inf")},
                {"board_time_s": -2}):
        r = http.post(f"/apiv1/workers/jobs/{job}/reports", content=json.dumps({
            "v": 1, "attempt": second["attempt"], "token": second["token"], "seq": 2,
            **bad}, allow_nan=True))
        assert r.status_code == 400, (bad, r.text)
    assert user.delete(f"/apiv1/jobs/{job}").status_code in (200, 202, 204)


_TOKEN_CHARS = string.ascii_letters + string.digits + "-_."
_ATTEMPT = st.one_of(
    st.tuples(st.just("right"), st.sampled_from([f"Bearer {TOKEN}", f"bearer {TOKEN}",
                                                 f"BEARER   {TOKEN}"])),
    st.tuples(st.just("wrong"), st.text(_TOKEN_CHARS, min_size=1, max_size=40)
              .filter(lambda t: t != TOKEN).map(lambda t: f"Bearer {t}")),
    st.tuples(st.just("wrong"), st.sampled_from([f"Bearer {TOKEN[:-1]}", f"Bearer {TOKEN}x",
                                                 f"Basic {TOKEN}", "Basic dTpw", TOKEN,
                                                 "Bearer", "Token abc"])),
    st.tuples(st.just("none"), st.just("")))


@settings(max_examples=25, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(attempts=st.lists(st.tuples(_ATTEMPT, st.booleans()), max_size=9))
def test_wrong_worker_tokens_are_throttled_as_failed_logins(by_hand, attempts):
    """Wrong worker tokens count on the client's address as wrong passwords do: past the
    limit they are answered 429 with Retry-After, with a body (refused before it is
    read) or without; the right token still gets through; no header counts nothing."""
    cluster, _ = by_hand
    throttle = cluster.service.auth.throttle
    limit = 3
    throttle.limits = {**throttle.limits, "addr": limit}
    now = [throttle.monotonic() + 10 * throttle.window]  # what earlier examples left expired
    throttle.monotonic = lambda: now[0]
    url = f"http://127.0.0.1:{cluster.port}/apiv1/workers/heartbeat"
    failures = 0
    with httpx.Client(timeout=30) as client:
        for (kind, header), with_body in attempts:
            headers = {"Authorization": header} if header else {}
            body = {"v": 1, "host": "hand", "instances": [
                {"name": "nucleo-f303re#0", "board": "nucleo-f303re", "backend": "sim",
                 "state": "idle", "job": None}]} if with_body else None
            r = client.post(url, headers=headers, json=body) if with_body else \
                client.post(url, headers=headers)
            if kind == "right":
                assert r.status_code == (200 if with_body else 400), (header, r.text)
            elif kind == "none":
                assert r.status_code == 401, r.text
            elif failures >= limit:
                assert r.status_code == 429, (header, with_body, r.text)
                assert int(r.headers["Retry-After"]) >= 1
            else:
                assert r.status_code == 401, (header, with_body, r.text)
                failures += 1
