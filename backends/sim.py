"""The embedded default: run jobs on our own emulated board (``sim``).

Virtual time bounds the run; the job's process has a CPU-time budget that stops
firmware too slow to emulate (``hwut.runner``), and the scheduler's deadline cancels
a run that takes too long in wall time (the run's cancel token; no wall-clock guard
here). Nothing outlives ``run``: the emulator is built per job.
"""
from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from typing import Any, ClassVar

from hwut.sim.boards import BOARDS
from hwut.sim.boards import board as board_spec
from hwut.sim.machine import Machine, RunResult, StopCause
from hwut.sim.trace import PinRecorder, UnknownSignal

from . import simboards
from .base import (
    Availability,
    Backend,
    BoardInfo,
    CancelToken,
    LiveInput,
    LiveItem,
    OptionInfo,
    Outcome,
    RunRequest,
    StopReason,
    check_options,
)
from .image import InvalidFirmware, load_images

#: A realtime run goes in steps of this much board time, each waited for on the wall clock.
REALTIME_STEP_S = 0.01


class _Wake(threading.Event):
    """What stops one stretch of ``Machine.run`` early: the run's cancel, or live input
    arriving (the loop then applies it and runs on). Only ``is_set`` is read by the
    machine."""

    def __init__(self, cancel: CancelToken, live: LiveInput) -> None:
        super().__init__()
        self.cancel, self.live = cancel, live

    def is_set(self) -> bool:
        return self.cancel.is_set() or self.live.wake.is_set()


_REASONS = {
    StopCause.LIMIT: StopReason.LIMIT,
    StopCause.EXIT: StopReason.EXIT,
    StopCause.CANCEL: StopReason.CANCEL,
    StopCause.LOCKUP: StopReason.FAULT,
}


#: The board-instance options of the ``sim`` backend (server config).
OPTIONS: tuple[OptionInfo, ...] = (
    OptionInfo("model", str, None,
               "the emulated board this server board is (a board of hwut.sim, e.g. "
               "nucleo-f303re); not set: the board's own name", choices=tuple(sorted(BOARDS))),
    OptionInfo("timing", str, "exact",
               "exact: interrupts are taken at the next instruction; block: at the next "
               "translated block (faster, coarser)", choices=("exact", "block")),
    OptionInfo("precharge", bool, True,
               "exact timing counted per block where nothing can tell the difference; false "
               "counts every instruction (the same results, slower)"),
    OptionInfo("trace_bus", bool, False,
               "log every peripheral register access into the job's infrastructure log"),
)


