"""The physical path on the simulated probe: pyOCD connect, flash programming
(KiB/s) through the flash algorithm on the emulated core, first console byte after
reset, and a whole job through the physical backend.

Prints figures and asserts nothing. Run: ``python bench/bench_simprobe.py``
(``--firmware fw_rtos``). Reported real-world ST-LINK figures for comparison:
about 1 s to connect, 17-30 KiB/s to program an STM32F3.
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

import serial
from pyocd.core.helpers import ConnectHelper
from pyocd.flash.file_programmer import FileProgrammer

from hwut.backends.base import CancelToken, RunRequest
from hwut.backends.physical import PhysicalBackend
from hwut.backends.simlab import PROBES, start_board

BUILD = Path(__file__).resolve().parents[1] / "fixtures" / "build"
UID = "hwutsim-bench-0"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--firmware", default="hello")
    args = parser.parse_args()
    elf = BUILD / f"{args.firmware}.elf"
    size = (BUILD / f"{args.firmware}.bin").stat().st_size
    board = start_board("nucleo-f303re", realtime=True)
    PROBES.register(UID, board)
    try:
        started = time.monotonic()
        session = ConnectHelper.session_with_chosen_probe(unique_id=UID, blocking=False,
                                                          target_override="stm32f303retx")
        session.open()
        connect = time.monotonic() - started
        with serial.Serial(board.console_path, timeout=10) as port:
            started = time.monotonic()
            FileProgrammer(session, chip_erase="sector", smart_flash=False).program(str(elf))
            program = time.monotonic() - started
            port.reset_input_buffer()
            started = time.monotonic()
            session.target.reset()
            port.read(1)
            first_byte = time.monotonic() - started
        session.close()
        print(f"firmware           {args.firmware} ({size} bytes)")
        print(f"connect            {connect * 1000:8.1f} ms   (ST-LINK: about 1 s)")
        print(f"program            {program * 1000:8.1f} ms   {size / 1024 / program:6.1f} KiB/s "
              f"(ST-LINK on an F3: 17-30 KiB/s)")
        print(f"first console byte {first_byte * 1000:8.1f} ms after reset (with pyOCD's "
              f"post-reset delay)")
        log = bytearray()
        request = RunRequest(executable=elf, format="elf", board="nucleo-f303re",
                             time_limit_s=1.0, uart=log.extend, cancel=CancelToken())
        started = time.monotonic()
        outcome = PhysicalBackend("nucleo-f303re", {"probe": UID, "serial": board.console_path}
                                  ).run(request)
        total = time.monotonic() - started
        print(f"job (1 s limit)    {total * 1000:8.1f} ms total, {outcome.reason.value}, "
              f"{len(log)} console bytes; overhead {(total - 1.0) * 1000:.0f} ms")
    finally:
        PROBES.unregister(UID)
        board.close()


if __name__ == "__main__":
    main()
