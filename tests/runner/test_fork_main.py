"""The job processes do not import the server's main script again, each of them: the
fork server holds it (see :mod:`hwut.runner.forkmain`). Run for real: a script of its
own as ``__main__`` (as the ``hwut`` console script is for ``hwut serve``) runs three
sim jobs through the fork server and counts where it was imported."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

SCRIPT = '''
import os, sys
with open(os.environ["SEEN"], "a") as fh:  # one line per process that runs this script
    fh.write(f"{__name__} {os.getpid()}\\n")

from hwut.backends.base import CancelToken
from hwut.runner.process import JobProcess, job_context
from hwut.runner.spec import JobSpec


def main():
    context = job_context(["hwut.backends.sim"])
    spec = JobSpec(1, "hwut.backends.sim:SimBackend", "nucleo-f303re", {},
                   sys.argv[1], "elf", 0.01)
    for _ in range(3):
        outcome = JobProcess(spec, context).run(lambda b: None, None, CancelToken())
        assert outcome.reason.value == "limit", outcome


if __name__ == "__main__":
    main()
'''


def test_the_main_script_is_imported_once_by_the_fork_server_not_per_job(tmp_path: Path):
    script, seen = tmp_path / "embedder.py", tmp_path / "imports.txt"
    script.write_text(SCRIPT)
    done = subprocess.run([sys.executable, str(script),
                           str(ROOT / "fixtures" / "build" / "hello.elf")],
                          capture_output=True, text=True, timeout=120, cwd=tmp_path,
                          env={**os.environ, "SEEN": str(seen)})
    assert done.returncode == 0, done.stderr[-3000:]
    names = [line.split()[0] for line in seen.read_text().splitlines()]
    # the script itself, and the fork server once; no job process
    assert names == ["__main__", "__mp_main__"], names


def test_a_main_module_run_with_m_is_imported_once_too(tmp_path: Path):
    """``python -m embedder``: the fork server imports the module once, by its name; a
    path a parent process left in the environment (the bench starts worker hosts) is
    not used."""
    script, seen = tmp_path / "embedder.py", tmp_path / "imports.txt"
    script.write_text(SCRIPT)
    done = subprocess.run([sys.executable, "-m", "embedder",
                           str(ROOT / "fixtures" / "build" / "hello.elf")],
                          capture_output=True, text=True, timeout=120, cwd=tmp_path,
                          env={**os.environ, "SEEN": str(seen), "PYTHONPATH": str(tmp_path),
                               "HWUT_FORKSERVER_MAIN": str(script)})
    assert done.returncode == 0, done.stderr[-3000:]
    names = [line.split()[0] for line in seen.read_text().splitlines()]
    assert names == ["__main__", "__mp_main__"], names
