"""SIGKILL the server during a burst of submits: every job acknowledged with 201 survives,
and jobs that were QUEUED or RUNNING come back as ERROR "server restarted"."""
from __future__ import annotations

import threading
import time

import httpx
from hwut_e2e import Server, admin_token, fake_config
from hwut_fakes import tiny_bin


def test_sigkill_during_submit_burst(tmp_path, request):
    config = fake_config(tmp_path, backend="hwut_fakes:SlowBackend", instances=1)
    server = Server(tmp_path, config).start()
    request.addfinalizer(server.stop)  # whichever process is current, also on failure
    headers = {"Authorization": f"Bearer {admin_token(server)}"}
    query = "/apiv1/jobs/submit?board=nucleo-f303re&duration_limit_seconds=5"
    url = server.url + query
    acknowledged: list[int] = []
    stop = threading.Event()

    def burst() -> None:
        with httpx.Client(headers=headers, timeout=5) as client:
            while not stop.is_set():
                try:
                    r = client.put(url, content=tiny_bin())
                except httpx.HTTPError:
                    return  # the server is gone
                if r.status_code == 201:
                    acknowledged.append(r.json()["id"])

    threads = [threading.Thread(target=burst) for _ in range(3)]
    for t in threads:
        t.start()
    deadline = time.monotonic() + 10
    running = None
    while time.monotonic() < deadline and running is None:
        jobs = httpx.get(f"{server.url}/apiv1/jobs", params={"status": "RUNNING"},
                         headers=headers).json()
        running = jobs[0]["id"] if jobs else None
        time.sleep(0.05)
    assert running is not None
    time.sleep(0.3)  # more submits in flight
    server.kill()
    stop.set()
    for t in threads:
        t.join(10)
    assert len(acknowledged) > 5

    server.start()  # same data dir, a new port
    url = server.url + query
    http = httpx.Client(headers=headers, timeout=10)
    try:
        for job_id in acknowledged:
            r = http.get(f"{server.url}/apiv1/jobs/{job_id}", headers=headers)
            assert r.status_code == 200, job_id
        job = http.get(f"{server.url}/apiv1/jobs/{running}").json()
        assert job["status"] == "ERROR"
        assert job["detail"] == "server restarted"
        assert job["filename_log"]
        log = http.get(f"{server.url}/apiv1/jobs/{running}/log")
        assert log.status_code == 200 and log.text.startswith("HWUT fake start")
        statuses = {http.get(f"{server.url}/apiv1/jobs/{i}").json()["status"]
                    for i in acknowledged}
        assert "WAITING" in statuses or "RUNNING" in statuses  # the rest run again
        newest = max(acknowledged)
        r = http.put(url, content=tiny_bin())
        assert r.json()["id"] > newest
    finally:
        http.close()
        server.stop()
