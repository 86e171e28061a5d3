"""A job of several images on every backend (issue 13): the sim loads them all, Renode
(our stand-in, which runs what the script loads on our simulator) gets one load line
each, and a lab bench (the simulated bench, real pyOCD) programs each file in turn;
the bootloader then finds its application's checksum right on all three."""
from __future__ import annotations

import sys
from pathlib import Path

import httpx
import pytest

from hwut.backends.base import CancelToken, ImageFile, RunRequest, StopReason
from hwut.backends.renode import RenodeBackend
from hwut.backends.sim import SimBackend

ROOT = Path(__file__).resolve().parents[2]
BUILD = ROOT / "fixtures" / "build"
EXPECTED = ROOT / "fixtures" / "expected"
STANDIN = Path(__file__).resolve().parent / "renode_standin" / "renode"
BOARD = "nucleo-f303re"
APP_BASE = 0x0800_A000
PAIR = (ImageFile(BUILD / "boot_split.elf", "elf", None, "boot_split.elf"),
        ImageFile(BUILD / "boot_app.bin", "bin", APP_BASE, "boot_app.bin"))


def request(out: bytearray, images: tuple[ImageFile, ...] = PAIR, **kw) -> RunRequest:
    return RunRequest(images[0].path, images[0].format, BOARD, 2, out.extend, CancelToken(),
                      images=images, **kw)


def test_sim_loads_every_image():
    out = bytearray()
    outcome = SimBackend(BOARD).run(request(out))
    assert outcome.reason is StopReason.EXIT and outcome.exit_code == 0, outcome.detail
    assert bytes(out) == (EXPECTED / "boot_split+boot_app.txt").read_bytes()


def test_sim_refuses_overlapping_images_it_is_handed():
    """The service refuses them at submit; a backend handed them anyway says why."""
    out = bytearray()
    clash = (PAIR[0], ImageFile(BUILD / "hello.elf", "elf", None, "hello.elf"))
    outcome = SimBackend(BOARD).run(request(out, clash))
    assert outcome.reason is StopReason.INFRASTRUCTURE
    assert "'boot_split.elf' and 'hello.elf' overlap" in outcome.detail


def test_sim_drives_scripted_pins():
    out = bytearray()
    image = (ImageFile(BUILD / "pin_levels.elf", "elf"),)
    pins = (("PA0", 0.0, 1), ("PA0", 0.2, 0), ("PA1", 0.1, 1), ("PA1", 0.3, None),
            ("PA4", 0.2, 0), ("PC13", 0.4, 0))
    outcome = SimBackend(BOARD).run(request(out, image, pins=pins))
    assert outcome.reason is StopReason.EXIT, outcome.detail
    assert bytes(out) == (EXPECTED / "pin_levels+pins.txt").read_bytes()


def test_renode_loads_each_image(tmp_path, monkeypatch):
    monkeypatch.setenv("RENODE_STANDIN_PYTHON", sys.executable)
    monkeypatch.setenv("RENODE_STANDIN_DELAY_S", "0.002")
    backend = RenodeBackend(BOARD, {"renode_path": str(STANDIN), "work_dir": str(tmp_path)})
    out = bytearray()
    try:
        outcome = backend.run(request(out))
    finally:
        backend.close()
    assert outcome.reason is StopReason.EXIT and outcome.exit_code == 0, outcome.detail
    assert bytes(out) == (EXPECTED / "boot_split+boot_app.txt").read_bytes()
    script = outcome.infra_log
    first = script.index(f"sysbus LoadELF @{BUILD / 'boot_split.elf'}")
    second = script.index(f"sysbus LoadBinary @{BUILD / 'boot_app.bin'} 0x0800A000")
    assert first < second < script.index("sysbus.cpu VectorTableOffset 0x0")


def test_renode_drives_scripted_pins(tmp_path, monkeypatch):
    """``OnGPIO`` on the port at each level's virtual time; a release sets what the board
    leaves on the pin (PA1 floats: 0; Renode's port has no pulls to fall back to)."""
    monkeypatch.setenv("RENODE_STANDIN_PYTHON", sys.executable)
    monkeypatch.setenv("RENODE_STANDIN_DELAY_S", "0.002")
    backend = RenodeBackend(BOARD, {"renode_path": str(STANDIN), "work_dir": str(tmp_path)})
    pins = (("PA0", 0.0, 1), ("PA0", 0.2, 0), ("PA1", 0.1, 1), ("PA1", 0.3, None),
            ("PA4", 0.2, 0), ("PC13", 0.4, 0))
    out = bytearray()
    try:
        outcome = backend.run(request(out, (ImageFile(BUILD / "pin_levels.elf", "elf"),),
                                      pins=pins))
    finally:
        backend.close()
    assert outcome.reason is StopReason.EXIT, outcome.detail
    assert bytes(out) == (EXPECTED / "pin_levels+pins.txt").read_bytes()
    assert ("hwut_pins = [(0, 'sysbus.gpioPortA', 0, True), (100000000, 'sysbus.gpioPortA', "
            "1, True), (200000000, 'sysbus.gpioPortA', 0, False), (200000000, "
            "'sysbus.gpioPortA', 4, False), (300000000, 'sysbus.gpioPortA', 1, False), "
            "(400000000, 'sysbus.gpioPortC', 13, False)]") in outcome.infra_log
    assert "hwut_machine[hwut_port].OnGPIO(hwut_pin, hwut_level)" in outcome.infra_log


def test_a_lab_bench_programs_each_image(tmp_path):
    pytest.importorskip("pyocd")
    pytest.importorskip("serial")
    from hwut.backends.simboard import BenchConfig, SimBench
    from tests.backends.test_physical_lab import Lab, free_port
    with SimBench(BenchConfig(port=free_port(), console=tmp_path / "console",
                              uid="hwutsim-multi-image")) as bench:
        lab = Lab(tmp_path, {"probe": bench.probe_uid, "serial": bench.console})
        try:
            files = [("image", ("boot_split.elf", (BUILD / "boot_split.elf").read_bytes())),
                     ("image@0x0800A000", ("boot_app.bin", (BUILD / "boot_app.bin").read_bytes()))]
            r = httpx.put(f"{lab.url}/jobs/submit", headers=lab.headers, files=files,
                          params={"board": BOARD, "duration_limit_seconds": 2}, timeout=30)
            assert r.status_code == 201, r.text
            job = lab.wait(int(r.json()["id"]))
            log = httpx.get(f"{lab.url}/jobs/{job['id']}/log", headers=lab.headers).content
            infra = httpx.get(f"{lab.url}/jobs/{job['id']}/infra_log", headers=lab.headers).text
        finally:
            lab.close()
    assert (job["status"], job["stop_reason"], job["exit_code"]) == ("FINISHED", "exit", 0), \
        (job, infra)
    # the exit ends the console capture: the last line's end may still be on the wire
    assert log.rstrip(b"\r\n") == (EXPECTED / "boot_split+boot_app.txt").read_bytes().rstrip()
    assert infra.index("programmed boot_split.elf (elf)") < infra.index(
        "programmed boot_app.bin (bin)")
