"""Scale-out benchmark: 200 short emulated jobs through the broker with one worker host
and with two (the same number of instances on each), as jobs per second, wall time and
their ratio; and the end-to-end latency the broker adds to one job against the embedded
default (the server running it on its own instance), measured in the same run.

It prints figures and asserts nothing. Needs root and Debian's rabbitmq-server (it
starts a RabbitMQ node of its own in a temp dir, as the tests do) and Celery. Worker
hosts are ``hwut worker`` processes on this machine, talking to the broker and the
server over loopback: on one machine two hosts share its cores, so the ratio shows
what the cores allow, not what two machines would.

Run: ``python bench/bench_scaleout.py`` (``--jobs 50`` for a shorter run).
"""
from __future__ import annotations

import argparse
import base64
import dataclasses
import datetime
import json
import logging
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx
from argon2 import PasswordHasher

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "scaleout"))

from cluster import TOKEN, Rabbit, Worker, wait_until, why_not_runnable

from hwut.backends.registry import load_backends
from hwut.config import BoardConfig, Config, load_config
from hwut.jobs import TIME_FORMAT
from hwut.service import build_service, make_server

BUILD = Path(__file__).resolve().parents[1] / "fixtures" / "build"
ENDED = ("FINISHED", "ERROR", "CANCELED")


def serve(data_dir: Path, instances: int, broker: dict | None):
    base = load_config(environ={})
    boards = (BoardConfig("nucleo-f303re", "sim", instances, {}, "stm32f303re"),)
    config = Config(dict(base.values), boards, base.microcontrollers).with_values(
        data_dir=str(data_dir), scheduler_poll_seconds=0.02, quota_max_waiting_jobs=0)
    config = dataclasses.replace(config, broker=broker)
    service = build_service(config, load_backends(), password_hasher=PasswordHasher(
        time_cost=1, memory_cost=8, parallelism=1))
    _, _, token = service.store.users.add("bench", admin=True)
    server = make_server(service, "127.0.0.1", 0, 8).start()
    service.start()
    return service, server, {"Authorization": f"Bearer {token}"}


def submit(http: httpx.Client, image: bytes, limit: int) -> int:
    r = http.put("/jobs/submit", content=image,
                 params={"board": "nucleo-f303re", "duration_limit_seconds": limit})
    r.raise_for_status()
    return int(r.json()["id"])


def burst(http: httpx.Client, image: bytes, count: int, limit: int) -> float:
    """Submit ``count`` jobs at once; seconds until the last one ended."""
    started = time.perf_counter()
    pending = {submit(http, image, limit) for _ in range(count)}
    while pending:
        for job_id in sorted(pending):
            job = http.get(f"/jobs/{job_id}").json()
            if job["status"] not in ENDED:
                break
            if job["status"] != "FINISHED":
                print(f"  job {job_id} {job['status']}: {job.get('detail')}")
            pending.discard(job_id)
        time.sleep(0.02)
    return time.perf_counter() - started


def _seconds(stamp: str) -> float:
    return datetime.datetime.strptime(stamp, TIME_FORMAT).timestamp()


def latency(http: httpx.Client, image: bytes, rounds: int, limit: int
            ) -> tuple[float, float]:
    """Medians, one job at a time on an idle system: seconds from a submit to the job
    seen ended (polled every 5 ms), and from its record's ``created`` to ``started``
    (what a job waits before it runs: for the broker, publish, delivery and attempt)."""
    spans, waits = [], []
    for _ in range(rounds):
        started = time.perf_counter()
        job_id = submit(http, image, limit)
        while (job := http.get(f"/jobs/{job_id}").json())["status"] not in ENDED:
            time.sleep(0.005)
        spans.append(time.perf_counter() - started)
        waits.append(_seconds(job["started"]) - _seconds(job["created"]))
    return statistics.median(spans), statistics.median(waits)


