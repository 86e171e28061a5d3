"""An instance taken offline stays offline when `hwut serve` restarts, until an admin
puts it back: taken out by the failures-in-a-row rule (a `physical` board whose probe
is not there) and by an admin (`hwut board offline`), the server killed with SIGKILL
or stopped, restarted on the same data dir; the reason and the time are kept."""
from __future__ import annotations

import json
import socket
import subprocess
import sys

import httpx
import pytest
from hwut_e2e import REPO, Server, admin_token, wait_ended

pytest.importorskip("pyocd")
pytest.importorskip("serial")

HELLO = REPO / "fixtures" / "build" / "hello.elf"

#: A lab of one physical board whose probe cannot be reached (a remote probe on a port
#: nobody serves), its console pyserial's loopback: every job is an infrastructure error.
CONFIG = """
[options]
"scheduler.poll_seconds" = 0.05

[[boards]]
name = "nucleo-f303re"
backend = "physical"
instances = 1
retries = 0
offline_after = 2

[boards.options]
probe = "remote:localhost:{port}"
serial = "loop://"
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _instance(server: Server, headers: dict[str, str]) -> dict:
    boards = httpx.get(f"{server.url}/apiv1/targets/boards", params={"extended": "true"},
                       headers=headers).json()
    return next(b for b in boards if b["name"] == "nucleo-f303re")["instances"][0]


def test_offline_survives_sigkill_and_restart_until_put_back(tmp_path, request):
    config = tmp_path / "lab.toml"
    config.write_text(CONFIG.format(port=_free_port()))
    server = Server(tmp_path, config).start()
    request.addfinalizer(server.stop)
    headers = {"Authorization": f"Bearer {admin_token(server)}"}
    server.env.update(HWUT_TOKEN=headers["Authorization"].split()[1])

    def submit() -> dict:
        r = httpx.put(f"{server.url}/apiv1/jobs/submit", headers=headers,
                      params={"board": "nucleo-f303re", "duration_limit_seconds": 1},
                      content=HELLO.read_bytes())
        assert r.status_code == 201, r.text
        return wait_ended(server.url, r.json()["id"], headers, timeout=60)

    # two infrastructure errors in a row take the instance offline
    assert submit()["status"] == "ERROR"
    second = submit()
    assert "is now offline after 2 infrastructure errors" in second["detail"], second
    before = _instance(server, headers)
    assert before["state"] == "offline" and before["offline_since"], before
    assert before["offline"].startswith("2 infrastructure errors in a row, the last: probe")
    kept = json.loads((server.data_dir / "db" / "offline.json").read_text())
    assert kept["instances"]["nucleo-f303re#0"]["reason"] == before["offline"]

    server.kill()  # SIGKILL: no shutdown code runs
    server.start()
    after = _instance(server, headers)
    assert (after["state"], after["offline"], after["offline_since"]) == \
        ("offline", before["offline"], before["offline_since"]), after
    refused = httpx.put(f"{server.url}/apiv1/jobs/submit", headers=headers,
                        params={"board": "nucleo-f303re", "duration_limit_seconds": 1},
                        content=HELLO.read_bytes())
    assert refused.status_code == 503 and "offline" in refused.text

    # the admin puts it back; a restart keeps it online
    server.env["HWUT_URL"] = server.url
    back = server.cli("board", "online", "nucleo-f303re#0")
    assert back.returncode == 0, back.stderr
    assert _instance(server, headers)["state"] == "idle"
    server.stop()
    server.start()
    assert _instance(server, headers)["state"] == "idle"
    assert json.loads((server.data_dir / "db" / "offline.json").read_text()) == \
        {"instances": {}}

    # taken out by an admin with the CLI: kept across a stop and a start, with who did it
    server.env["HWUT_URL"] = server.url
    out = server.cli("board", "offline", "nucleo-f303re")
    assert out.returncode == 0, out.stderr
    server.stop()
    server.start()
    again = _instance(server, headers)
    assert again["state"] == "offline" and again["offline"] == "taken offline by admin", again
    server.env["HWUT_URL"] = server.url
    listed = server.cli("boards")
    assert "offline: taken offline by admin" in listed.stdout, listed.stdout


def test_a_damaged_offline_file_stops_the_server(tmp_path):
    """Guessing "all online" would send jobs to a board known to be broken: the server
    refuses to start and names the file, as for every store file."""
    config = tmp_path / "lab.toml"
    config.write_text(CONFIG.format(port=_free_port()))
    server = Server(tmp_path, config).start()
    server.stop()
    path = server.data_dir / "db" / "offline.json"
    path.write_text('{"instances": {"nucleo-f303re#0": {"reason": "x"')
    refused = subprocess.run(
        [sys.executable, "-m", "hwut.cli", "serve", "--port", "0", "--data-dir",
         str(server.data_dir), "--config", str(config)],
        capture_output=True, text=True, env=server.env, cwd=tmp_path, timeout=60)
    assert refused.returncode != 0
    assert f"damaged store file {path}" in refused.stderr + refused.stdout, refused
