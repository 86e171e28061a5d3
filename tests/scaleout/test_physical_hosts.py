"""Lab (physical) board instances on worker hosts: each host in its own network namespace
serves a ``physical`` instance from its worker.toml exactly as a single server would, on
a simulated bench (``[[simboards]]``: an emulated board behind the simulated ST-LINK,
served to real pyOCD, its console on a pty read by real pyserial).

One cluster for the whole story, to keep the suite short: a good bench on ``lab-a``, a
broken one on ``lab-b`` (no probe answers); jobs run through pyOCD with live, complete
logs; presses and pins are refused at submit as the lab refuses them; ``lab-b``'s
infrastructure errors take it offline (kept in the data dir), its job goes back to the
queue and finishes on ``lab-a``; an admin puts ``lab-b`` back."""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from cluster import FIXTURES, Api, wait_until

pytest.importorskip("pyocd")
pytest.importorskip("serial")

BOARD = "nucleo-f303re"


def _lab_boards(base: Path, name: str, probe_ok: bool, **rule: int) -> str:
    """A worker.toml's boards: one physical instance, on a bench of its own or on a
    probe nobody serves (every job is an infrastructure error)."""
    console = base / f"{name}-console"
    bench = (f'[[simboards]]\nport = 5555\nconsole = "{console}"\nuid = "hwutsim-{name}"\n\n'
             if probe_ok else "")
    rules = "".join(f"{key} = {value}\n" for key, value in rule.items())
    return (f'{bench}[[boards]]\nname = "{BOARD}"\nbackend = "physical"\ninstances = 1\n'
            f'{rules}\n[boards.options]\nprobe = "remote:localhost:{5555 if probe_ok else 5556}"'
            f'\nserial = "{console}"\n')


def _ready(api: Api, worker: Any, host: str) -> dict[str, Any]:
    """The host's instance once it is heard from and its Celery consumer listens."""
    found = wait_until(lambda: [i for i in api.remote_instances()
                                if i["host"] == host and i["health"] == "ok"], 90,
                       f"host {host}", 0.3)
    wait_until(lambda: f"hwut@{host} ready." in worker.log(), 60, f"{host}'s consumer", 0.3)
    return dict(found[0])


def _instance(api: Api, name: str) -> dict[str, Any]:
    return next(i for i in api.remote_instances() if i["name"] == name)


def _cli(api: Api, *args: str, token: str | None = None) -> subprocess.CompletedProcess[str]:
    token = token or api.http.headers["Authorization"].split(" ", 1)[1]
    env = {**os.environ, "HWUT_URL": str(api.http.base_url).rstrip("/"), "HWUT_TOKEN": token,
           "HWUT_CLIENT_CONFIG": os.devnull}
    return subprocess.run([sys.executable, "-m", "hwut.cli", *args], env=env,
                          capture_output=True, text=True, timeout=60)


