"""`hwut simboard`: an emulated board as a lab bench in a process of its own, which
pyOCD's own command line reaches as the remote probe remote:localhost:PORT (as the
README's lab guide shows), its console at the path given."""
from __future__ import annotations

import os
import select
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("pyocd")
serial = pytest.importorskip("serial")

BUILD = Path(__file__).resolve().parents[2] / "fixtures" / "build"


def test_pyocd_commander_and_flash_reach_the_bench(tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    console = tmp_path / "console"
    bench = subprocess.Popen([sys.executable, "-m", "hwut.cli", "simboard", "--port", str(port),
                              "--console", str(console), "--firmware",
                              str(BUILD / "hello.elf")], stdout=subprocess.PIPE)
    try:
        assert bench.stdout is not None
        assert select.select([bench.stdout], [], [], 60)[0], "hwut simboard did not start"
        line = bench.stdout.readline().decode()
        assert line == f"ready remote:localhost:{port} {console}\n"
        uid = f"remote:localhost:{port}"
        pyocd = [sys.executable, "-m", "pyocd"]
        first_word = (BUILD / "hello.bin").read_bytes()[:4][::-1].hex()
        read = subprocess.run([*pyocd, "commander", "-u", uid, "-t", "stm32f303retx",
                               "-c", "read32 0x08000000"], capture_output=True, text=True,
                              timeout=120)
        assert read.returncode == 0, read.stderr
        assert first_word in read.stdout.replace(" ", "").lower()
        with serial.Serial(str(console), timeout=10) as port_:
            flashed = subprocess.run([*pyocd, "flash", "-u", uid, "-t", "stm32f303retx",
                                      str(BUILD / "blink.elf")], capture_output=True, text=True,
                                     timeout=120)
            assert flashed.returncode == 0, flashed.stderr
            expected = (BUILD.parent / "expected" / "blink.txt").read_bytes()
            got = port_.read_until(expected[:20])
            assert got.endswith(expected[:20]), got
    finally:
        bench.send_signal(signal.SIGTERM)
        bench.wait(timeout=30)
        if bench.stdout:
            bench.stdout.close()
    assert bench.returncode == 0
    assert not os.path.lexists(console)
