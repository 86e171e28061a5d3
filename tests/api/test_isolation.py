"""Each job in its own process, seen through the service: a killed or crashing job is an
ERROR and frees its board, the caps and the CPU budget stop floods and slow firmware
with their own stop reasons, and the same firmware gives the same log under load."""
from __future__ import annotations

import os
import signal
import threading
import time
from pathlib import Path

import httpx
from hwut_testenv import Env, sim_board

from hwut.jobs import JobStatus
from hwut.server import BackgroundServer


def running_process(env: Env, job_id: int, board: str = "nucleo-f303re") -> int:
    env.wait(job_id, lambda s: s is JobStatus.RUNNING)
    instance = next(i for i in env.service.scheduler.instances if i.job_id == job_id)
    deadline = time.monotonic() + 5
    while (instance.process is None or instance.process.pid is None) \
            and time.monotonic() < deadline:
        time.sleep(0.01)
    assert instance.process is not None and instance.process.pid is not None
    return instance.process.pid


def gone(pid: int) -> bool:
    try:
        os.killpg(pid, 0)
    except ProcessLookupError:
        return True
    return False


def test_a_job_process_killed_with_sigkill_is_an_error_and_frees_the_board(env: Env):
    job_id = env.submit(firmware="hello", limit=300).json["id"]
    pid = running_process(env, job_id)
    os.kill(pid, signal.SIGKILL)
    assert env.wait(job_id) is JobStatus.ERROR
    job = env.service.store.jobs.get(job_id)
    assert job.detail == "the job's process ended without an outcome (killed by SIGKILL)"
    assert "/" not in job.detail  # nothing of the host in what the user sees
    nxt = env.submit(firmware="semihost_exit").json["id"]
    assert env.wait(nxt) is JobStatus.FINISHED
    assert env.service.store.jobs.get(nxt).exit_code == 3


def test_cancel_kills_the_job_process(env: Env):
    job_id = env.submit(firmware="hello", limit=300).json["id"]
    pid = running_process(env, job_id)
    started = time.monotonic()
    assert env.client.simulate_delete(f"/apiv1/jobs/{job_id}",
                                      headers=env.headers["alice"]).status_code == 204
    assert env.wait(job_id) is JobStatus.CANCELED
    assert time.monotonic() - started < 1.5
    deadline = time.monotonic() + 2
    while not gone(pid) and time.monotonic() < deadline:
        time.sleep(0.01)
    assert gone(pid)


def test_stopping_the_server_ends_running_jobs_and_their_processes(make_env):
    env = make_env()
    job_id = env.submit(firmware="hello", limit=300).json["id"]
    pid = running_process(env, job_id)
    env.service.scheduler.stop()
    job = env.service.store.jobs.get(job_id)
    assert job.status is JobStatus.ERROR and job.detail == "the server stopped while the job ran"
    assert gone(pid)


def test_a_flood_stops_at_the_log_cap(make_env):
    env = make_env(jobs_max_uart_bytes=5000)
    job_id = env.submit(firmware="uart_loop", limit=30).json["id"]
    assert env.wait(job_id) is JobStatus.FINISHED
    job = env.service.store.jobs.get(job_id)
    assert job.stop_reason == "output_limit"
    assert job.detail.startswith("the UART log reached its limit of 5000 bytes at ")
    assert len(env.log(job_id)) == 5000


def test_firmware_too_slow_to_emulate_says_so(make_env):
    env = make_env(jobs_min_cpu_seconds=1.0, jobs_max_cpu_seconds=1.0)
    job_id = env.submit(firmware="uart_loop", limit=300).json["id"]
    assert env.wait(job_id, timeout=20) is JobStatus.FINISHED
    job = env.service.store.jobs.get(job_id)
    assert job.stop_reason == "cpu_limit"
    assert job.detail.startswith("firmware too slow to emulate: ")
    assert 0 < job.time_used_seconds < 300


def test_the_same_firmware_gives_the_same_log_under_load(make_env, tmp_path: Path):
    env = make_env(boards=sim_board(instances=1))
    alone = env.submit(firmware="uart_loop", limit=2).json["id"]
    assert env.wait(alone, timeout=60) is JobStatus.FINISHED
    expected = env.log(alone)
    assert len(expected) > 20_000
    server = BackgroundServer(env.service.app, "127.0.0.1", 0, 8).start()
    stop = threading.Event()
    token = env.headers["alice"]

    def follow() -> None:
        with httpx.Client(base_url=server.url, headers=token, timeout=10) as http:
            for _ in range(2000):
                if stop.is_set():
                    return
                http.get(f"/apiv1/jobs/{alone}/log")

    def guess() -> None:
        with httpx.Client(base_url=server.url, timeout=10) as http:
            for n in range(2000):
                if stop.is_set():
                    return
                http.get("/apiv1/auth_test", auth=("alice", f"wrong{n}"))

    clients = [threading.Thread(target=follow) for _ in range(30)] + \
              [threading.Thread(target=guess) for _ in range(16)]
    try:
        for thread in clients:
            thread.start()
        loaded = env.submit(firmware="uart_loop", limit=2).json["id"]
        assert env.wait(loaded, timeout=120) is JobStatus.FINISHED
    finally:
        stop.set()
        for thread in clients:
            thread.join(30)
        server.stop()
    assert env.log(loaded) == expected


def test_a_full_disk_ends_the_job_error_and_everything_resumes_when_freed(tiny_disk: Path):
    """The job's log fills the disk: the job ends ERROR "storage full" once its end can be
    recorded, submits meanwhile answer 507, the worker survives, and with room again the
    next job runs, without a restart."""
    from disk_support import fill
    from hwut_testenv import BACKENDS, FAST_HASHER, Env, make_config

    from hwut.service import build_service

    config = make_config(tiny_disk / "data", boards=sim_board(instances=1))
    service = build_service(config, BACKENDS, password_hasher=FAST_HASHER)
    service.start()
    try:
        env = Env(service)
        filler = fill(tiny_disk)
        os.truncate(filler, max(0, filler.stat().st_size - 96 * 1024))  # ~96 KiB left
        job_id = env.submit(firmware="uart_loop", limit=60).json["id"]
        env.wait(job_id, lambda s: s is JobStatus.RUNNING)
        log = service.store.jobs.artifact_path(service.store.jobs.get(job_id).filename_log)
        deadline, last = time.monotonic() + 60, -1
        while os.statvfs(tiny_disk).f_bavail or log.stat().st_size != last:  # the log ate it
            assert time.monotonic() < deadline, "the disk never filled"
            last = log.stat().st_size
            time.sleep(0.5)
        r = env.submit(firmware="hello")
        assert r.status_code == 507 and r.json["title"] == "Insufficient Storage"
        assert service.store.jobs.get(job_id).status is JobStatus.RUNNING  # end not yet kept
        filler.unlink()  # room again
        assert env.wait(job_id, timeout=10) is JobStatus.ERROR
        assert service.store.jobs.get(job_id).detail.startswith("storage full")
        nxt = env.submit(firmware="semihost_exit")
        assert nxt.status_code == 201
        assert env.wait(nxt.json["id"], timeout=10) is JobStatus.FINISHED
        assert all(t.is_alive() for t in service.scheduler._threads)
    finally:
        service.stop()
