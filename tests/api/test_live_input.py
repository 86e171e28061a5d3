"""Input into a running job (issue 16): POST /jobs/{id}/input over the real waitress
server, jobs on the real sim backend in their own processes (the input crosses to the
job's process on its pipe), the log's board times on the live stream, and the verdict's
match time."""
from __future__ import annotations

import base64
import json
import re
import time

import cli_served
import httpx
import pytest
from cli_served import Served
from httpx_sse import connect_sse

from hwut import liveinput
from hwut.backends.renode import RenodeBackend
from hwut.backends.sim import SimBackend
from hwut.client import Client, HwutError, Settings
from hwut.jobs import JobStatus

serve, served = cli_served.serve, cli_served.served  # the fixtures


def http(s: Served, who: str = "alice") -> httpx.Client:
    return httpx.Client(base_url=s.url + "/apiv1", headers=s.env.headers[who], timeout=30)


def client(s: Served, who: str = "alice") -> Client:
    return Client(Settings(s.url, s.token(who)))


def submit(s: Served, firmware: str, limit: int = 60, **params) -> int:
    r = s.env.submit(limit=limit, firmware=firmware, **params)
    assert r.status_code == 201, r.text
    return r.json["id"]


def running(s: Served, job_id: int) -> None:
    assert s.env.wait(job_id, lambda st: st is JobStatus.RUNNING or st.ended, 30) \
        is JobStatus.RUNNING


def send(h: httpx.Client, job_id: int, body: dict, tries: int = 200) -> httpx.Response:
    """POST the input; 409 while the job's board is starting is retried."""
    for _ in range(tries):
        r = h.post(f"/jobs/{job_id}/input", json=body)
        if r.status_code != 409 or "not ready" not in r.text:
            return r
        time.sleep(0.05)
    return r


def follow(h: httpx.Client, job_id: int, until: bytes | re.Pattern[bytes],
           timeout: float = 60.0) -> tuple[bytes, list[dict]]:
    """The log (and the ``time`` events) until ``until`` (bytes, or a regex) appears in
    it."""
    found = until.search if isinstance(until, re.Pattern) else (lambda log: until in log)
    log, times = b"", []
    started = time.monotonic()
    with connect_sse(h, "GET", f"/jobs/{job_id}/log/stream") as source:
        for sse in source.iter_sse():
            if sse.event == "time":
                times.append(json.loads(sse.data))
            elif sse.event == "log":
                log += base64.b64decode(sse.data)
                if found(log):
                    break
            elif sse.event == "end":
                break
            assert time.monotonic() - started < timeout, log
    return log, times


def time_of(times: list[dict], offset: int) -> float:
    """The board's time of the line ending at ``offset`` (from the marks)."""
    for stamp in times:
        for end, t in stamp["marks"]:
            if end >= offset:
                return t
    raise AssertionError(f"no time for offset {offset}")


def infra(s: Served, job_id: int) -> str:
    r = s.env.get(f"/apiv1/jobs/{job_id}/infra_log")
    assert r.status_code == 200, r.text
    return r.text


def test_text_reaches_the_running_echo_at_the_boards_time(served: Served):
    job_id = submit(served, "echo", realtime="true")
    running(served, job_id)
    with http(served) as h:
        follow(h, job_id, b"echo ready\r\n")
        r = send(h, job_id, {"text": "ping\r"})
        assert r.status_code == 202, r.text
        answer = r.json()
        assert answer["job"] == job_id and answer["text_bytes"] == 5
        log, times = follow(h, job_id, b"ping\r\n")
        assert log.endswith(b"echo ready\r\nping\r\n")
        echoed = time_of(times, len(log))
        # realtime: the board keeps to the wall clock, so the echo came at or after the
        # board time the server knew when it passed the input on, and soon after
        assert answer["board_time_s"] <= echoed < answer["board_time_s"] + 5
        assert h.delete(f"/jobs/{job_id}").status_code == 204
    assert served.env.wait(job_id, timeout=30) is JobStatus.CANCELED
    line = re.search(r"live input at (\d+\.\d+) s: 5 bytes b'ping\\r'", infra(served, job_id))
    assert line is not None, infra(served, job_id)
    # the note prints the board's time to the microsecond: it may read up to 0.5 us early
    assert answer["board_time_s"] <= float(line[1]) + 0.5e-6 and float(line[1]) <= echoed
    job = served.env.get(f"/apiv1/jobs/{job_id}").json
    assert job["realtime"] is True


