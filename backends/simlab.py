"""The simulated lab of a process: which emulated boards stand behind simulated
debug probes (the ``hwutsim`` pyOCD plug-in, ``hwut.backends.simprobe``, serves
them to pyOCD). No pyOCD here: import this module, not the plug-in, to register
boards (importing pyOCD loads the plug-in, which uses this registry).

Which simulated probes exist in a process:

- boards registered by code: ``PROBES.register(uid, board)`` with an open
  ``SimulatedBoard`` (tests, the ``physical`` backend's simulated lab), and
- the probes listed in the TOML file that ``HWUT_SIMPROBES`` names, started the
  first time pyOCD looks for probes and stopped when the process ends::

      [[probe]]
      uid = "hwutsim-nucleo-f303re-0"       # as `pyocd list` shows it
      board = "nucleo-f303re"               # a board of hwut.sim
      firmware = "fixtures/build/hello.elf" # optional: in flash at power-on (ELF, HEX, BIN)
      console = "/tmp/hwutsim-0"            # optional: a symlink to the console's pty
      realtime = true                       # optional: never run ahead of the wall clock
      start = "open"                        # optional: "open" (when pyOCD opens the probe)
                                            # or "listed" (when pyOCD lists probes)

A simulated lab for another process: ``pyocd server -u UID -p PORT`` with
``start = "listed"`` serves the board over pyOCD's remote-probe protocol from its
start (unique id ``remote:localhost:PORT`` elsewhere), its console at ``console``.

Without ``HWUT_SIMPROBES`` and registrations there are none: a lab's ``pyocd list``
shows only its real probes.
"""
from __future__ import annotations

import atexit
import logging
import os
import threading
import tomllib
from collections.abc import Callable
from pathlib import Path
from typing import Any

from hwut.sim.boards import board as board_spec
from hwut.sim.debug.board import SimulatedBoard

from .image import load

LOG = logging.getLogger(__name__)
ENV = "HWUT_SIMPROBES"


class SimProbeConfigError(ValueError):
    """The simulated-probe file is wrong (named in the message)."""


def read_config(path: Path) -> dict[str, dict[str, Any]]:
    """uid → probe table of a simulated-probe file (checked, paths made absolute)."""
    try:
        data = tomllib.loads(path.read_text())
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise SimProbeConfigError(f"{path}: {exc}") from exc
    probes: dict[str, dict[str, Any]] = {}
    for i, entry in enumerate(data.get("probe", [])):
        where = f"{path}: probe {i + 1}"
        unknown = set(entry) - {"uid", "board", "firmware", "console", "realtime", "start"}
        if unknown:
            raise SimProbeConfigError(f"{where}: unknown keys {sorted(unknown)}")
        uid, board = entry.get("uid"), entry.get("board", "nucleo-f303re")
        if not isinstance(uid, str) or not uid:
            raise SimProbeConfigError(f"{where}: uid must be a non-empty string")
        try:
            board_spec(board)
        except KeyError as exc:
            raise SimProbeConfigError(f"{where}: {exc.args[0]}") from None
        start = entry.get("start", "open")
        if start not in ("open", "listed"):
            raise SimProbeConfigError(f'{where}: start must be "open" or "listed", not {start!r}')
        cfg = {"board": board, "realtime": bool(entry.get("realtime", True)), "start": start}
        for key in ("firmware", "console"):
            if key in entry:
                cfg[key] = (path.parent / str(entry[key])).resolve() if key == "firmware" \
                    else Path(str(entry[key]))
        probes[uid] = cfg
    return probes


def start_board(board: str, *, firmware: Path | None = None, console: Path | None = None,
                realtime: bool = True, note: Callable[[str], None] | None = None
                ) -> SimulatedBoard:
    """An open emulated board, with ``firmware`` (any format hwut loads) in its memory."""
    spec = board_spec(board)
    segments = []
    if firmware is not None:
        segments = [(s.address, s.data) for s in load(firmware).segments]
    return SimulatedBoard(spec, segments=segments, realtime=realtime, console_link=console,
                          note=note).open()


class SimulatedProbes:
    """The simulated probes of this process (see the module's doc)."""

    def __init__(self, environ: Callable[[], dict[str, str]] = lambda: dict(os.environ)) -> None:
        self._environ = environ
        self._lock = threading.Lock()
        self._boards: dict[str, SimulatedBoard] = {}
        self._started: set[str] = set()
        self._exit_hook = False

    def register(self, uid: str, board: SimulatedBoard) -> None:
        with self._lock:
            if uid in self._boards:
                raise ValueError(f"a simulated probe {uid!r} is already registered")
            self._boards[uid] = board

    def unregister(self, uid: str) -> None:
        """The probe is unplugged: sessions on it fail from now on."""
        with self._lock:
            self._boards.pop(uid, None)

    def _configured(self) -> dict[str, dict[str, Any]]:
        path = self._environ().get(ENV)
        if not path:
            return {}
        try:
            return read_config(Path(path))
        except SimProbeConfigError as exc:
            LOG.warning("ignoring %s: %s", ENV, exc)
            return {}

    def uids(self) -> list[str]:
        configured = self._configured()
        for uid, cfg in configured.items():
            if cfg["start"] == "listed":
                self.board(uid)
        with self._lock:
            known = set(self._boards)
        return sorted(known | set(configured))

    def board(self, uid: str) -> SimulatedBoard | None:
        """The board behind ``uid``, starting a configured one the first time."""
        with self._lock:
            if uid in self._boards:
                return self._boards[uid]
        cfg = self._configured().get(uid)
        if cfg is None:
            return None
        with self._lock:
            if uid in self._boards:
                return self._boards[uid]
            board = start_board(cfg["board"], firmware=cfg.get("firmware"),
                                console=cfg.get("console"), realtime=cfg["realtime"],
                                note=lambda line: LOG.info("%s: %s", uid, line))
            LOG.info("simulated probe %s: %s, console on %s", uid, cfg["board"],
                     board.console_path)
            self._boards[uid] = board
            self._started.add(uid)
            if not self._exit_hook:
                atexit.register(self.close_started)
                self._exit_hook = True
            return board

    def close_started(self) -> None:
        """Stop the boards this registry started from the file."""
        with self._lock:
            started = [self._boards.pop(uid) for uid in self._started if uid in self._boards]
            self._started.clear()
        for board in started:
            board.close()


#: The process's simulated probes.
PROBES = SimulatedProbes()


