"""`hwut serve --config examples/lab-simulated-probe.toml`: the server starts the
simulated bench (`hwut simboard`) and serves it as a `physical` board instance; the
fixtures run through real pyOCD and pyserial print what they print on the `sim`
backend (the same text; the time base is the wall clock here, virtual time there).

The example's port and console path are replaced by free ones, so that tests running
at once do not meet; everything else is the committed file."""
from __future__ import annotations

import socket
import threading

import httpx
import pytest

pytest.importorskip("pyocd")
pytest.importorskip("serial")

from hwut_e2e import REPO, Server, admin_token, wait_ended  # noqa: E402

from hwut.backends.base import RunRequest, StopReason  # noqa: E402
from hwut.backends.sim import SimBackend  # noqa: E402

EXAMPLE = REPO / "examples" / "lab-simulated-probe.toml"
BUILD = REPO / "fixtures" / "build"

#: (fixture, time limit on the sim): ones that run to a limit, fault, or exit
#: (semihosting). Not here: fault_div0 and fault_unaligned, whose handlers clear the
#: fault status and go on: the sim saw the fault happen, a real board's debugger cannot
#: (the same text, but stop reason limit instead of fault).
FIXTURES = [("hello.elf", 1), ("hello.hex", 1), ("hello.bin", 1), ("blink.elf", 1),
            ("float.elf", 1), ("uart_loop.elf", 1), ("fault.elf", 1),
            ("hostile_lockup.elf", 1), ("fw_rtos.elf", 2),
            ("semihost_exit.elf", 2), ("semihost_exit0.elf", 2)]
#: The bench is the wall clock's: on a loaded host the emulated board runs behind it.
#: Jobs there get this many times the sim's limit, so that their log usually reaches what
#: the sim printed (the bench never runs ahead of the wall clock).
WALL_FACTOR = 4


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _on_sim(name: str, limit: float) -> tuple[StopReason, int | None, bytes]:
    log = bytearray()
    outcome = SimBackend("nucleo-f303re").run(RunRequest(
        BUILD / name, name.rsplit(".", 1)[1], "nucleo-f303re", limit, log.extend,
        threading.Event()))
    return outcome.reason, outcome.exit_code, bytes(log)


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory):
    tmp = tmp_path_factory.mktemp("lab")
    port, console = _free_port(), tmp / "console"
    text = EXAMPLE.read_text()
    assert "port = 5555" in text and 'serial = "/tmp/hwut-simboard-0"' in text
    config = tmp / "lab.toml"
    config.write_text(text.replace("5555", str(port))
                      .replace("/tmp/hwut-simboard-0", str(console)))
    server = Server(tmp, config).start()
    assert f"probe remote:localhost:{port}, console {console}" in server.banner
    try:
        yield server, {"Authorization": f"Bearer {admin_token(server)}"}
    finally:
        server.stop()
    assert not console.exists(), "the simulated bench outlived the server"


def test_the_instance_is_physical_and_idle(lab):
    server, headers = lab
    boards = httpx.get(f"{server.url}/apiv1/targets/boards", params={"extended": "true"},
                       headers=headers).json()
    (board,) = boards
    assert board["instances"][0]["backend"] == "physical"
    assert board["instances"][0]["state"] == "idle"
    assert board["microcontroller"]["name"] == "stm32f303re"


@pytest.mark.parametrize("name,limit", FIXTURES)
def test_fixtures_print_what_they_print_on_sim(lab, name, limit):
    server, headers = lab
    with (BUILD / name).open("rb") as fh:
        r = httpx.put(f"{server.url}/apiv1/jobs/submit", headers=headers, content=fh.read(),
                      params={"board": "nucleo-f303re",
                              "duration_limit_seconds": limit * WALL_FACTOR})
    assert r.status_code in (200, 201), r.text
    job = wait_ended(server.url, r.json()["id"], headers, timeout=90)
    log = httpx.get(f"{server.url}/apiv1/jobs/{job['id']}/log", headers=headers).content
    reason, exit_code, expected = _on_sim(name, limit)
    assert job["status"] == "FINISHED", job["detail"]
    assert job["stop_reason"] == reason.value, job
    if reason is StopReason.EXIT:
        assert job["exit_code"] == exit_code
        assert log == expected
    else:  # the same text as far as both got (on a loaded host the bench, bound to the
        # wall clock, may get less far than the sim in virtual time): at least a line
        at = next((i for i, (a, b) in enumerate(zip(log, expected)) if a != b),
                  min(len(log), len(expected)))
        assert at == min(len(log), len(expected)), \
            f"differs at byte {at}: {log[at - 40:at + 40]!r} against " \
            f"{expected[at - 40:at + 40]!r} (bench {len(log)}, sim {len(expected)} bytes)"
        assert b"\n" in log[:at], (log, expected)
