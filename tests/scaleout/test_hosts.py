"""Two worker hosts in network namespaces of their own (their broker and HTTP traffic
crosses a veth pair), a real RabbitMQ node, a real API server: jobs run on both, a host
killed or cut off mid-job has its job finish on the other (attempt 2), the broker
restarted mid-burst loses no acknowledged job, cancel and live logs reach remote jobs."""
from __future__ import annotations

import base64
import json
import re
import time
from typing import Any

import httpx
import pytest
from cluster import FIXTURES, Api, wait_until
from httpx_sse import connect_sse

ENDED = ("FINISHED", "ERROR", "CANCELED")


def _ready(api: Api, hosts: set[str]) -> None:
    wait_until(lambda: {i["host"] for i in api.remote_instances()
                        if i["health"] == "ok"} >= hosts, 90, f"hosts {sorted(hosts)}", 0.3)


@pytest.fixture
def two_hosts(make_cluster, namespaces):
    def factory(**broker: Any):
        cluster = make_cluster(**broker)
        a = cluster.worker("host-a", namespaces[0])
        b = cluster.worker("host-b", namespaces[1])
        _ready(cluster.api, {"host-a", "host-b"})
        return cluster, {"host-a": (a, namespaces[0]), "host-b": (b, namespaces[1])}
    yield factory
    for ns in namespaces:
        ns.link(True)


def _running_on(api: Api, job: int) -> str:
    """The host that runs ``job`` once its log has begun."""
    found = api.wait(job, lambda j: j["status"] == "RUNNING" and bool(j.get("hosts")), 90)
    wait_until(lambda: len(api.log(job)) > 100, 60, f"job {job}'s log to begin")
    return str(found["hosts"][-1]).split("/")[0]


def test_jobs_run_on_both_hosts_and_show_in_boards(two_hosts):
    cluster, _ = two_hosts()
    remote = cluster.api.remote_instances()
    assert {i["host"] for i in remote} == {"host-a", "host-b"}
    assert all(i["health"] == "ok" and i["heartbeat_age_seconds"] < 3 for i in remote)
    jobs = [cluster.api.submit("blink", limit=3) for _ in range(8)]
    done = [cluster.api.wait(j) for j in jobs]
    assert [d["status"] for d in done] == ["FINISHED"] * 8
    hosts = {d["hosts"][0].split("/")[0] for d in done}
    assert hosts == {"host-a", "host-b"}
    assert all(d["attempts"] == 1 for d in done)
    assert b"tick 1" in cluster.api.log(jobs[0])


@pytest.mark.parametrize("loss", ["sigkill", "link-down"])
def test_a_lost_host_s_job_finishes_on_the_other_with_attempt_2(two_hosts, loss):
    cluster, hosts = two_hosts()
    job = cluster.api.submit("uart_loop", limit=6)
    first = _running_on(cluster.api, job)
    worker, namespace = hosts[first]
    if loss == "sigkill":
        worker.kill()
    else:
        namespace.link(False)
    done = cluster.api.wait(job, timeout=180)
    assert done["status"] == "FINISHED", (done, worker.log()[-3000:])
    assert done["attempts"] == 2
    assert [h.split("/")[0] for h in done["hosts"]] == [first, ({"host-a", "host-b"}
                                                                - {first}).pop()]
    assert cluster.api.log(job).startswith(b"line 0\r\n")  # the last attempt's, whole
    if loss == "link-down":
        # the cut-off host comes back: whatever its old attempt still had to say is
        # refused (fenced by the attempt number); the job stays as attempt 2 left it
        log = cluster.api.log(job)
        namespace.link(True)
        _ready(cluster.api, {first})
        time.sleep(2.0)
        assert cluster.api.job(job) == done
        assert cluster.api.log(job) == log


def test_a_job_whose_hosts_keep_dying_ends_error_worker_lost(two_hosts):
    cluster, hosts = two_hosts(max_attempts=1)
    job = cluster.api.submit("uart_loop", limit=6)
    first = _running_on(cluster.api, job)
    hosts[first][0].kill()
    done = cluster.api.wait(job, timeout=180)
    assert done["status"] == "ERROR"
    assert "worker lost" in done["detail"]


