"""A simulated lab bench: an emulated board behind our simulated probe, served to other
processes over pyOCD's remote-probe protocol, its console on a pseudo-terminal.

This is what stands in for a NUCLEO-F303RE on a USB cable. The ``physical`` backend
runs each job in a process of its own, so the board cannot live in the job's process
(it would start blank, and go, with every job); it lives here instead, as long as
the bench is "plugged in":

- ``SimBench`` (``open``/``close``) in any process: tests use it in theirs, so that
  they can break the bench on purpose (``PROBES.unregister``, ``board.dp.responding``);
- ``hwut simboard`` (``python -m hwut.backends.simboard``) runs one in a process of its
  own until SIGINT/SIGTERM, printing ``ready PROBE_UID CONSOLE`` once jobs may use it;
- ``hwut serve`` starts one such process per ``[[simboards]]`` table of its config and
  stops them when it stops (``examples/lab-simulated-probe.toml``); it only runs the
  command, it does not import this module (the service sees backends through the
  backend contract only).

A physical board instance uses the bench with ``probe = "remote:localhost:PORT"`` and
``serial = CONSOLE`` (a symlink to the pseudo-terminal, stable across restarts).

pyOCD is the ``physical`` extra: imported inside ``open``, guarded.
"""
from __future__ import annotations

import logging
import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hwut.sim.debug.board import SimulatedBoard

from .extras import ExtraMissing
from .simlab import PROBES, SimulatedProbes, start_board

LOG = logging.getLogger(__name__)


@dataclass(frozen=True)
class BenchConfig:
    """One simulated bench (a ``[[simboards]]`` table; ``hwut simboard``'s options)."""

    #: The TCP port pyOCD's remote probe listens on (localhost only); 0: any free one.
    port: int
    #: Where the console's pseudo-terminal appears (a symlink, as /dev/serial/by-id).
    console: Path
    board: str = "nucleo-f303re"
    uid: str = "hwutsim-bench-0"
    #: In flash at power-on (any format HWUT loads); None: erased flash.
    firmware: Path | None = None
    #: Never run ahead of the wall clock (as a real board); False: as fast as it goes.
    realtime: bool = True

    @classmethod
    def from_mapping(cls, entry: Mapping[str, Any], base: Path) -> BenchConfig:
        known = {"port", "console", "board", "uid", "firmware", "realtime"}
        unknown = set(entry) - known
        if unknown:
            raise ValueError(f"unknown keys {sorted(unknown)}; known: {sorted(known)}")
        port, console = entry.get("port"), entry.get("console")
        if not isinstance(port, int) or isinstance(port, bool) or not 0 < port < 65536:
            raise ValueError(f"port must be a TCP port number, not {port!r}")
        if not isinstance(console, str) or not console:
            raise ValueError("console must be a path (where the console's terminal appears)")
        firmware = entry.get("firmware")
        return cls(port=port, console=Path(console), board=str(entry.get("board", cls.board)),
                   uid=str(entry.get("uid", f"hwutsim-bench-{port}")),
                   firmware=(base / str(firmware)).resolve() if firmware else None,
                   realtime=bool(entry.get("realtime", True)))


class SimBench:
    """An emulated board, its simulated probe served on a TCP port, its console on a pty."""

    def __init__(self, config: BenchConfig, registry: SimulatedProbes = PROBES) -> None:
        self.config = config
        self._registry = registry
        self.board: SimulatedBoard | None = None
        self._server: Any = None

    @property
    def probe_uid(self) -> str:
        """What a physical board instance names as its ``probe``."""
        port = self._server.port if self._server is not None else self.config.port
        return f"remote:localhost:{port}"

    @property
    def console(self) -> str:
        """What a physical board instance names as its ``serial``."""
        return str(self.config.console)

    def open(self) -> SimBench:
        try:
            from pyocd.core.helpers import ConnectHelper
            from pyocd.core.session import Session
            from pyocd.probe.tcp_probe_server import DebugProbeServer
        except ImportError as exc:
            raise ExtraMissing("the simulated bench", exc) from exc
        cfg = self.config
        self.board = start_board(cfg.board, firmware=cfg.firmware, console=cfg.console,
                                 realtime=cfg.realtime,
                                 note=lambda line: LOG.debug("%s: %s", cfg.uid, line))
        try:
            self._registry.register(cfg.uid, self.board)
            probes = ConnectHelper.get_all_connected_probes(blocking=False, unique_id=cfg.uid,
                                                            print_wait_message=False)
            probe = next(p for p in probes if p.unique_id == cfg.uid)
            session = Session(probe=None, options={"serve_local_only": True})
            probe.session = session
            self._server = DebugProbeServer(session, probe, cfg.port, serve_local_only=True)
            self._server.start()
        except BaseException:
            self.close()
            raise
        LOG.info("simulated bench %s: %s on %s, console %s", cfg.uid, cfg.board,
                 self.probe_uid, cfg.console)
        return self

    def close(self) -> None:
        if self._server is not None:
            self._server.stop()
            self._server._server.server_close()  # the listening socket (stop() leaves it)
            self._server = None
        self._registry.unregister(self.config.uid)
        if self.board is not None:
            self.board.close()
            self.board = None

    def __enter__(self) -> SimBench:
        return self.open()

    def __exit__(self, *exc: object) -> None:
        self.close()


def main(argv: list[str] | None = None) -> int:
    """``python -m hwut.backends.simboard`` (``hwut simboard``): one bench until
    SIGINT/SIGTERM, or until the process that started it is gone. ``--config PATH
    --index N``: the config's N-th ``[[simboards]]`` table (how ``hwut serve`` starts
    them)."""
    import argparse
    import signal
    import threading
    import tomllib

    parser = argparse.ArgumentParser(prog="hwut simboard", description=__doc__)
    parser.add_argument("--port", type=int, default=5555)
    parser.add_argument("--console", default="/tmp/hwut-simboard-0")
    parser.add_argument("--board", default="nucleo-f303re")
    parser.add_argument("--uid")
    parser.add_argument("--firmware")
    parser.add_argument("--fast", action="store_true")
    parser.add_argument("--config")
    parser.add_argument("--index", type=int, default=0)
    args = parser.parse_args(argv)
    try:
        if args.config:
            with open(args.config, "rb") as fh:
                entry = tomllib.load(fh).get("simboards", [])[args.index]
            cfg = BenchConfig.from_mapping(entry, Path(args.config).parent)
        else:
            cfg = BenchConfig.from_mapping(
                {"port": args.port, "console": args.console, "board": args.board,
                 "uid": args.uid or f"hwutsim-bench-{args.port}", "realtime": not args.fast,
                 **({"firmware": str(Path(args.firmware).resolve())} if args.firmware else {})},
                Path.cwd())
    except (OSError, ValueError, IndexError, tomllib.TOMLDecodeError) as exc:
        print(f"error: simulated bench: {exc}", file=sys.stderr)
        return 2
    done = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: done.set())
    signal.signal(signal.SIGINT, lambda *_: done.set())
    parent = os.getppid()
    try:
        bench = SimBench(cfg).open()
    except Exception as exc:  # a port in use, a board that does not exist, no pyOCD
        print(f"error: simulated bench: {exc}", file=sys.stderr)
        return 1
    try:
        print(f"ready {bench.probe_uid} {bench.console}", flush=True)
        while not done.wait(0.5):
            if os.getppid() != parent:  # whoever started it is gone: so is the bench
                break
    finally:
        bench.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