def cancel_latency(http: httpx.Client, rounds: int = 3) -> float:
    """Median seconds from a cancel's answer to the running job seen CANCELED."""
    image = (BUILD / "uart_loop.elf").read_bytes()
    spans = []
    for _ in range(rounds):
        job_id = submit(http, image, 60)
        while http.get(f"/jobs/{job_id}").json()["status"] != "RUNNING":
            time.sleep(0.02)
        time.sleep(0.5)
        http.delete(f"/jobs/{job_id}").raise_for_status()
        started = time.perf_counter()
        while http.get(f"/jobs/{job_id}").json()["status"] not in ENDED:
            time.sleep(0.005)
        spans.append(time.perf_counter() - started)
    return statistics.median(spans)


def measure(tmp: Path, name: str, image: bytes, args: argparse.Namespace,
            rabbit: Rabbit | None, hosts: int) -> tuple[float, float, float, float]:
    """(wall seconds of the burst, median latency, median wait before the start, median
    cancel latency) for the embedded default (``rabbit`` None: the server's own
    ``instances``) or ``hosts`` worker hosts."""
    broker = None if rabbit is None else {
        "url": rabbit.url(), "worker_token": TOKEN, "host_stale_seconds": 5}
    service, server, headers = serve(tmp / f"data-{name}", args.instances, broker)
    workers = []
    try:
        for index in range(hosts):
            assert rabbit is not None
            worker = Worker(tmp, f"{name}-{index}", rabbit.url(), server.url, args.instances)
            worker.start()
            workers.append(worker)
        with httpx.Client(base_url=server.url + "/apiv1", headers=headers, timeout=60) as http:
            if workers:
                wait_until(lambda: len([i for b in http.get(
                    "/targets/boards", params={"extended": "true"}).json()
                    for i in b.get("instances") or [] if i.get("remote")])
                    >= hosts * args.instances, 120, "the worker hosts")
            burst(http, image, 2 * max(1, hosts), args.limit)  # warm: fork servers start
            wall = burst(http, image, args.jobs, args.limit)
            lat, wait = latency(http, image, args.rounds, args.limit)
            cancel = cancel_latency(http)
        return wall, lat, wait, cancel
    finally:
        for worker in workers:
            worker.stop()
        server.stop()
        service.stop()


def _hand_host(rabbit: Rabbit, server_url: str, stop: threading.Event, done: list[int]) -> None:
    """A worker host that runs nothing: takes a task, opens its attempt, reports a
    finished outcome at once, acknowledges. What is left is the server's and the
    broker's own work per job."""
    from kombu import Connection

    http = httpx.Client(base_url=server_url, headers={"Authorization": f"Bearer {TOKEN}"},
                        timeout=30)
    outcome = {"reason": "limit", "exit_code": None, "time_used_s": 1.0, "detail": "",
               "infra_log": "", "cancel_reason": None, "cancel_detail": ""}
    with Connection(rabbit.url()) as conn:
        queue = conn.SimpleQueue("hwut.board.nucleo-f303re")
        queue.consumer.qos(prefetch_count=1)
        while not stop.is_set():
            try:
                message = queue.get(block=True, timeout=0.5)
            except queue.Empty:
                continue
            task = json.loads(message.body)[0][0] if isinstance(message.body, bytes | str) \
                else message.body[0][0]
            r = http.post(f"/apiv1/workers/jobs/{task['job_id']}/attempts",
                          json={"v": 1, "claim": task["claim"], "host": "hand/x#0"})
            if r.status_code == 200:
                attempt = r.json()
                http.post(f"/apiv1/workers/jobs/{task['job_id']}/reports", json={
                    "v": 1, "attempt": attempt["attempt"], "token": attempt["token"],
                    "seq": 0, "uart": base64.b64encode(b"HWUT hello\r\n").decode(),
                    "outcome": outcome})
                done.append(task["job_id"])
            message.ack()
        queue.close()
    http.close()