def test_cancel_reaches_a_remote_job(two_hosts):
    cluster, _ = two_hosts()
    job = cluster.api.submit("uart_loop", limit=60)
    _running_on(cluster.api, job)
    started = time.monotonic()
    assert cluster.api.http.delete(f"/apiv1/jobs/{job}").status_code in (200, 202, 204)
    done = cluster.api.wait(job, timeout=60)
    took = time.monotonic() - started
    assert done["status"] == "CANCELED", done
    assert done["detail"].startswith("canceled by alice")
    print(f"remote cancel took {took:.2f} s")


def test_live_log_of_a_remote_job(two_hosts):
    """The live stream of a remote job as of a local one: its log while it runs, and the
    board's time of each line (``time`` events, from the index the host's reports
    carry): blink prints a ``tick N`` line every 0.25 s of board time."""
    cluster, _ = two_hosts()
    job = cluster.api.submit("blink", limit=60)
    seen: list[tuple[str, str]] = []  # (event, job status when it came)
    marks: list[tuple[int, float]] = []
    log = b""
    with connect_sse(cluster.api.http, "GET", f"/apiv1/jobs/{job}/log/stream") as events:
        for sse in events.iter_sse():
            if sse.event == "time":
                marks += [(int(end), float(t)) for end, t in json.loads(sse.data)["marks"]]
            elif sse.event == "log":
                log += base64.b64decode(sse.data)
                seen.append(("log", cluster.api.job(job)["status"]))
                if log.count(b"tick") >= 3:
                    break
            elif sse.event == "end":
                break
    assert ("log", "RUNNING") in seen, seen
    assert b"tick 1" in log
    ends = [m.end() for m in re.finditer(rb"tick \d+ led=\d\r\n", log)]
    at = dict(marks)
    assert all(end in at for end in ends), (ends, marks)
    gaps = [at[b] - at[a] for a, b in zip(ends, ends[1:], strict=False)]
    assert gaps and all(abs(g - 0.25) < 0.001 for g in gaps), gaps
    cluster.api.http.delete(f"/apiv1/jobs/{job}")
    cluster.api.wait(job)


def test_broker_restart_mid_burst_loses_nothing_acknowledged(two_hosts):
    cluster, _ = two_hosts()
    jobs = [cluster.api.submit("blink", limit=4) for _ in range(12)]
    wait_until(lambda: sum(cluster.api.job(j)["status"] == "FINISHED" for j in jobs) >= 2,
               120, "the burst to be under way")
    pending = [j for j in jobs if cluster.api.job(j)["status"] != "FINISHED"]
    cluster.rabbit.restart()
    assert pending  # the restart really came mid-burst
    done = [cluster.api.wait(j, timeout=240) for j in jobs]
    statuses = {d["id"]: d["status"] for d in done}
    assert set(statuses.values()) == {"FINISHED"}, json.dumps(done, indent=1)[:4000]
    r = httpx.get(f"http://127.0.0.1:{cluster.port}/apiv1/version")
    assert r.status_code == 200


def test_a_remote_job_s_verdict_is_settled_by_the_server_and_stops_the_run(two_hosts):
    cluster, _ = two_hosts()
    job = cluster.api.submit("blink", limit=60, expect="tick 2")
    done = cluster.api.wait(job, timeout=120)
    assert done["status"] == "FINISHED", done
    assert done["verdict"] == "passed" and done["stop_reason"] == "verdict", done
    assert done["time_used_seconds"] < 60
    # the board's time of the deciding line, from the index the host's reports carry
    assert re.search(r"\(\d+\.\d{6} s virtual\)", done["verdict_reason"]), done


