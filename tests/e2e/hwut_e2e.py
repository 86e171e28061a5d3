"""Helpers for end-to-end tests: the real ``hwut serve`` as a subprocess on a free loopback port."""
from __future__ import annotations

import os
import queue
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import IO

import httpx

REPO = Path(__file__).resolve().parents[2]
HELLO = REPO / "fixtures" / "build" / "hello.elf"

#: The shipped board on the sim backend, with a chosen number of instances (the shipped
#: default has 2; one makes queueing deterministic and keeps a spinning job off both cores).
SIM_CONFIG = """
[options]
"scheduler.poll_seconds" = 0.05

[[microcontrollers]]
name = "stm32f303re"
manufacturer = "STMicroelectronics"

[[boards]]
name = "nucleo-f303re"
microcontroller = "stm32f303re"
backend = "sim"
instances = {instances}
options = {{}}
"""


class Server:
    """One ``hwut serve`` process; restartable on the same data dir."""

    def __init__(self, tmp: Path, config: Path | None = None) -> None:
        self.tmp = tmp
        self.data_dir = tmp / "data"
        self.config = config
        self.env = {**os.environ, "HWUT_CLIENT_CONFIG": str(tmp / "client.toml")}
        for key in ("HWUT_URL", "HWUT_TOKEN", "HWUT_USER", "HWUT_PASSWORD"):
            self.env.pop(key, None)
        self.proc: subprocess.Popen[str] | None = None
        self.url = ""
        self.banner = ""

    def start(self) -> Server:
        cmd = [sys.executable, "-m", "hwut.cli", "serve", "--port", "0",
               "--data-dir", str(self.data_dir), "--threads", "4"]
        if self.config is not None:
            cmd += ["--config", str(self.config)]
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                                     text=True, env=self.env, cwd=self.tmp)
        lines = []
        deadline = time.monotonic() + 30
        assert self.proc.stdout is not None
        while time.monotonic() < deadline:
            line = self.proc.stdout.readline()
            if not line:
                raise RuntimeError("hwut serve exited:\n" + "".join(lines))
            lines.append(line)
            found = re.search(r"HWUT serving on (http://\S+)", line)
            if found:
                self.url = found.group(1)
                self.banner = "".join(lines)
                return self
        raise RuntimeError("hwut serve did not start:\n" + "".join(lines))

    def cli(self, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "hwut.cli", *args], check=False,
                              capture_output=True,
                              text=True, env=self.env, cwd=self.tmp, timeout=timeout)

    def cli_bytes(self, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[bytes]:
        """As :meth:`cli`, with stdout and stderr as bytes (UART logs end lines in CR LF)."""
        return subprocess.run([sys.executable, "-m", "hwut.cli", *args], check=False,
                              capture_output=True, env=self.env, cwd=self.tmp, timeout=timeout)

    def cli_background(self, *args: str) -> subprocess.Popen[str]:
        return subprocess.Popen([sys.executable, "-m", "hwut.cli", *args],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                env=self.env, cwd=self.tmp)

    def kill(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.kill()


def admin_token(server: Server) -> str:
    return re.search(r"token:\s+(\S+)", server.banner).group(1)


def sim_config(tmp: Path, instances: int = 1) -> Path:
    path = tmp / "server.toml"
    path.write_text(SIM_CONFIG.format(instances=instances))
    return path


ENDED = ("FINISHED", "ERROR", "CANCELED")


def wait_ended(url: str, job_id: int, headers: dict[str, str], timeout: float = 30,
               statuses: tuple[str, ...] = ENDED) -> dict:
    """Poll the job until its status is one of ``statuses`` (or the timeout passes)."""
    deadline = time.monotonic() + timeout
    while True:
        job = httpx.get(f"{url}/apiv1/jobs/{job_id}", headers=headers).json()
        if job["status"] in statuses or time.monotonic() > deadline:
            return job
        time.sleep(0.05)


def read_until(stream: IO[str], wanted: str, timeout: float = 30) -> list[str]:
    """Lines read from ``stream`` up to the first containing ``wanted`` (or EOF, or the
    timeout); reading happens in a thread so a silent stream cannot block the test."""
    lines: queue.Queue[str | None] = queue.Queue()

    def reader() -> None:
        for line in iter(stream.readline, ""):
            lines.put(line)
            if wanted in line:
                return
        lines.put(None)

    threading.Thread(target=reader, daemon=True).start()
    seen: list[str] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            line = lines.get(timeout=max(0.0, deadline - time.monotonic()))
        except queue.Empty:
            break
        if line is None:
            break
        seen.append(line)
        if wanted in line:
            break
    return seen