def server_capacity(tmp: Path, rabbit: Rabbit, image: bytes, jobs: int, hosts: int = 4
                    ) -> float:
    """Jobs per second one API server takes through submit, publish, attempt, report and
    record, with hosts that run nothing (:func:`_hand_host`)."""
    broker = {"url": rabbit.url(), "worker_token": TOKEN, "host_stale_seconds": 3600,
              "queued_per_instance": 4}
    service, server, headers = serve(tmp / "data-capacity", 1, broker)
    stop = threading.Event()
    done: list[int] = []
    threads = [threading.Thread(target=_hand_host, args=(rabbit, server.url, stop, done))
               for _ in range(hosts)]
    try:
        with httpx.Client(base_url=server.url + "/apiv1", headers=headers, timeout=60) as http:
            http.post("/workers/heartbeat", headers={"Authorization": f"Bearer {TOKEN}"},
                      json={"v": 1, "host": "hand", "instances": [
                          {"name": f"x#{i}", "board": "nucleo-f303re", "backend": "none",
                           "state": "idle", "job": None} for i in range(hosts)]})
            for thread in threads:
                thread.start()
            return jobs / burst(http, image, jobs, 1)
    finally:
        stop.set()
        for thread in threads:
            thread.join(10)
        server.stop()
        service.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=200)
    parser.add_argument("--instances", type=int, default=1,
                        help="instances per worker host (and of the embedded server)")
    parser.add_argument("--firmware", default="hello")
    parser.add_argument("--limit", type=int, default=1, help="each job's time limit (s)")
    parser.add_argument("--rounds", type=int, default=15, help="jobs timed one by one")
    parser.add_argument("--capacity-jobs", type=int, default=400,
                        help="jobs for the API server's own capacity (hosts that run nothing)")
    args = parser.parse_args()
    reason = why_not_runnable()
    if reason is not None:
        sys.exit(f"bench_scaleout: {reason}")
    logging.basicConfig(level=logging.WARNING)
    image = (BUILD / f"{args.firmware}.elf").read_bytes()
    with tempfile.TemporaryDirectory(prefix="hwut-bench-scaleout-") as name:
        tmp = Path(name)
        rabbit = Rabbit(tmp / "rabbit")
        rabbit.start()
        try:
            # the embedded default first and last: the shared machine's load drifts
            local = measure(tmp, "embedded", image, args, None, 0)
            one = measure(tmp, "one", image, args, rabbit, 1)
            two = measure(tmp, "two", image, args, rabbit, 2)
            again = measure(tmp, "embedded-again", image, args, None, 0)
            capacity = server_capacity(tmp, rabbit, image, args.capacity_jobs)
        finally:
            rabbit.stop()
    print(f"{args.jobs} jobs of {args.firmware} ({args.limit} s limit), {args.instances} "
          f"instance(s) per host:")
    for label, (wall, lat, wait, cancel) in (("embedded (server's own instances)", local),
                                       ("broker, 1 worker host", one),
                                       ("broker, 2 worker hosts", two),
                                       ("embedded again (load drift)", again)):
        print(f"  {label:<36} {wall:7.1f} s wall  {args.jobs / wall:6.1f} jobs/s  "
              f"one job: end to end {lat * 1000:5.0f} ms, waits {wait * 1000:4.0f} ms to "
              f"start (medians of {args.rounds}); cancel {cancel * 1000:4.0f} ms")
    local = min(local, again)  # the better embedded run: the broker is not flattered
    print(f"  2 hosts / 1 host: {one[0] / two[0]:.2f}x jobs/s")
    print(f"  broker / embedded throughput, 1 host: {local[0] / one[0]:.2f}x")
    print(f"  one API server with hosts that run nothing (submit, publish, attempt, report, "
          f"record): {capacity:.0f} jobs/s")
    print(f"  latency the broker adds to one job: {(one[1] - local[1]) * 1000:+.0f} ms end to "
          f"end ({one[1] / local[1]:.2f}x the embedded default), "
          f"{(one[2] - local[2]) * 1000:+.0f} ms before it starts")


if __name__ == "__main__":
    main()
