"""An emulated board behind a simulated SWD probe: the machine, its core under a
debugger, the debug port a probe talks to, and the console on a pseudo-terminal.

``SimulatedBoard`` lives as long as the board is "plugged in": the firmware runs
from ``open`` on, whether a debug session is attached or not, and the console
stays where it is between sessions, as on a real board with its ST-LINK.
"""
from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

from ..boards.spec import BoardSpec
from ..machine import Machine
from ..regs import Access, Field, Peripheral, Register, word
from . import components as C
from .core import DebugCore
from .dap import DebugPort, MemAp
from .vcp import VirtualComPort

CORE_DEBUG = 0xE000_EDF0


class CoreDebugFront(Peripheral):
    """DHCSR, DCRSR, DCRDR and DEMCR (0xE000EDF0) as the debugger sees them."""

    size = 0x10

    def __init__(self, name: str, base: int, *, core: DebugCore, demcr: Peripheral,
                 note: Callable[[str], None] | None = None) -> None:
        self.core = core
        self._demcr = demcr  # the machine's CoreDebug model keeps DEMCR for firmware too
        super().__init__(name, base, note=note)

    def registers(self) -> Iterable[Register]:
        core = self.core
        # The debugger's view: each register is the core's (reads computed, writes
        # handed on as written), so its one field is a write-through word.
        yield Register("DHCSR", 0x0, fields=word("DHCSR", Access.WO),
                       on_read=lambda _v: core.read_dhcsr(),
                       on_write=lambda old, new: core.write_dhcsr(new))
        yield Register("DCRSR", 0x4, fields=(Field("REGSEL", 0, 7, Access.WO),
                                             Field("REGWnR", 16, access=Access.WO)),
                       on_read=lambda _v: 0, on_write=lambda old, new: core.write_dcrsr(new))
        yield Register("DCRDR", 0x8, fields=word("DBGTMP", Access.WO),
                       on_read=lambda _v: core.read_dcrdr(),
                       on_write=lambda old, new: core.write_dcrdr(new))
        yield Register("DEMCR", 0xC, fields=word("DEMCR", Access.WO),
                       on_read=lambda _v: self._demcr.read(0xC, 4),
                       on_write=lambda old, new: self._demcr.write(0xC, 4, new))


class DebugBus:
    """The system bus as the AHB-AP reaches it: the debug components first, then the
    machine's bus. A write into flash goes to the FLASH interface, as any AHB
    master's half-word write does (it programs only while FLASH_CR.PG is set)."""

    def __init__(self, machine: Machine, blocks: Sequence[Peripheral]) -> None:
        self.machine = machine
        self.blocks = list(blocks)
        flash = machine.board.soc.memory("flash")
        self._flash = (flash.base, flash.base + flash.size)

    def _block(self, address: int) -> Peripheral | None:
        for block in self.blocks:
            if block.base <= address < block.base + block.size:
                return block
        return None

    def read(self, address: int, size: int) -> int:
        block = self._block(address)
        if block is not None:
            return block.read(address - block.base, size)
        return self.machine.bus.read(address, size)

    def write(self, address: int, size: int, value: int) -> None:
        block = self._block(address)
        if block is not None:
            block.write(address - block.base, size, value)
            return
        machine = self.machine
        lo, hi = self._flash
        if lo <= address < hi:
            flash_if = machine.peripherals["FLASH"]
            if size == 1:
                flash_if.program_halfword(address | 1, value)  # refused: PGERR
            for off in range(0, size, 2):
                flash_if.program_halfword(address + off, (value >> (8 * off)) & 0xFFFF)
            return
        machine.bus.write(address, size, value)
        if machine.bus.memory_at(address) is not None:
            machine.uc.ctl_remove_cache(address, address + size)  # it may be code
        else:
            machine.bus.invalidate()
            machine.poll.forget()