def test_physical_instances_on_worker_hosts(make_cluster, namespaces, tmp_path):
    cluster = make_cluster()
    api = cluster.api
    lab_a = cluster.worker("lab-a", namespaces[0], boards=_lab_boards(tmp_path, "lab-a", True))
    shown = _ready(api, lab_a, "lab-a")
    assert (shown["name"], shown["backend"], shown["state"]) == \
        (f"lab-a/{BOARD}#0", "physical", "idle"), shown
    assert shown["heartbeat_age_seconds"] < 3 and shown["retries"] == 1  # physical's default
    listed = _cli(api, "boards")
    assert listed.returncode == 0, listed.stderr
    assert re.search(rf"lab-a/{BOARD}#0 +physical +idle \[host lab-a, ok, heartbeat [\d.]+ s "
                     r"ago\]", listed.stdout), listed.stdout

    # what the lab cannot do is refused at submit, naming the remote instance (the
    # server's own [[boards]] entry says "sim", which could), and the board says so
    board = api.http.get(f"/apiv1/targets/boards/{BOARD}", params={"extended": "true"}).json()
    assert (board["capabilities"]["presses"], board["capabilities"]["pins"],
            board["capabilities"]["console_input"]) == (False, False, True), board
    for param, value, firmware, why in (
            ("press", "B1@0.5", "button", "cannot run scripted button presses ('press'): "
             f"its instance lab-a/{BOARD}#0 (backend physical) does not support them"),
            ("pin", "PA0@0:1", "pin_levels", "cannot drive pins ('pin'): its instance "
             f"lab-a/{BOARD}#0 (backend physical) does not support scripted pin levels")):
        refused = api.http.put("/apiv1/jobs/submit", params={
            "board": BOARD, "duration_limit_seconds": 1, param: value},
            content=(FIXTURES / f"{firmware}.elf").read_bytes())
        assert refused.status_code == 400, refused.text
        assert refused.json()["description"] == f"board {BOARD} {why}"

    # a job through real pyOCD and pyserial on lab-a: its log arrives while it runs
    job = api.submit("hello", limit=3)

    def live() -> int | None:
        if api.job(job)["status"] != "RUNNING":
            return None
        size = len(api.log(job))
        return size if size > 100 and api.job(job)["status"] == "RUNNING" else None
    seen_running = wait_until(live, 90, "a live log from lab-a")
    done = api.wait(job)
    assert (done["status"], done["stop_reason"], done["hosts"]) == \
        ("FINISHED", "limit", [f"lab-a/{BOARD}#0"]), done
    log = api.log(job)
    assert len(log) > seen_running
    assert log.startswith(b"HWUT hello from NUCLEO-F303RE\r\nSYSCLK=72000000\r\ncount=0\r\n")
    counts = [int(n) for n in re.findall(rb"count=(\d+)\r\n", log)]
    assert counts == list(range(len(counts))) and len(counts) >= 10, log[-200:]
    infra = api.http.get(f"/apiv1/jobs/{job}/infra_log").text
    assert "programmed" in infra and "first console byte" in infra

    # lab-b's bench is broken: its first infrastructure error takes it offline and the
    # job goes back to the queue, for lab-a
    lab_b = cluster.worker("lab-b", namespaces[1],
                           boards=_lab_boards(tmp_path, "lab-b", False, offline_after=1))
    _ready(api, lab_b, "lab-b")
    jobs = [api.submit("hello", limit=1) for _ in range(4)]
    ended = [api.wait(j, timeout=180) for j in jobs]
    assert [e["status"] for e in ended] == ["FINISHED"] * 4, ended
    moved = [e for e in ended if len(e["hosts"]) > 1]
    assert moved, f"no job landed on lab-b first: {ended}"
    first = moved[0]
    assert first["hosts"] == [f"lab-b/{BOARD}#0", f"lab-a/{BOARD}#0"], first
    assert (first["attempts"], first["retries"]) == (2, 1), first
    infra = api.http.get(f"/apiv1/jobs/{first['id']}/infra_log").text
    assert infra.startswith(f"attempt 1 on lab-b/{BOARD}#0 failed: "), infra
    assert all(e["hosts"][-1] == f"lab-a/{BOARD}#0" for e in ended)
    broken = _instance(api, f"lab-b/{BOARD}#0")
    assert broken["state"] == "offline" and broken["summary"].startswith(
        "offline: 1 infrastructure errors in a row, the last: "), broken
    listed = _cli(api, "boards")
    assert f"lab-b/{BOARD}#0" in listed.stdout and "offline: 1 infrastructure" in listed.stdout
    # kept in the data dir as the server's own instances are (a restart keeps it out)
    offline_file = json.loads((tmp_path / "data" / "db" / "offline.json").read_text())
    assert f"lab-b/{BOARD}#0" in offline_file["instances"]

    # an admin puts it back (the CLI names it host/board#n); its host hears it
    _, _, admin = cluster.service.store.users.add("admin", admin=True)
    back = _cli(api, "board", "online", f"lab-b/{BOARD}#0", token=admin)
    assert back.returncode == 0, back.stderr
    assert f"lab-b/{BOARD}#0" in back.stdout
    wait_until(lambda: _instance(api, f"lab-b/{BOARD}#0")["state"] == "idle", 10,
               "lab-b back in service")
    assert "is online again" in lab_b.log() or "online again" in lab_b.log()
