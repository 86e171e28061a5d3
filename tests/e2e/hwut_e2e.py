"""Helpers for end-to-end tests: the real ``hwut serve`` as a subprocess on a free loopback port."""
from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parents[2]
FAKES_DIR = REPO / "tests" / "api"
HELLO = REPO / "fixtures" / "build" / "hello.elf"

FAKE_CONFIG = """
[options]
"scheduler.poll_seconds" = 0.05

[[microcontrollers]]
name = "stm32f303re"
manufacturer = "STMicroelectronics"

[[boards]]
name = "nucleo-f303re"
microcontroller = "stm32f303re"
backend = "{backend}"
instances = {instances}
options = {{ mode = "print", scale = 0.05 }}
"""


class Server:
    """One ``hwut serve`` process; restartable on the same data dir."""

    def __init__(self, tmp: Path, config: Path | None = None) -> None:
        self.tmp = tmp
        self.data_dir = tmp / "data"
        self.config = config
        self.env = {**os.environ, "HWUT_CLIENT_CONFIG": str(tmp / "client.toml"),
                    "PYTHONPATH": os.pathsep.join(filter(None, [str(FAKES_DIR),
                                                                os.environ.get("PYTHONPATH")]))}
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


def fake_config(tmp: Path, backend: str = "hwut_fakes:FakeBackend", instances: int = 1) -> Path:
    path = tmp / "server.toml"
    path.write_text(FAKE_CONFIG.format(backend=backend, instances=instances))
    return path


def wait_ended(url: str, job_id: int, headers: dict[str, str], timeout: float = 30) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        job = httpx.get(f"{url}/apiv1/jobs/{job_id}", headers=headers).json()
        if job["status"] in ("FINISHED", "ERROR", "CANCELED") or time.monotonic() > deadline:
            return job
        time.sleep(0.1)
