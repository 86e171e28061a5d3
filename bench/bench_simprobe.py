"""The physical backend on the simulated probe: pyOCD connect, flash programming (KiB/s)
through the flash algorithm on the emulated core, first console byte after reset, a
job through the backend, and a job through a real server (submit to FINISHED).

Two ways to the probe, as a lab has them: in this process (the ``hwutsim`` plug-in,
as a USB probe is reached) and over pyOCD's remote-probe protocol (``SimBench``, what
``hwut simboard`` and examples/lab-simulated-probe.toml use). The reference in the
same run: the same firmware as a job on the ``sim`` backend through the same server.
Reported figures for real ST-LINK setups, for comparison: about 1 s to connect,
17-30 KiB/s to program an STM32F3.

Prints figures and asserts nothing. Run: ``python bench/bench_simprobe.py``
(``--firmware fw_rtos``, ``--jobs 3``).
"""
from __future__ import annotations

import argparse
import logging
import socket
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import serial
from argon2 import PasswordHasher
from pyocd.core.helpers import ConnectHelper
from pyocd.flash.file_programmer import FileProgrammer

from hwut.backends.base import CancelToken, RunRequest
from hwut.backends.physical import PhysicalBackend
from hwut.backends.simboard import BenchConfig, SimBench
from hwut.backends.simlab import PROBES, start_board
from hwut.config import BoardConfig, Config, load_config
from hwut.service import build_service, make_server

BUILD = Path(__file__).resolve().parents[1] / "fixtures" / "build"
UID = "hwutsim-bench-0"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def probe_figures(uid: str, console: str, image: Path, elf: Path
                  ) -> tuple[float, float, float]:
    """(connect s, program ``image`` s, first byte of ``elf`` s) straight through pyOCD."""
    started = time.monotonic()
    session = ConnectHelper.session_with_chosen_probe(unique_id=uid, blocking=False,
                                                      target_override="stm32f303retx")
    session.open()
    connect = time.monotonic() - started
    try:
        with serial.Serial(console, timeout=10) as port:
            started = time.monotonic()
            FileProgrammer(session, progress=lambda _d: None, chip_erase="sector",
                           smart_flash=False).program(str(image))
            program = time.monotonic() - started
            FileProgrammer(session, progress=lambda _d: None, chip_erase="sector"
                           ).program(str(elf))
            port.reset_input_buffer()
            started = time.monotonic()
            session.target.reset()
            port.read(1)
            first_byte = time.monotonic() - started
    finally:
        session.close()
    return connect, program, first_byte


def backend_job(uid: str, console: str, elf: Path, limit: float) -> tuple[float, str, int]:
    log = bytearray()
    request = RunRequest(executable=elf, format="elf", board="nucleo-f303re",
                         time_limit_s=limit, uart=log.extend, cancel=CancelToken())
    started = time.monotonic()
    outcome = PhysicalBackend("nucleo-f303re", {"probe": uid, "serial": console}).run(request)
    return time.monotonic() - started, outcome.reason.value, len(log)


def server_jobs(tmp: Path, backend: str, options: dict[str, Any], elf: Path, limit: int,
                jobs: int) -> list[float]:
    """Seconds from submit to FINISHED for ``jobs`` jobs one after the other."""
    base = load_config(environ={})
    boards = (BoardConfig("nucleo-f303re", backend, 1, options, "stm32f303re"),)
    config = Config(dict(base.values), boards, base.microcontrollers).with_values(
        data_dir=str(tmp), scheduler_poll_seconds=0.02, quota_max_waiting_jobs=0)
    service = build_service(config, password_hasher=PasswordHasher(time_cost=1, memory_cost=8,
                                                                   parallelism=1))
    _, _, token = service.store.users.add("bench", admin=True)
    server = make_server(service, "127.0.0.1", 0, 4).start()
    service.start()
    times = []
    try:
        with httpx.Client(base_url=server.url + "/apiv1", timeout=60,
                          headers={"Authorization": f"Bearer {token}"}) as http:
            for _ in range(jobs):
                started = time.monotonic()
                r = http.put("/jobs/submit", content=elf.read_bytes(),
                             params={"board": "nucleo-f303re", "duration_limit_seconds": limit})
                r.raise_for_status()
                job_id = r.json()["id"]
                while http.get(f"/jobs/{job_id}").json()["status"] not in (
                        "FINISHED", "ERROR", "CANCELED"):
                    time.sleep(0.01)
                times.append(time.monotonic() - started)
    finally:
        server.stop()
        service.stop()
    return times


def main() -> None:
    logging.basicConfig(level=logging.WARNING)
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--firmware", default="hello")
    parser.add_argument("--program", default="bootloader",
                        help="the image whose programming is timed (a big one: KiB/s)")
    parser.add_argument("--jobs", type=int, default=3)
    args = parser.parse_args()
    elf = BUILD / f"{args.firmware}.elf"
    image = BUILD / f"{args.program}.elf"
    size = (BUILD / f"{args.program}.bin").stat().st_size
    print(f"programmed: {args.program} ({size} bytes); jobs and first byte: {args.firmware}; "
          f"real ST-LINK on an F3: about 1 s to connect, 17-30 KiB/s to program\n")
    print(f"{'':24}{'connect':>10}{'program':>10}{'KiB/s':>8}{'1st byte':>10}"
          f"{'job (1 s)':>11}")

    board = start_board("nucleo-f303re", realtime=True)
    PROBES.register(UID, board)
    try:
        connect, program, first = probe_figures(UID, board.console_path, image, elf)
        job, reason, _ = backend_job(UID, board.console_path, elf, 1.0)
    finally:
        PROBES.unregister(UID)
        board.close()
    print(f"{'probe in this process':24}{connect:9.3f}s{program:9.3f}s{size / 1024 / program:8.1f}"
          f"{first * 1000:8.1f}ms{job:10.3f}s  ({reason})")

    with tempfile.TemporaryDirectory() as tmp:
        cfg = BenchConfig(port=free_port(), console=Path(tmp) / "console")
        with SimBench(cfg) as bench:
            connect, program, first = probe_figures(bench.probe_uid, bench.console, image,
                                                   elf)
            job, reason, _ = backend_job(bench.probe_uid, bench.console, elf, 1.0)
            print(f"{'remote probe (simboard)':24}{connect:9.3f}s{program:9.3f}s"
                  f"{size / 1024 / program:8.1f}{first * 1000:8.1f}ms{job:10.3f}s  ({reason})")
            physical = server_jobs(Path(tmp) / "physical", "physical",
                                   {"probe": bench.probe_uid, "serial": bench.console}, elf, 1,
                                   args.jobs)
        sim = server_jobs(Path(tmp) / "sim", "sim", {}, elf, 1, args.jobs)
    p, s = statistics.median(physical), statistics.median(sim)
    print(f"\njob through the server, 1 s limit, submit to FINISHED (median of {args.jobs}):")
    print(f"  physical on the simulated bench {p:7.3f} s   (overhead {p - 1:.3f} s)")
    print(f"  sim backend (reference)         {s:7.3f} s   (overhead {s - 1:.3f} s)")
    print(f"  ratio physical / sim            {p / s:7.2f}")


if __name__ == "__main__":
    main()