class SimulatedBoard:
    """One emulated board with its probe's view of it. ``open`` starts it (the core
    runs, the console appears at ``console_path``); ``close`` stops everything."""

    def __init__(self, spec: BoardSpec, *, segments: Sequence[tuple[int, bytes]] = (),
                 realtime: bool = True, console_link: Path | None = None,
                 note: Callable[[str], None] | None = None) -> None:
        self.spec = spec
        self._note = note or (lambda line: None)
        self._console_link = console_link
        self._vcp: VirtualComPort | None = None
        #: Semihosting output (the probe's own channel, not the console UART).
        self.semihosting = bytearray()
        self.machine = Machine(spec, uart_out=self._uart_out,
                               semihosting_out=self.semihosting.extend, note=self._note,
                               precharge=False)
        self.machine.load(list(segments))
        # as on the chip: with a debugger attached (C_DEBUGEN), BKPT 0xAB halts the core
        # and the debugger serves the call (pyOCD's semihosting agent); without, we do
        self.machine.debugger_semihosting = True
        self.core = DebugCore(self.machine, realtime=realtime)
        self.fpb = C.Fpb("FPB", changed=self._breakpoints_changed)
        blocks: list[Peripheral] = [
            C.RomTable("ROM", tpiu=False),
            *(C.ComponentIds(f"{name}-ID", base, pid, cid)
              for name, (base, pid, cid) in C.CORTEX_M4_IDS.items() if name != "FPB"),
            self.fpb,
            C.FpuFeatures("MVFR"),
            CoreDebugFront("CoreDebug", CORE_DEBUG, core=self.core,
                           demcr=self.machine.peripherals["CoreDebug"]),
        ]
        self.bus = DebugBus(self.machine, blocks)
        self.ap = MemAp("AHB-AP", memory=self.bus)
        self.dp = DebugPort("SW-DP", aps={0: self.ap})
        self._open = False

    # -- lifecycle ------------------------------------------------------------------
    @property
    def is_open(self) -> bool:
        return self._open

    def open(self) -> SimulatedBoard:
        if self._open:
            raise RuntimeError("SimulatedBoard.open: already open")
        self._vcp = VirtualComPort(self.core.feed, link=self._console_link,
                                   name=self.spec.name)
        try:
            self.core.start(console=self.spec.console)
        except BaseException:
            self._vcp.close()
            self._vcp = None
            raise
        self._open = True
        return self

    def close(self) -> None:
        if not self._open:
            return
        self._open = False
        try:
            self.core.close()
        finally:
            if self._vcp is not None:
                self._vcp.close()
                self._vcp = None

    def __enter__(self) -> SimulatedBoard:
        return self.open()

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def console_path(self) -> str:
        """The pseudo-terminal's slave side (``serial.Serial(board.console_path)``)."""
        if self._vcp is None:
            raise RuntimeError("SimulatedBoard.console_path: the board is not open")
        return self._vcp.path

    def _uart_out(self, name: str, data: bytes) -> None:
        if name == self.spec.console and self._vcp is not None:
            self._vcp.write(data)

    def _breakpoints_changed(self) -> None:
        self.core.set_breakpoints(self.fpb.breakpoints())

    # -- the wire, as a probe drives it -----------------------------------------------------
    def _check_open(self, what: str) -> None:
        if not self._open:
            raise RuntimeError(f"SimulatedBoard.{what}: the board is not open")

    def read_dp(self, a: int) -> int:
        self._check_open("read_dp")
        with self.core.access():
            return self.dp.read_dp(a)

    def write_dp(self, a: int, value: int) -> None:
        self._check_open("write_dp")
        with self.core.access():
            self.dp.write_dp(a, value)

    def read_ap(self, a: int) -> int:
        self._check_open("read_ap")
        with self.core.access():
            return self.dp.read_ap(a)

    def write_ap(self, a: int, value: int) -> None:
        self._check_open("write_ap")
        with self.core.access():
            self.dp.write_ap(a, value)

    def read_ap_repeated(self, a: int, count: int) -> list[int]:
        self._check_open("read_ap_repeated")
        with self.core.access():
            return [self.dp.read_ap(a) for _ in range(count)]

    def write_ap_repeated(self, a: int, values: Sequence[int]) -> None:
        self._check_open("write_ap_repeated")
        with self.core.access():
            for value in values:
                self.dp.write_ap(a, value)

    def line_reset(self) -> None:
        self.dp.line_reset()

    def hold_reset(self, asserted: bool) -> None:
        """The nRST line."""
        self._check_open("hold_reset")
        with self.core.access():
            self.core.hold_reset(asserted)
