"""SIGKILL the server during a burst of submits: every job acknowledged with 201 survives,
the job that was RUNNING comes back as ERROR "server restarted" with its log so far, the
WAITING ones run after the restart, and no file is left in the data dir that no job names."""
from __future__ import annotations

import threading
import time
from pathlib import Path

import httpx
from fixture_firmware import HELLO_BANNER, HELLO_COUNTS, SEMIHOST, SPIN_LIMIT, image
from hwut_e2e import Server, admin_token, sim_config, wait_ended

SUBMIT = "/apiv1/jobs/submit?board=nucleo-f303re&duration_limit_seconds={limit}"
FILE_FIELDS = ("filename_executable", "filename_log", "filename_other", "filename_infra",
               "filename_trace", "filename_log_times")


def test_sigkill_during_submit_burst(tmp_path, request):
    server = Server(tmp_path, sim_config(tmp_path, instances=1)).start()
    request.addfinalizer(server.stop)  # whichever process is current, also on failure
    headers = {"Authorization": f"Bearer {admin_token(server)}"}
    http = httpx.Client(headers=headers, timeout=10)
    request.addfinalizer(http.close)

    # hello with a long limit keeps the only instance busy, printing, until the kill
    r = http.put(server.url + SUBMIT.format(limit=SPIN_LIMIT), content=image("hello"))
    running = r.json()["id"]
    assert wait_ended(server.url, running, headers, statuses=("RUNNING",))["status"] == "RUNNING"
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        before_kill = http.get(f"{server.url}/apiv1/jobs/{running}/log").content
        if before_kill.startswith(HELLO_BANNER + b"count=0\r\n"):
            break
        time.sleep(0.02)
    assert before_kill.startswith(HELLO_BANNER + b"count=0\r\n")

    url = server.url + SUBMIT.format(limit=5)
    acknowledged: list[int] = []
    stop = threading.Event()

    def burst(fmt: str) -> None:
        with httpx.Client(headers=headers, timeout=5) as client:
            while not stop.is_set():
                try:
                    r = client.put(url, content=image("semihost_exit", fmt))
                except httpx.HTTPError:
                    return  # the server is gone
                if r.status_code == 201:
                    acknowledged.append(r.json()["id"])

    threads = [threading.Thread(target=burst, args=(fmt,)) for fmt in ("elf", "hex", "bin")]
    for t in threads:
        t.start()
    deadline = time.monotonic() + 20
    while len(acknowledged) < 20 and time.monotonic() < deadline:
        time.sleep(0.01)
    server.kill()  # with submits still in flight
    stop.set()
    for t in threads:
        t.join(10)
    assert len(acknowledged) >= 20

    server.start()  # same data dir, a new port
    base = server.url
    job = http.get(f"{base}/apiv1/jobs/{running}").json()
    assert job["status"] == "ERROR" and job["detail"] == "server restarted"
    log = http.get(f"{base}/apiv1/jobs/{running}/log")
    assert log.status_code == 200
    assert log.content.startswith(before_kill)  # kept, and it grew until the kill
    assert HELLO_COUNTS.startswith(log.content.removeprefix(HELLO_BANNER))

    # they were all WAITING behind hello: after the restart each one runs, to its exit
    listed = http.get(f"{base}/apiv1/jobs", params={"limit": 1000}).json()
    ids = sorted(j["id"] for j in listed)  # acknowledged, or recorded as the kill came
    assert set(acknowledged) <= set(ids) and ids == list(range(1, len(ids) + 1))
    jobs = {job_id: wait_ended(base, job_id, headers) for job_id in ids}
    for job_id, job in jobs.items():
        if job_id == running:
            continue
        assert (job["status"], job["stop_reason"], job["exit_code"]) == ("FINISHED", "exit", 3)
        assert http.get(f"{base}/apiv1/jobs/{job_id}/log").content == SEMIHOST

    # an upload the kill cut off before its job was recorded is gone: every file is named
    named = {job[f] for job in jobs.values() for f in FILE_FIELDS if job[f]}
    assert {p.name for p in (server.data_dir / "artifacts").iterdir()} == named

    # a new id is above every id given out; the kill may have come between the id mark
    # and the job's record, which uses up one id that was never acknowledged
    r = http.put(base + SUBMIT.format(limit=1), content=image("semihost_exit"))
    assert r.status_code == 201 and r.json()["id"] in (len(ids) + 1, len(ids) + 2)


def _descendants(pid: int) -> set[int]:
    """Every process below ``pid`` (from /proc: Linux)."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_bytes().rsplit(b")", 1)[1].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    found, todo = set(), [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.add(child)
            todo.append(child)
    return found


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_bytes().rsplit(b")", 1)[1].split()[0]
    except OSError:
        return False
    return state != b"Z"


def test_a_sigkilled_server_leaves_no_job_process_behind(tmp_path, request):
    server = Server(tmp_path, sim_config(tmp_path, instances=1)).start()
    request.addfinalizer(server.stop)
    headers = {"Authorization": f"Bearer {admin_token(server)}"}
    r = httpx.put(server.url + SUBMIT.format(limit=SPIN_LIMIT), content=image("hello"),
                  headers=headers)
    job = r.json()["id"]
    assert wait_ended(server.url, job, headers, statuses=("RUNNING",))["status"] == "RUNNING"
    assert server.proc is not None
    below = _descendants(server.proc.pid)
    assert below, "the job runs in processes of its own"
    server.kill()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and any(_alive(p) for p in below):
        time.sleep(0.1)
    assert not [p for p in below if _alive(p)]
