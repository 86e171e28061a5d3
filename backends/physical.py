"""The lab backend (first cut): a real board through pyOCD (programming, reset, run
control) and pyserial (its console, the ST-LINK's virtual COM port).

Per job: open the serial port first → open the pyOCD session on the probe (never
pyOCD's blocking wait for a probe) → program the image with pyOCD's FileProgrammer
(sector erase; a BIN goes to 0x08000000) → reset and run → stream every console
byte into the job's log as it arrives → stop at the wall-clock limit or on cancel
→ halt, reset-halt or leave running (option ``after``) → close the session and the
port, on every path.

Not yet here (issue 14): retries and the offline rule, semihosting, console input.
pyOCD and pyserial are the ``physical`` extra: imported inside functions, guarded.
"""
from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any, ClassVar

from .base import (
    Availability,
    Backend,
    OptionError,
    OptionInfo,
    Outcome,
    RunRequest,
    StopReason,
    check_options,
)
from .extras import ExtraMissing

BIN_BASE = 0x0800_0000


#: The board-instance options of the ``physical`` backend (server config).
OPTIONS: tuple[OptionInfo, ...] = (
    OptionInfo("probe", str, None, "the probe's unique id, as `pyocd list` shows it",
               required=True),
    OptionInfo("serial", str, None, "the console: a device path (/dev/serial/by-id/...) or "
                                    "any pyserial URL", required=True),
    OptionInfo("baud", int, 115200, "the console's baud rate", minimum=1),
    OptionInfo("target", str, "stm32f303retx", "pyOCD target type"),
    OptionInfo("pack", str, "", "a CMSIS-pack file for the target (takes precedence over "
                                "ours)"),
    OptionInfo("frequency", int, 4_000_000, "SWD clock in Hz", minimum=1),
    OptionInfo("reset_type", str, "sw", "how the board is reset: sw (SYSRESETREQ) or hw "
                                        "(nRST)", choices=("sw", "hw")),
    OptionInfo("after", str, "halt", "the core after the job: halt, reset-halt or run",
               choices=("halt", "reset-halt", "run")),
    OptionInfo("connect_timeout_s", float, 5.0, "how long pyOCD may take to connect",
               minimum=0),
)


def parse_options(options: Mapping[str, Any]) -> dict[str, Any]:
    """The options with defaults filled in; ``OptionError`` names what is wrong."""
    return check_options(OPTIONS, options, "backend physical")


def _infra(detail: str, infra: list[str], started: float) -> Outcome:
    infra.append(detail)
    return Outcome(StopReason.INFRASTRUCTURE, time_used_s=time.monotonic() - started,
                   infra_log="\n".join(infra), detail=detail)


__all__ = ["OPTIONS", "OptionError", "PhysicalBackend", "parse_options"]


class PhysicalBackend(Backend):
    name: ClassVar[str] = "physical"
    option_infos: ClassVar[tuple[OptionInfo, ...] | None] = OPTIONS

    @classmethod
    def availability(cls, options: Mapping[str, Any] | None = None) -> Availability:
        try:
            import pyocd  # noqa: F401
            import serial  # noqa: F401
        except ImportError as exc:
            return Availability(False, str(ExtraMissing("the physical backend", exc)))
        try:
            parse_options(dict(options or {}))
        except OptionError as exc:
            return Availability(False, str(exc))
        return Availability(True, "pyOCD and pyserial")

    def run(self, request: RunRequest) -> Outcome:
        started = time.monotonic()
        infra: list[str] = []
        try:
            import serial
            from pyocd.core import exceptions
            from pyocd.core.helpers import ConnectHelper
            from pyocd.flash.file_programmer import FileProgrammer
        except ImportError as exc:
            return _infra(str(ExtraMissing("the physical backend", exc)), infra, started)

        from .pyocd_targets import register

        try:
            opts = parse_options(self.options)
        except OptionError as exc:
            return _infra(str(exc), infra, started)
        register()
        port = session = None
        try:
            try:  # first: opening a port discards what waits in it
                port = serial.serial_for_url(opts["serial"], baudrate=opts["baud"], timeout=0.05)
            except (serial.SerialException, OSError, ValueError) as exc:
                return _infra(f"serial port {opts['serial']} cannot be opened: {exc}", infra,
                              started)
            session_options = {"frequency": opts["frequency"], "reset_type": opts["reset_type"],
                               "connect_mode": "halt",
                               "resume_on_disconnect": opts["after"] == "run"}
            if opts["pack"]:
                session_options["pack"] = opts["pack"]
            session = ConnectHelper.session_with_chosen_probe(
                unique_id=opts["probe"], target_override=opts["target"], blocking=False,
                options=session_options)
            if session is None:
                present = [p.unique_id for p in ConnectHelper.get_all_connected_probes(
                    blocking=False, print_wait_message=False)]
                return _infra(f"probe {opts['probe']} not found; probes present: "
                              f"{', '.join(present) or 'none'}", infra, started)
            try:
                session.open()
            except exceptions.Error as exc:
                return _infra(f"target on probe {opts['probe']} is not responding: {exc}", infra,
                              started)
            target = session.target
            try:
                fmt = request.format if request.format in ("elf", "hex", "bin") else None
                FileProgrammer(session, chip_erase="sector").program(
                    str(request.executable), file_format=fmt,
                    base_address=BIN_BASE if fmt == "bin" else None)
            except exceptions.FlashFailure as exc:
                return _infra(f"flash programming failed: {exc}", infra, started)
            port.reset_input_buffer()  # what the old firmware said is not this job's
            target.reset()
            run_started = time.monotonic()
            reason = StopReason.LIMIT
            try:
                while True:
                    if request.cancel.is_set():
                        reason = StopReason.CANCEL
                        break
                    if time.monotonic() - run_started >= request.time_limit_s:
                        break
                    data = port.read(max(1, port.in_waiting))
                    if data:
                        request.uart(data)
            except (serial.SerialException, OSError) as exc:
                return _infra(f"serial port {opts['serial']} failed mid-run: {exc}", infra,
                              started)
            used = time.monotonic() - run_started
            if opts["after"] == "halt":
                target.halt()
            elif opts["after"] == "reset-halt":
                target.reset_and_halt()
            return Outcome(reason, time_used_s=used, infra_log="\n".join(infra),
                           detail="" if reason is StopReason.CANCEL else
                           f"wall-clock limit of {request.time_limit_s:g} s reached")
        except exceptions.Error as exc:
            return _infra(f"probe {opts['probe']}: {type(exc).__name__}: {exc}", infra, started)
        finally:
            if session is not None:
                try:
                    session.close()
                except Exception as exc:  # closing must not hide the outcome
                    infra.append(f"closing the pyOCD session: {exc!r}")
            if port is not None:
                port.close()
