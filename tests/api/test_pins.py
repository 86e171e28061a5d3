"""Scripted pin levels per job (issue 13: ``pin=PA0@0:1``, like ``press=``): through the
real waitress server on the sim, the CLI's --pin and ``hwut board pins``, the job
record and JUnit; refused with the reason for a pin the board lacks, a bad form, and
on backends that cannot drive pins. What each pin reads undriven is board data."""
from __future__ import annotations

import cli_served
import junitparser
import pytest
from cli_served import Served
from fixture_firmware import expected, path
from hwut_testenv import Env

from hwut import inputs
from hwut.backends.base import BoardInfo
from hwut.backends.physical import PhysicalBackend
from hwut.backends.sim import SimBackend
from hwut.client import Client, resolve_settings
from hwut.sim.boards import BOARDS

serve, served = cli_served.serve, cli_served.served  # the fixtures

BOARD = "nucleo-f303re"
PINS = ["PA0@0:1", "PA0@0.2:0", "PA1@0.1:1", "PA1@0.3:z", "PA4@0.2:0", "pc13@0.4:0"]


def test_pins_drive_the_inputs_at_their_virtual_times(served: Served):
    with Client(resolve_settings(url=served.url, token=served.token("alice"),
                                 environ={})) as client:
        job = client.submit(path("pin_levels"), BOARD, 2, pins=PINS)
        assert job["pins"] == [["PA0", 0.0, 1], ["PA0", 0.2, 0], ["PA1", 0.1, 1],
                               ["PA1", 0.3, None], ["PA4", 0.2, 0], ["PC13", 0.4, 0]]
        final = client.wait(job["id"], timeout=60)
        assert client.log(job["id"]) == expected("pin_levels+pins")
        assert final["exit_code"] == 0
        suite = next(iter(junitparser.JUnitXml.fromstring(client.junit(job["id"]))))
    props = {p.name: p.value for p in suite.properties()}
    assert props["pins"] == "PA0@0:1 PA0@0.2:0 PA1@0.1:1 PA1@0.3:z PA4@0.2:0 PC13@0.4:0"


def test_without_pins_the_inputs_read_the_board_defaults(served: Served):
    r = served.run("submit", "-b", BOARD, "-l", "2", "--wait", str(path("pin_levels")))
    assert r.exit_code == 0, r.output
    assert r.stdout_bytes == expected("pin_levels")


def test_cli_pin_option(served: Served):
    args = [a for p in PINS for a in ("--pin", p)]
    r = served.run("submit", "-b", BOARD, "-l", "2", "--wait", *args, str(path("pin_levels")))
    assert r.exit_code == 0, r.output
    assert r.stdout_bytes == expected("pin_levels+pins")


def test_job_file_pins(served: Served):
    job_file = served.write("pins.toml", f'''
board = "{BOARD}"
limit = 2
image = "{path("pin_levels")}"
pins = {PINS!r}
'''.encode())
    r = served.run("submit", "--wait", "-f", job_file)
    assert r.exit_code == 0, r.output
    assert r.stdout_bytes == expected("pin_levels+pins")


def test_board_pins_shows_the_board_data(served: Served):
    r = served.run("board", "pins", BOARD)
    assert r.exit_code == 0, r.output
    lines = r.output.splitlines()
    assert lines[0].split() == ["pin", "reads", "source", "why"]
    assert any(line.split()[:3] == ["PA3", "1", "board"] for line in lines)
    assert any(line.split()[:3] == ["PC13", "1", "button"] for line in lines)
    assert lines[-1].startswith("other  0      floating")
    every = served.run("board", "pins", BOARD, "--all").output.splitlines()
    ports = sorted({p.name for p in BOARDS[BOARD].soc.peripherals if p.name.startswith("GPIO")})
    assert len(every) == 1 + 16 * len(ports)
    assert any(line.split()[:3] == ["PA0", "0", "floating"] for line in every)


def test_targets_record_lists_every_pin_with_its_default(served: Served):
    board = served.env.get(f"/apiv1/targets/boards/{BOARD}", params={"extended": "true"}).json
    assert board["capabilities"]["pins"] is True
    by_pin = {p["pin"]: p for p in board["pins"]}
    spec = BOARDS[BOARD]
    for wiring in spec.pins:
        name = f"P{wiring.port[-1]}{wiring.pin}"
        assert (by_pin[name]["level"], by_pin[name]["source"], by_pin[name]["why"]) == \
            (wiring.level, "board", wiring.why)
    assert by_pin["PC13"]["source"] == "button" and by_pin["PC13"]["level"] == 1
    assert by_pin["PA0"] == {"pin": "PA0", "level": spec.floating_level, "source": "floating",
                             "why": "nothing on the board drives or pulls it"}


@pytest.mark.parametrize("value, fragment", [
    ("PZ0@0:1", "has no pin 'PZ0'"),
    ("PA16@0:1", "has no pin 'PA16'"),
    ("PA0@0:2", "must look like PA0@0:1"),
    ("PA0:1", "must look like"),
    ("PA0@-1:1", "must look like"),
    ("PA0@5:1", "within the job's 1 s"),
    ("B1@0:1", "must look like"),
])
def test_bad_pins_are_refused_with_the_reason(idle_env: Env, value: str, fragment: str):
    r = idle_env.submit(pin=value)
    assert r.status_code == 400, r.text
    assert fragment in r.json["description"]


def test_pins_are_bounded(idle_env: Env):
    r = idle_env.submit(pin=[f"PA0@0.{n:03d}:1" for n in range(inputs.MAX_PINS + 1)])
    assert r.status_code == 400 and f"at most {inputs.MAX_PINS}" in r.json["description"]
    assert idle_env.submit(pin=[f"PA0@0.{n:03d}:1" for n in range(inputs.MAX_PINS)]
                           ).status_code == 201


def test_the_lab_backend_knows_the_pins_but_drives_none():
    """The lab backend drives no pins (there is no driver on the bench wired to them);
    the refusal at submit goes through a real server in tests/backends/test_physical_lab."""
    physical = PhysicalBackend.board_info(BOARD, {})
    sim = SimBackend.board_info(BOARD)
    assert isinstance(physical, BoardInfo) and isinstance(sim, BoardInfo)
    assert physical.pin_defaults == sim.pin_defaults and not physical.drive_pins
    assert sim.drive_pins