class SimBackend(Backend):
    name: ClassVar[str] = "sim"
    option_infos: ClassVar[tuple[OptionInfo, ...] | None] = OPTIONS

    @classmethod
    def availability(cls, options: Mapping[str, Any] | None = None) -> Availability:
        return Availability(True, "built-in STM32F3 emulator (Unicorn)")

    @classmethod
    def boards(cls) -> tuple[str, ...]:
        return tuple(sorted(BOARDS))

    @classmethod
    def board_info(cls, board: str, options: Mapping[str, Any] | None = None
                   ) -> BoardInfo | None:
        """The board's model (option ``model``, else the board's own name) as data; this
        backend feeds console input and scripted presses."""
        spec = simboards.find(check_options(OPTIONS, options or {})["model"] or board)
        if spec is None:
            return None
        return simboards.board_info(spec, name=board, console_input=True, presses=True,
                                    drive_pins=True, live_input=True, live_presses=True,
                                    backend=cls.name)

    def run(self, request: RunRequest) -> Outcome:
        infra: list[str] = []
        started = time.monotonic()
        try:
            # a server board may go by its own name and say which model it is
            spec = board_spec(self.options["model"] or request.board)
        except KeyError as exc:
            return Outcome(StopReason.INFRASTRUCTURE, detail=str(exc.args[0]))
        try:
            image = load_images(request, simboards.memory_map(spec.soc))
        except (InvalidFirmware, OSError) as exc:
            return Outcome(StopReason.INFRASTRUCTURE, infra_log=str(exc),
                           detail=f"cannot load the executable: {exc}")
        console = spec.console
        sink, other = request.uart, request.other
        recorders: list[PinRecorder] = []  # the pin trace, once the machine exists

        def uart_out(name: str, data: bytes) -> None:
            for recorder in recorders:
                recorder.uart(name, data)
            if name == console:
                sink(data)

        machine = Machine(
            spec,
            uart_out=uart_out,
            semihosting_out=sink,
            trace_out=(lambda port, data: other(data)) if other else None,
            note=infra.append,
            trace=infra.append if self.options["trace_bus"] else None,
            timing=self.options["timing"],  # see OPTIONS and sim/counter.py
            precharge=self.options["precharge"],
        )
        if request.trace is not None:
            try:
                recorders.append(PinRecorder(machine, request.trace_signals,
                                             cap_bytes=request.trace_bytes))
            except UnknownSignal as exc:
                return Outcome(StopReason.INFRASTRUCTURE, detail=str(exc))
        try:
            machine.load([(s.address, s.data) for s in image.segments])
        except ValueError as exc:
            return Outcome(StopReason.INFRASTRUCTURE, infra_log="\n".join(infra),
                           detail=f"cannot place the image in memory: {exc}")
        if request.uart_input:  # typed, not burst: each byte once the last one was read
            machine.uart_receive(console, request.uart_input, paced=True)
        try:
            for button, at, release in request.presses:
                machine.press(button, at, release)
        except KeyError as exc:
            return Outcome(StopReason.INFRASTRUCTURE, detail=str(exc.args[0]))
        try:  # in order: at the same virtual time the later one wins
            for pin, at, level in request.pins:
                machine.drive(pin, level, at or None)  # at 0: before the first instruction
        except ValueError as exc:
            return Outcome(StopReason.INFRASTRUCTURE, detail=str(exc))
        request.clock.bind(machine.clock.seconds)
        # No wall-clock guard here: wall time depends on what else the machine does; the
        # deadline (the scheduler's clock) cancels the run through its token instead.
        if request.live is None and not request.realtime:
            result = machine.run(request.time_limit_s, cancel=request.cancel)
        else:
            result = self._run_live(machine, request, console, infra.append)
        if recorders and request.trace is not None:
            written = recorders[0].write_vcd(request.trace)
            infra.append(f"pin trace: {', '.join(written.signals)}; {written.changes} changes, "
                         f"{written.bytes_written} bytes of VCD")
            if written.truncated_at_s is not None:
                infra.append(f"pin trace cut at {written.truncated_at_s:.6f} s: it reached its "
                             f"limit of {request.trace_bytes} bytes")
        request.clock.bind(None)
        request.clock.set(result.seconds)
        infra.append(f"virtual time {result.seconds:.6f} s, {result.instructions} instructions "
                     f"executed, {result.slept_cycles} cycles asleep (WFI/WFE), "
                     f"{time.monotonic() - started:.3f} s wall")
        reason = _REASONS[result.cause]
        detail = result.detail
        if result.faults and reason is StopReason.LIMIT:
            reason = StopReason.FAULT
        if result.faults and not detail:
            detail = result.faults[0]
        if reason is StopReason.EXIT:
            detail = detail or f"firmware exited with code {result.exit_code}"
        infra.extend(result.faults)
        return Outcome(reason, exit_code=result.exit_code, time_used_s=result.seconds,
                       instructions=result.instructions, infra_log="\n".join(infra),
                       detail=detail)

    @staticmethod
    def _run_live(machine: Machine, request: RunRequest, console: str,
                  note: Callable[[str], None]) -> RunResult:
        """The run in stretches that end when live input arrives (it is applied at the
        board's time then, and noted with it) or, for a realtime job, every
        REALTIME_STEP_S of board time, after which the loop waits until the wall clock
        has caught up (waking early for input). Ends as ``Machine.run`` would."""
        live = request.live or LiveInput(0)
        wake = _Wake(request.cancel, live)
        limit = request.time_limit_s
        wall0, board0 = time.monotonic(), machine.clock.seconds()
        while True:
            for item in live.take():
                _apply(machine, console, item, note)
            now = machine.clock.seconds()
            until = min(limit, now + REALTIME_STEP_S) if request.realtime else limit
            result = machine.run(until, cancel=wake)
            if result.cause is not StopCause.LIMIT and not (
                    result.cause is StopCause.CANCEL and not request.cancel.is_set()):
                return result  # an exit, a lockup, the run's own cancel
            if result.cause is StopCause.LIMIT and until >= limit:
                return result
            if request.realtime:
                ahead = (result.seconds - board0) - (time.monotonic() - wall0)
                if ahead > 0:
                    live.wake.wait(ahead)


def _apply(machine: Machine, console: str, item: LiveItem,
           note: Callable[[str], None]) -> None:
    """One live input at the board's time now; noted with that time."""
    now = machine.clock.seconds()
    try:
        if item.press is not None:
            machine.press(item.press, now, now + item.hold_s)
        else:
            machine.uart_receive(console, item.text, paced=True)
    except (KeyError, ValueError) as exc:
        note(f"live input at {now:.6f} s refused: {item.describe()}: {exc}")
        return
    note(f"live input at {now:.6f} s: {item.describe()}")