def _follow(api: Api, job: int, until: bytes | re.Pattern[bytes], timeout: float = 90.0
            ) -> bytes:
    """The job's live log (the SSE stream) until ``until`` appears in it; a stream slot
    still held for a stream just closed (503) is waited for."""
    found = until.search if isinstance(until, re.Pattern) else (lambda log: until in log)
    log = b""
    started = time.monotonic()
    while True:
        with connect_sse(api.http, "GET", f"/apiv1/jobs/{job}/log/stream") as events:
            if events.response.status_code == 503:
                assert time.monotonic() - started < timeout, "no stream slot came free"
                time.sleep(0.3)
                continue
            for sse in events.iter_sse():
                if sse.event == "log":
                    log += base64.b64decode(sse.data)
                    if found(log):
                        return log
                elif sse.event == "end":
                    break
                assert time.monotonic() - started < timeout, log
        raise AssertionError(f"job {job}'s log ended without {until!r}: {log[-500:]!r}")


def _send(api: Api, job: int, body: dict[str, Any]) -> httpx.Response:
    """POST live input; 409 while the job's board is not ready yet is retried."""
    for _ in range(100):
        r = api.http.post(f"/apiv1/jobs/{job}/input", json=body)
        if r.status_code != 409 or "not ready" not in r.text:
            return r
        time.sleep(0.1)
    return r


def test_a_remote_job_carries_its_images_pins_and_live_input(two_hosts):
    """A job of two images (bootloader + application) and one with scripted pins run on a
    worker host as on the server's own boards; text and a button press posted into a
    running remote job (realtime) reach its board on the worker host, and come back in
    its live log."""
    cluster, _ = two_hosts()
    api = cluster.api
    files = [("image", ("boot_split.elf", (FIXTURES / "boot_split.elf").read_bytes())),
             ("image@0x0800A000", ("boot_app.bin", (FIXTURES / "boot_app.bin").read_bytes()))]
    r = api.http.put("/apiv1/jobs/submit", files=files,
                     params={"board": "nucleo-f303re", "duration_limit_seconds": 2})
    assert r.status_code == 201, r.text
    pair = api.wait(int(r.json()["id"]))
    assert pair["status"] == "FINISHED" and pair["attempts"] == 1, pair
    assert b"app: running, vtor=0x0800a000" in api.log(pair["id"])
    pins = api.submit("pin_levels", limit=2, pin="PA0@0:1")
    assert api.wait(pins)["status"] == "FINISHED"
    assert b"t=50ms PA0=1 PA1=0 PA4=1 PC13=1" in api.log(pins)

    echo = api.submit("echo", limit=60, realtime="true")
    _follow(api, echo, b"echo ready\r\n")
    r = _send(api, echo, {"text": "ping\r"})
    assert r.status_code == 202, r.text
    assert r.json()["text_bytes"] == 5 and r.json()["board_time_s"] >= 0
    assert _follow(api, echo, b"ping\r\n").endswith(b"echo ready\r\nping\r\n")
    # the board's time as the host reported it: it moved on while the job ran
    later = _send(api, echo, {"text": "x"}).json()["board_time_s"]
    assert later > r.json()["board_time_s"]

    button = api.submit("button", limit=60, realtime="true")
    _follow(api, button, b"B1 idle=1\r\n")
    r = _send(api, button, {"press": "B1", "hold_s": 0.2})
    assert r.status_code == 202 and r.json()["presses"] == [{"button": "B1", "hold_s": 0.2}]
    log = _follow(api, button, re.compile(rb"released at \d+ ms\r\n"))
    pressed = int(re.search(rb"pressed at (\d+) ms", log)[1])  # type: ignore[index]
    released = int(re.search(rb"released at (\d+) ms", log)[1])  # type: ignore[index]
    assert 195 <= released - pressed <= 205  # held 0.2 s of the board's time
    for job in (echo, button):
        api.http.delete(f"/apiv1/jobs/{job}")
    for job in (echo, button):
        assert api.wait(job)["status"] == "CANCELED"
    assert "press B1 for 0.2 s" in api.http.get(f"/apiv1/jobs/{button}/infra_log").text
    # an ended job takes no input, remote or not
    r = api.http.post(f"/apiv1/jobs/{echo}/input", json={"text": "x"})
    assert r.status_code == 409 and "CANCELED" in r.text
