"""Two worker hosts in network namespaces of their own (their broker and HTTP traffic
crosses a veth pair), a real RabbitMQ node, a real API server: jobs run on both, a host
killed or cut off mid-job has its job finish on the other (attempt 2), the broker
restarted mid-burst loses no acknowledged job, cancel and live logs reach remote jobs."""
from __future__ import annotations

import base64
import json
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
    cluster, _ = two_hosts()
    job = cluster.api.submit("blink", limit=60)
    seen: list[tuple[str, str]] = []  # (event, job status when it came)
    log = b""
    with connect_sse(cluster.api.http, "GET", f"/apiv1/jobs/{job}/log/stream") as events:
        for sse in events.iter_sse():
            if sse.event == "log":
                log += base64.b64decode(sse.data)
                seen.append(("log", cluster.api.job(job)["status"]))
                if log.count(b"tick") >= 3:
                    break
            elif sse.event == "end":
                break
    assert ("log", "RUNNING") in seen, seen
    assert b"tick 1" in log
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


def test_a_remote_job_carries_its_images_and_pins_and_refuses_live_input(two_hosts):
    """A job of two images (bootloader + application) and one with scripted pins run on a
    worker host as on the server's own boards; input into a running remote job is
    refused with a reason (it reaches this server's own boards only)."""
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
    running = api.submit("uart_loop", limit=60)
    _running_on(api, running)
    refused = api.http.post(f"/apiv1/jobs/{running}/input", json={"text": "hi\r"})
    assert refused.status_code == 400 and "remote worker host" in refused.text, refused.text
    api.http.delete(f"/apiv1/jobs/{running}")
    api.wait(running)