def test_a_press_reaches_the_running_button_firmware(served: Served):
    job_id = submit(served, "button", realtime="true")
    running(served, job_id)
    with http(served) as h:
        follow(h, job_id, b"B1 idle=1\r\n")
        r = send(h, job_id, {"press": "B1", "hold_s": 0.2})
        assert r.status_code == 202, r.text
        assert r.json()["presses"] == [{"button": "B1", "hold_s": 0.2}]
        log, _ = follow(h, job_id, re.compile(rb"released at \d+ ms\r\n"))
        pressed = int(re.search(rb"pressed at (\d+) ms", log)[1])
        released = int(re.search(rb"released at (\d+) ms", log)[1])
        assert 195 <= released - pressed <= 205  # held 0.2 s of the board's time
        h.delete(f"/jobs/{job_id}")
    served.env.wait(job_id, timeout=30)
    assert "live input at" in infra(served, job_id) and "press B1 for 0.2 s" in \
        infra(served, job_id)


def test_input_is_refused_unless_the_job_runs_and_the_sender_may(served: Served):
    with http(served) as alice, http(served, "bob") as bob, http(served, "admin") as admin:
        ended = submit(served, "hello", limit=1)
        served.env.wait(ended, timeout=30)
        r = alice.post(f"/jobs/{ended}/input", json={"text": "x"})
        assert r.status_code == 409 and "FINISHED" in r.json()["description"]
        job_id = submit(served, "echo", realtime="true")
        running(served, job_id)
        assert bob.post(f"/jobs/{job_id}/input", json={"text": "x"}).status_code == 403
        assert send(admin, job_id, {"text": "x"}).status_code == 202  # an admin may
        for body, why in (({"text": ""}, "non-empty"), ({"txt": "a"}, "unknown key"),
                          ({"hold_s": 1}, "goes with 'press'"),
                          ({"press": "B1", "hold_s": 99}, "at most"),
                          ({"press": "B9"}, "no button 'B9'"),
                          ({"press": "1; rm"}, "button name"),
                          ({"text": "é" * 600}, "at most 1024 bytes"), ([], "JSON object")):
            r = alice.post(f"/jobs/{job_id}/input", json=body)
            assert r.status_code == 400 and why in r.json()["description"], (body, r.text)
        r = alice.post(f"/jobs/{job_id}/input", content=b"{not json")
        assert r.status_code == 400
        r = alice.post(f"/jobs/{job_id}/input", content=b" " * (liveinput.MAX_BODY_BYTES + 1))
        assert r.status_code == 413
        assert alice.post("/jobs/999999/input", json={"text": "x"}).status_code == 404
        alice.delete(f"/jobs/{job_id}")
    served.env.wait(job_id, timeout=30)


def test_input_is_rate_limited_per_job(served: Served):
    job_id = submit(served, "echo", realtime="true")
    running(served, job_id)
    with http(served) as h:
        assert send(h, job_id, {"text": "a"}).status_code == 202
        started = time.monotonic()
        answers = [h.post(f"/jobs/{job_id}/input", json={"text": "b"})
                   for _ in range(liveinput.MAX_REQUESTS_PER_S + 5)]
        if time.monotonic() - started < 0.9:  # the burst came within the rate's second
            refused = [r for r in answers if r.status_code == 429]
            assert refused and int(refused[0].headers["Retry-After"]) >= 1
            assert "at most 20 inputs" in refused[0].json()["description"]
        assert {r.status_code for r in answers} <= {202, 429}
        h.delete(f"/jobs/{job_id}")
    served.env.wait(job_id, timeout=30)


def test_the_rate_is_per_job_per_second():
    now = [100.0]
    rate = liveinput.RateLimit(clock=lambda: now[0], requests=3, data=10)
    assert [rate.take(1, 2) for _ in range(3)] == [None, None, None]
    assert rate.take(1, 0) is not None       # a fourth request within the second
    assert rate.take(2, 10) is None          # another job has its own
    assert rate.take(2, 1) is not None       # past its bytes
    now[0] += 1.0
    assert rate.take(1, 2) is None and rate.take(2, 10) is None


