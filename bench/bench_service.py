"""Service benchmark: submit and status latency as the job history grows, and status
GET throughput against a trivial route on the same waitress server.

It prints figures and asserts nothing. Run: ``python bench/bench_service.py``
(``--sizes 1000,10000`` for a shorter run). The history is written straight into the
archive shards (fast), then the real service is started on a loopback port and
measured over HTTP with keep-alive connections. Jobs are not run: the scheduler is
not started, and each benchmark submit is canceled right after (untimed) so the
live table stays as small as on a server that keeps up.
"""
from __future__ import annotations

import argparse
import logging
import random
import statistics
import tempfile
import threading
import time
from pathlib import Path

import falcon
import httpx
from argon2 import PasswordHasher

from hwut.backends.registry import load_backends
from hwut.config import load_config
from hwut.jobs import Job, JobStatus, format_time, utcnow
from hwut.server import BackgroundServer
from hwut.service import build_service
from hwut.store import JobStore

#: Real firmware (the hello fixture), submitted as a user would; the scheduler is not
#: started, so the jobs wait and never run.
FIRMWARE = (Path(__file__).resolve().parents[1] / "fixtures" / "build" / "hello.bin").read_bytes()


class Trivial:
    """The baseline: authenticated like every other route, but does no work."""

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        resp.media = {"ok": True}


def fill(data_dir: Path, count: int) -> None:
    """Write ``count`` ended jobs into the archive without going through HTTP."""
    store = JobStore(data_dir, durable=False)
    created = format_time(utcnow())
    owners = [f"user{i}" for i in range(20)]
    batch: list[Job] = []
    for job_id in range(1, count + 1):
        batch.append(Job(id=job_id, created=created, status=JobStatus.FINISHED,
                         owner=owners[job_id % len(owners)], board="nucleo-f303re",
                         duration_limit_seconds=1, filename_executable="x" * 43,
                         format="elf", filename_log="y" * 43, started=created,
                         finished=created, stop_reason="limit", time_used_seconds=1.0))
        if len(batch) == 5000:
            store.insert_ended(batch)
            batch = []
    store.insert_ended(batch)
    store.close()


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def ms(values: list[float]) -> str:
    median, p99 = statistics.median(values) * 1e3, percentile(values, 0.99) * 1e3
    return f"median {median:7.2f} ms  p99 {p99:7.2f} ms"


def throughput(url: str, headers: dict[str, str], paths: list[str], clients: int,
               requests: int) -> float:
    """Requests per second for ``requests`` GETs spread over ``clients`` connections."""
    per_client = requests // clients
    errors: list[int] = []

    def worker(seed: int) -> None:
        rng = random.Random(seed)
        with httpx.Client(base_url=url, headers=headers) as http:
            for _ in range(per_client):
                if http.get(rng.choice(paths)).status_code != 200:
                    errors.append(1)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(clients)]
    started = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - started
    if errors:
        print(f"  ({len(errors)} requests failed)")
    return per_client * clients / elapsed


def run_size(count: int, samples: int, requests: int, clients: int) -> None:
    with tempfile.TemporaryDirectory(prefix="hwut-bench-") as tmp:
        data_dir = Path(tmp)
        t0 = time.perf_counter()
        fill(data_dir, count)
        filled = time.perf_counter() - t0
        config = load_config(environ={}).with_values(data_dir=str(data_dir))
        t0 = time.perf_counter()
        # the real backends, but the scheduler is never started: jobs wait, never run
        service = build_service(config, backends=load_backends(),
                                password_hasher=PasswordHasher(time_cost=1, memory_cost=8,
                                                               parallelism=1))
        opened = time.perf_counter() - t0
        _, _, token = service.store.users.add("bench", admin=True)
        service.app.add_route("/bench/trivial", Trivial())
        server = BackgroundServer(service.app, "127.0.0.1", 0, threads=4).start()
        headers = {"Authorization": f"Bearer {token}"}
        submit_times, status_recent, status_old = [], [], []
        rng = random.Random(count)
        try:
            with httpx.Client(base_url=server.url, headers=headers) as http:
                for _ in range(samples):
                    t0 = time.perf_counter()
                    r = http.put("/apiv1/jobs/submit", content=FIRMWARE,
                                 params={"board": "nucleo-f303re",
                                         "duration_limit_seconds": 1})
                    submit_times.append(time.perf_counter() - t0)
                    job_id = r.json()["id"]
                    t0 = time.perf_counter()
                    http.get(f"/apiv1/jobs/{job_id}")
                    status_recent.append(time.perf_counter() - t0)
                    service.scheduler.cancel(job_id, by="bench")  # keep the live table small
                    old = rng.randint(1, count)
                    t0 = time.perf_counter()
                    http.get(f"/apiv1/jobs/{old}")
                    status_old.append(time.perf_counter() - t0)
            recent_paths = [f"/apiv1/jobs/{count + i}" for i in range(1, samples + 1)]
            trivial = throughput(server.url, headers, ["/bench/trivial"], clients, requests)
            status = throughput(server.url, headers, recent_paths, clients, requests)
        finally:
            server.stop()
            service.stop()
        print(f"{count:>7} jobs in the store (fill {filled:5.1f} s, open {opened:5.2f} s)")
        print(f"  submit                 {ms(submit_times)}")
        print(f"  status, recent job     {ms(status_recent)}")
        print(f"  status, random old job {ms(status_old)}")
        print(f"  GET throughput: status {status:7.0f} req/s, trivial route {trivial:7.0f} "
              f"req/s, ratio {status / trivial:.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1000,10000,100000")
    parser.add_argument("--samples", type=int, default=200, help="submits/status per size")
    parser.add_argument("--requests", type=int, default=2000, help="GETs per throughput run")
    parser.add_argument("--clients", type=int, default=4)
    args = parser.parse_args()
    logging.getLogger("hwut").setLevel(logging.CRITICAL)  # no board instances on purpose
    logging.getLogger("waitress.queue").setLevel(logging.ERROR)  # backlog notes under load
    for size in (int(s) for s in args.sizes.split(",")):
        run_size(size, args.samples, args.requests, args.clients)


if __name__ == "__main__":
    main()
