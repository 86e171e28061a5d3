"""Verdicts in CI: wall time from ``hwut submit --expect ...`` to its exit, for a job
that passes as soon as its expectation shows and one that fails fast at a fail
pattern, against the same job run to its time limit.

Prints figures and asserts nothing. Run: ``python bench/bench_verdicts.py`` (``--limit
30`` for another limit than 60, ``--repeat 3``). The real service runs on a loopback port with the
sim backend; the ``hwut`` command runs as a separate process, as a CI job would run it.
The reference is measured in the same run: the same firmware (``hello``: a line every
100 ms of virtual time), the same limit, no criteria, ``--wait``.
"""
from __future__ import annotations

import argparse
import logging
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench_jobs import BUILD, serve


def timed(url: str, token: str, args: list[str]) -> tuple[float, int]:
    env = {**os.environ, "HWUT_URL": url, "HWUT_TOKEN": token,
           "HWUT_CLIENT_CONFIG": os.devnull}
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "hwut", "submit", *args], env=env,
                          stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, check=False)
    return time.perf_counter() - started, done.returncode


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--limit", type=int, default=60, help="the jobs' time limit (s)")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    logging.getLogger("hwut").setLevel(logging.WARNING)
    hello = str(BUILD / "hello.elf")
    common = [hello, "--board", "nucleo-f303re", "--limit", str(args.limit)]
    cases = {
        "to the limit (reference)": common + ["--wait"],
        "passes at count=3": common + ["--expect", "count=3"],
        "fails fast at count=3": common + ["--expect", "count=99999", "--fail", "count=3"],
    }
    with tempfile.TemporaryDirectory(prefix="hwut-bench-") as tmp:
        service, server, headers = serve(Path(tmp), 1)
        token = headers["Authorization"].split()[1]
        try:
            results: dict[str, list[float]] = {name: [] for name in cases}
            codes: dict[str, int] = {}
            for _ in range(args.repeat):
                for name, argv in cases.items():
                    seconds, code = timed(server.url, token, argv)
                    results[name].append(seconds)
                    codes[name] = code
        finally:
            server.stop()
            service.stop()
    reference = statistics.median(results["to the limit (reference)"])
    print(f"hello, limit {args.limit} s of virtual time, median of {args.repeat}:")
    for name, times in results.items():
        median = statistics.median(times)
        print(f"  {name:<26} {median:7.2f} s wall  exit {codes[name]:<3} "
              f"{median / reference:6.3f} x the reference")


if __name__ == "__main__":
    main()
