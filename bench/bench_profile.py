"""Where the CPU time of each speed pattern goes, as shares: ``python bench/bench_profile.py``.

``bench_sim.py patterns`` counts events (engine exits, Python callbacks, skipped
turns); this says what they cost together: ``perf`` samples this process while
one pattern runs one virtual second (construction and loading excluded), and
the samples are grouped by the library they fell in: the Python interpreter
(peripheral models, the run loop, exception entry in Python), the crossing
between C and Python (ctypes and libffi: every callback pays it), the engine
(Unicorn: translated code and its helpers, the per-instruction hook walk), our
own C (``hwut.sim._native``: counting, precharging, the idle and ramp skips,
native exceptions, the read cache), the kernel, and the rest (libc ...).

Needs ``perf`` (Debian: linux-perf) and permission to sample one's own process;
without them it says so and does nothing.
``python bench/bench_profile.py [--modes precharged,counted,block] [pattern ...]``
"""
from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_sim import BUILD, MODES, PATTERNS, Pattern  # noqa: E402

from hwut.backends.image import load  # noqa: E402
from hwut.sim.boards import board  # noqa: E402
from hwut.sim.machine import Machine  # noqa: E402

#: (column, substrings of a shared object's name that put a sample in it), first match wins
GROUPS = (
    ("python", ("libpython", "python3")),
    ("crossing", ("_ctypes", "libffi")),
    ("engine", ("libunicorn",)),
    ("hwut C", ("_native",)),
    ("kernel", ("[kernel",)),
)
COLUMNS = [name for name, _ in GROUPS] + ["other"]


def group_of(dso: str) -> str:
    for name, keys in GROUPS:
        if any(k in dso for k in keys):
            return name
    return "other"


def sampled(p: Pattern, mode: str, data: Path) -> float:
    """Run ``p`` for one virtual second under ``perf record`` of this process; CPU s used."""
    sink = (lambda port, chunk: None) if p.swv else None
    m = Machine(board("nucleo-f303re"), trace_out=sink, **MODES[mode], **p.machine_args)
    m.load([(s.address, s.data) for s in load(BUILD / f"{p.fixture}.elf").segments])
    for button, at, release in p.presses:
        m.press(button, at, release)
    perf = subprocess.Popen(["perf", "record", "-q", "-F", "2000", "-o", str(data),
                             "-p", str(os.getpid())],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(0.3)     # perf attaches asynchronously
    cpu = time.process_time()
    r = m.run(1.0, wall_limit_s=600)
    cpu = (time.process_time() - cpu) / max(r.seconds, 1e-9)
    perf.send_signal(signal.SIGINT)
    perf.wait(timeout=60)
    return cpu


def shares(data: Path) -> dict[str, float]:
    out = subprocess.run(["perf", "report", "-i", str(data), "--sort", "dso", "--stdio",
                          "--percent-limit", "0"], capture_output=True, text=True, check=True).stdout
    total: dict[str, float] = defaultdict(float)
    for line in out.splitlines():
        parts = line.split(None, 1)
        if len(parts) == 2 and parts[0].endswith("%") and not line.startswith("#"):
            total[group_of(parts[1].strip())] += float(parts[0][:-1])
    return total


def usable() -> str | None:
    """Why perf cannot be used here, or None."""
    if shutil.which("perf") is None:
        return "perf is not installed (Debian: linux-perf)"
    with tempfile.TemporaryDirectory() as tmp:
        r = subprocess.run(["perf", "record", "-q", "-o", f"{tmp}/probe.data", "true"],
                           capture_output=True, text=True)
        if r.returncode:
            return "perf may not sample here: " + (r.stderr.strip().splitlines() or ["?"])[-1]
    return None


def main() -> None:
    args = sys.argv[1:]
    modes = list(MODES)
    if args[:1] == ["--modes"]:
        modes, args = args[1].split(","), args[2:]
    why = usable()
    if why is not None:
        print(f"no profile: {why}")
        return
    chosen = [p for p in PATTERNS if not args or p.fixture in args]
    print("where the CPU time goes, per pattern and timing mode: share of perf's samples while "
          "one virtual second runs")
    print(f"{'pattern':18} {'mode':10} {'CPU s/vs':>8} " + " ".join(f"{c:>8}" for c in COLUMNS))
    with tempfile.TemporaryDirectory() as tmp:
        for p in chosen:
            for mode in modes:
                data = Path(tmp) / f"{p.fixture}-{mode}.data"
                cpu = sampled(p, mode, data)
                got = shares(data)
                print(f"{p.fixture:18} {mode:10} {cpu:8.3f} "
                      + " ".join(f"{got.get(c, 0.0):7.1f}%" for c in COLUMNS))


if __name__ == "__main__":
    main()
