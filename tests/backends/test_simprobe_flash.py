"""pyOCD programs flash by running a flash algorithm ON the emulated core: its own
FlashLoader loads our STM32F3 algorithm (``fixtures/flashalgo``, target
``stm32f303retx`` from ``hwut.backends.pyocd_targets``) into SRAM, calls
EraseSector and ProgramPage on the core and waits for the BKPT, and the core's
stores reach the modelled FLASH controller (keys, PER/STRT, PG, half-words).
Nothing writes flash from the side."""
from __future__ import annotations

import shutil
import subprocess
import threading
from pathlib import Path

import pytest

pytest.importorskip("pyocd")
serial = pytest.importorskip("serial")

from pyocd.core import exceptions  # noqa: E402
from pyocd.core.helpers import ConnectHelper  # noqa: E402
from pyocd.core.target import Target  # noqa: E402
from pyocd.flash.file_programmer import FileProgrammer  # noqa: E402

from hwut.backends import pyocd_targets  # noqa: E402

from .simulated_lab import registered_board  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
BUILD = ROOT / "fixtures" / "build"
UID = "hwutsim-flash-test"


@pytest.fixture
def blank_board():
    """An emulated board whose flash is erased, behind a simulated probe."""
    threads = set(threading.enumerate())
    pyocd_targets.register()
    with registered_board(UID, realtime=False) as board:
        yield board
    assert set(threading.enumerate()) <= threads


def _session():
    return ConnectHelper.session_with_chosen_probe(unique_id=UID, target_override="stm32f303retx",
                                                   blocking=False)


def test_the_algorithm_is_what_its_source_builds():
    algo = pyocd_targets.flash_algo()
    assert algo["instructions"][0] & 0xFFFF == 0xBE00  # BKPT at offset 0, where LR points
    assert all(algo[k] & 1 for k in ("pc_init", "pc_unInit", "pc_erase_sector", "pc_program_page"))


@pytest.mark.toolchain
@pytest.mark.skipif(shutil.which("arm-none-eabi-gcc") is None or shutil.which("make") is None,
                    reason="needs arm-none-eabi-gcc and make")
def test_the_algorithm_builds_reproducibly():
    make = subprocess.run(["make", "-s", "-C", str(ROOT / "fixtures" / "flashalgo"), "check"],
                          capture_output=True, text=True, timeout=120)
    assert make.returncode == 0 and "reproducible" in make.stdout, make.stdout + make.stderr


@pytest.mark.parametrize("name", ["hello.elf", "hello.hex", "hello.bin"])
def test_pyocd_programs_flash_through_the_algorithm_on_the_core(blank_board, name):
    flash = blank_board.machine.peripherals["FLASH"]
    with _session() as session:
        target = session.target
        assert target.read32(0x0800_0000) == 0xFFFF_FFFF
        with serial.Serial(blank_board.console_path, timeout=5) as port:
            FileProgrammer(session, chip_erase="sector").program(
                str(BUILD / name), base_address=0x0800_0000 if name.endswith(".bin") else None)
            image = (BUILD / "hello.bin").read_bytes()
            assert bytes(target.read_memory_block8(0x0800_0000, len(image))) == image
            assert flash.values[0x10] & 0x80  # UnInit locked FLASH_CR again
            target.reset()
            assert target.get_state() == Target.State.RUNNING
            assert b"HWUT hello from NUCLEO-F303RE" in port.read_until(b"count=0\r\n")


def test_reprogramming_erases_first_and_chip_erase_works(blank_board):
    with _session() as session:
        target = session.target
        FileProgrammer(session).program(str(BUILD / "blink.elf"))
        FileProgrammer(session, chip_erase="sector").program(str(BUILD / "hello.elf"))
        image = (BUILD / "hello.bin").read_bytes()
        assert bytes(target.read_memory_block8(0x0800_0000, len(image))) == image
        FileProgrammer(session, chip_erase="chip").program(str(BUILD / "hello.bin"),
                                                          base_address=0x0800_4000)
        assert target.read32(0x0800_0000) == 0xFFFF_FFFF  # the whole array was erased
        assert bytes(target.read_memory_block8(0x0800_4000, len(image))) == image


def test_programming_over_unerased_flash_fails_with_the_controllers_error(blank_board):
    with _session() as session:
        target = session.target
        FileProgrammer(session).program(str(BUILD / "hello.elf"))
        flash = target.memory_map.get_boot_memory().flash
        flash.init(flash.Operation.PROGRAM)
        try:
            with pytest.raises(exceptions.FlashProgramFailure) as failure:
                flash.program_page(0x0800_0000, [0x00, 0x11] * 0x200)  # not erased: PGERR
            assert failure.value.result_code == 0x4  # FLASH_SR.PGERR
        finally:
            flash.cleanup()
