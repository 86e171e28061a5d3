"""A pyOCD debug-probe plug-in whose probes are emulated boards (``hwut.sim.debug``).

pyOCD loads it through the ``pyocd.probe`` entry point ``hwutsim``, and only pyOCD
may import it: importing pyOCD loads its plug-ins, so a module of ours that imported
this one before pyOCD would import itself half-way. Boards are registered, and the
``HWUT_SIMPROBES`` file is read, by ``hwut.backends.simlab``; this module turns
them into pyOCD probes. Loading the plug-in also registers HWUT's pyOCD targets
(``stm32f303retx``, see ``pyocd_targets``).
"""
from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any

from hwut.sim.debug.board import SimulatedBoard
from hwut.sim.debug.dap import DapError, DapFault, DapNoResponse

from .extras import ExtraMissing
from .pyocd_targets import register as register_targets

try:
    from pyocd.core import exceptions
    from pyocd.core.options import OptionInfo
    from pyocd.core.plugin import Plugin
    from pyocd.probe.debug_probe import DebugProbe
except ImportError as _missing:
    raise ExtraMissing("the hwutsim pyOCD probe plug-in", _missing) from _missing
from .simlab import PROBES, SimulatedProbes

PLUGIN_NAME = "hwutsim"


def _translate(exc: DapError) -> exceptions.Error:
    if isinstance(exc, DapFault):
        return exceptions.TransferFaultError(str(exc))
    if isinstance(exc, DapNoResponse):
        return exceptions.TransferError(str(exc))
    return exceptions.TransferError(str(exc))


class SimProbe(DebugProbe):
    """A simulated SWD probe in front of one emulated board."""

    @classmethod
    def get_all_connected_probes(cls, unique_id: str | None = None,
                                 is_explicit: bool = False) -> Sequence[SimProbe]:
        return [cls(uid) for uid in PROBES.uids()]

    @classmethod
    def get_probe_with_id(cls, unique_id: str, is_explicit: bool = False) -> SimProbe | None:
        return cls(unique_id) if unique_id in PROBES.uids() else None

    def __init__(self, uid: str, registry: SimulatedProbes = PROBES) -> None:
        super().__init__()
        self._uid = uid
        self._registry = registry
        self._board: SimulatedBoard | None = None
        self._protocol: DebugProbe.Protocol | None = None
        self._reset_asserted = False
        self._clock = 1_000_000.0

    # -- description -----------------------------------------------------------------
    @property
    def description(self) -> str:
        return f"{self.vendor_name} {self.product_name}"

    @property
    def vendor_name(self) -> str:
        return "HWUT"

    @property
    def product_name(self) -> str:
        return "simulated SWD probe"

    @property
    def supported_wire_protocols(self) -> Sequence[DebugProbe.Protocol]:
        return [DebugProbe.Protocol.DEFAULT, DebugProbe.Protocol.SWD]

    @property
    def unique_id(self) -> str:
        return self._uid

    @property
    def wire_protocol(self) -> DebugProbe.Protocol | None:
        return self._protocol

    @property
    def is_open(self) -> bool:
        return self._board is not None

    @property
    def capabilities(self) -> set[DebugProbe.Capability]:
        return {DebugProbe.Capability.SWJ_SEQUENCE}

    @property
    def board(self) -> SimulatedBoard:
        """The emulated board (open); ``ProbeDisconnected`` once it is gone."""
        board = self._board
        if board is None:
            raise exceptions.ProbeError(f"simulated probe {self._uid} is not open")
        if not board.is_open or self._registry.board(self._uid) is not board:
            raise exceptions.ProbeDisconnected(f"simulated probe {self._uid} is gone")
        return board

    # -- lifecycle -----------------------------------------------------------------------
    def open(self) -> None:
        board = self._registry.board(self._uid)
        if board is None or not board.is_open:
            raise exceptions.ProbeError(f"no simulated probe {self._uid}")
        self._board = board

    def close(self) -> None:
        self._board = None
        self._protocol = None

    def connect(self, protocol: DebugProbe.Protocol | None = None) -> None:
        if protocol not in (None, DebugProbe.Protocol.DEFAULT, DebugProbe.Protocol.SWD):
            raise exceptions.ProbeError(f"simulated probe {self._uid} speaks SWD only")
        self.board.line_reset()
        self._protocol = DebugProbe.Protocol.SWD

    def disconnect(self) -> None:
        self._protocol = None

    def swj_sequence(self, length: int, bits: int) -> None:
        """Sequences on SWDIO/TMS: 50 or more ones in a row are a line reset."""
        run = best = 0
        for i in range(length):
            run = run + 1 if bits >> i & 1 else 0
            best = max(best, run)
        if best >= 50:
            self.board.line_reset()

    def set_clock(self, frequency: float) -> None:
        self._clock = frequency

    # -- reset ------------------------------------------------------------------------------
    def reset(self) -> None:
        self.assert_reset(True)
        time.sleep(0.001)
        self.assert_reset(False)

    def assert_reset(self, asserted: bool) -> None:
        self.board.hold_reset(asserted)
        self._reset_asserted = asserted

    def is_reset_asserted(self) -> bool:
        return self._reset_asserted

    def flush(self) -> None:
        pass

    # -- transfers ---------------------------------------------------------------------------
    def _do(self, fn: Callable[..., Any], *args: Any) -> Any:
        try:
            return fn(*args)
        except DapError as exc:
            raise _translate(exc) from exc
        except RuntimeError as exc:  # the board closed under us
            raise exceptions.ProbeDisconnected(str(exc)) from exc

    @staticmethod
    def _later(value: Any, now: bool) -> Any:
        return value if now else (lambda: value)

    def read_dp(self, addr: int, now: bool = True) -> Any:
        return self._later(self._do(self.board.read_dp, addr), now)

    def write_dp(self, addr: int, data: int) -> None:
        self._do(self.board.write_dp, addr, data)

    def read_ap(self, addr: int, now: bool = True) -> Any:
        return self._later(self._do(self.board.read_ap, addr), now)

    def write_ap(self, addr: int, data: int) -> None:
        self._do(self.board.write_ap, addr, data)

    def read_ap_multiple(self, addr: int, count: int = 1, now: bool = True) -> Any:
        return self._later(self._do(self.board.read_ap_repeated, addr, count), now)

    def write_ap_multiple(self, addr: int, values: Sequence[int]) -> None:
        self._do(self.board.write_ap_repeated, addr, list(values))

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self._uid}>"


class SimProbePlugin(Plugin):
    """pyOCD's handle on the simulated probes (entry point ``pyocd.probe``: ``hwutsim``)."""

    def load(self) -> type[SimProbe]:
        # pyOCD has no STM32F303 target: with the plug-in, `-t stm32f303retx` works
        register_targets()
        return SimProbe

    @property
    def name(self) -> str:
        return PLUGIN_NAME

    @property
    def description(self) -> str:
        return "HWUT emulated boards behind a simulated SWD probe"

    @property
    def options(self) -> list[OptionInfo]:
        return []