def test_a_backend_without_live_input_is_named(served: Served):
    """board-hang's backend says nothing of the board: input is refused, with why."""
    r = served.env.submit(board="board-hang", limit=5)
    job_id = r.json["id"]
    served.env.wait(job_id, lambda st: st is JobStatus.RUNNING, 30)
    with http(served) as h:
        r = h.post(f"/jobs/{job_id}/input", json={"text": "x"})
        assert r.status_code == 400
        assert "board board-hang (backend of this board) cannot take console input" in \
            r.json()["description"]
        h.delete(f"/jobs/{job_id}")
    # the hanging backend ignores the cancel: its process is killed after the grace
    assert served.env.wait(job_id, timeout=30).ended


def test_what_each_backend_takes_while_a_job_runs():
    sim = SimBackend.board_info("nucleo-f303re")
    renode = RenodeBackend.board_info("nucleo-f303re")
    assert sim is not None and sim.live_input and sim.live_presses and sim.backend == "sim"
    # Renode's job script feeds input scheduled before the run; nothing reaches it during
    # one, so the API refuses with the backend's name
    assert renode is not None and not renode.live_input and not renode.live_presses
    assert renode.backend == "renode"


def test_the_client_writes_and_presses(served: Served):
    job_id = submit(served, "echo", realtime="true")
    running(served, job_id)
    with client(served) as c, http(served) as h:
        for _ in range(200):
            try:
                answer = c.write(job_id, "hi\r")
                break
            except HwutError as exc:
                assert exc.status == 409
                time.sleep(0.05)
        assert answer["text_bytes"] == 3
        with pytest.raises(HwutError) as refused:
            c.press(job_id, "B7")
        assert refused.value.status == 400
        log, _ = follow(h, job_id, b"hi\r\n")
        assert b"hi\r\n" in log
        c.cancel(job_id)
    served.env.wait(job_id, timeout=30)
    with client(served) as c, pytest.raises(HwutError) as ended:
        c.write(job_id, "late")
    assert ended.value.status == 409


def test_verdict_reason_gives_the_time_of_the_match_not_of_the_stop(served: Served):
    """fault_div0 prints its last line, 'div0: done', at ~33 ms and then sleeps (WFI) for
    ever: the emulator jumps to the limit at once, so the run stops at 60 s, long after
    the deciding line."""
    job_id = submit(served, "fault_div0", limit=60, fail="div0: done")
    served.env.wait(job_id, timeout=60)
    job = served.env.get(f"/apiv1/jobs/{job_id}").json
    assert job["verdict"] == "failed", job
    found = re.search(r"at line \d+ \((\d+\.\d+) s virtual\)", job["verdict_reason"])
    assert found is not None, job["verdict_reason"]
    assert 0.025 < float(found[1]) < 0.040, job["verdict_reason"]
    assert job["time_used_seconds"] > 1.0  # the stop: far later than the match
    assert "60" not in job["verdict_reason"].split("virtual)")[0].split("(")[-1]


def test_a_passing_verdict_says_when_its_last_expectation_was_met(served: Served):
    job_id = submit(served, "fault_div0", limit=60, expect="div0: done")
    served.env.wait(job_id, timeout=60)
    job = served.env.get(f"/apiv1/jobs/{job_id}").json
    assert job["verdict"] == "passed", job
    found = re.search(r"\((\d+\.\d+) s virtual\)", job["verdict_reason"])
    assert found is not None and 0.025 < float(found[1]) < 0.040, job["verdict_reason"]


def test_the_stream_says_how_far_the_board_got_while_it_prints_nothing(served: Served):
    """echo waits for input, printing nothing: ``time`` events still come, growing."""
    job_id = submit(served, "echo", realtime="true")
    running(served, job_id)
    seen: list[float] = []
    with http(served) as h, connect_sse(h, "GET", f"/jobs/{job_id}/log/stream") as source:
        for sse in source.iter_sse():
            if sse.event == "time":
                stamp = json.loads(sse.data)
                if not stamp["marks"]:
                    seen.append(stamp["t"])
                if len(seen) >= 3:
                    break
        h.delete(f"/jobs/{job_id}")
    assert seen == sorted(seen) and seen[-1] > seen[0]
    served.env.wait(job_id, timeout=30)
