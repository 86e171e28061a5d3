"""Jobs side by side: throughput of N jobs on N board instances against one job alone,
and the server's memory after many jobs against after one.

Prints figures and asserts nothing. Run: ``python bench/bench_jobs.py`` (``--jobs 8``
for a shorter run). The real service runs on a loopback port with the sim backend;
jobs are submitted over HTTP as a client would and run in their own processes.
The reference is measured in the same run: the same firmware, one job at a time on
one instance.
"""
from __future__ import annotations

import argparse
import logging
import os
import tempfile
import time
from pathlib import Path

import httpx
from argon2 import PasswordHasher

from hwut.backends.registry import load_backends
from hwut.config import BoardConfig, Config, load_config
from hwut.service import build_service, make_server

BUILD = Path(__file__).resolve().parents[1] / "fixtures" / "build"


def rss_mib() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def serve(data_dir: Path, instances: int):
    base = load_config(environ={})
    boards = (BoardConfig("nucleo-f303re", "sim", instances, {}, "stm32f303re"),)
    config = Config(dict(base.values), boards, base.microcontrollers).with_values(
        data_dir=str(data_dir), scheduler_poll_seconds=0.02, quota_max_waiting_jobs=0)
    service = build_service(config, load_backends(),
                            password_hasher=PasswordHasher(time_cost=1, memory_cost=8,
                                                           parallelism=1))
    _, _, token = service.store.users.add("bench", admin=True)
    server = make_server(service, "127.0.0.1", 0, 4).start()
    service.start()
    return service, server, {"Authorization": f"Bearer {token}"}


def run_jobs(http: httpx.Client, firmware: bytes, count: int, limit: int) -> float:
    """Submit ``count`` jobs at once; seconds until the last one ended."""
    started = time.perf_counter()
    ids = []
    for _ in range(count):
        r = http.put("/jobs/submit", content=firmware,
                     params={"board": "nucleo-f303re", "duration_limit_seconds": limit})
        r.raise_for_status()
        ids.append(r.json()["id"])
    pending = set(ids)
    while pending:
        for job_id in list(pending):
            job = http.get(f"/jobs/{job_id}").json()
            if job["status"] in ("FINISHED", "ERROR", "CANCELED"):
                if job["status"] != "FINISHED":
                    print(f"  job {job_id} {job['status']}: {job.get('detail')}")
                pending.discard(job_id)
        time.sleep(0.02)
    return time.perf_counter() - started


def throughput(firmware: str, limit: int, instances: int, jobs: int) -> float:
    image = (BUILD / f"{firmware}.elf").read_bytes()
    with tempfile.TemporaryDirectory(prefix="hwut-bench-") as tmp:
        service, server, headers = serve(Path(tmp), instances)
        try:
            with httpx.Client(base_url=server.url + "/apiv1", headers=headers,
                              timeout=60) as http:
                run_jobs(http, image, 1, limit)  # warm: the fork server starts once
                return jobs / run_jobs(http, image, jobs, limit)
        finally:
            server.stop()
            service.stop()


def memory(jobs: int) -> tuple[float, float, float]:
    image = (BUILD / "hello.elf").read_bytes()
    with tempfile.TemporaryDirectory(prefix="hwut-bench-") as tmp:
        service, server, headers = serve(Path(tmp), 2)
        try:
            with httpx.Client(base_url=server.url + "/apiv1", headers=headers,
                              timeout=60) as http:
                before = rss_mib()
                run_jobs(http, image, 1, 1)
                after_one = rss_mib()
                run_jobs(http, image, jobs - 1, 1)
                return before, after_one, rss_mib()
        finally:
            server.stop()
            service.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=16, help="jobs per throughput run")
    parser.add_argument("--memory-jobs", type=int, default=100)
    args = parser.parse_args()
    logging.getLogger("hwut").setLevel(logging.WARNING)
    cores = os.cpu_count() or 1
    print(f"{cores} cores; throughput in jobs/s, ratio against one instance in the same run")
    for firmware, limit in (("uart_loop", 2), ("hello", 2), ("compute", 30)):
        alone = throughput(firmware, limit, 1, args.jobs)
        print(f"{firmware} ({limit} s limit): 1 instance {alone:6.2f} jobs/s (1x)")
        for n in sorted({2, cores}):
            side = throughput(firmware, limit, n, args.jobs)
            print(f"  {n} instances {side:6.2f} jobs/s = {side / alone:4.2f}x "
                  f"(target >= {0.8 * min(n, cores):.1f}x on {cores} cores)")
    before, one, many = memory(args.memory_jobs)
    print(f"server RSS: {before:.0f} MiB before, {one:.0f} MiB after 1 job, {many:.0f} MiB "
          f"after {args.memory_jobs} jobs ({many / one:.2f}x)")


if __name__ == "__main__":
    main()
