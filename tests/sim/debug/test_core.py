"""The emulated core under a debugger, through the debug port: the ROM table and
component ids, halt, register transfer, step, resume, reset with vector catch,
breakpoints, and code run on the core against the FLASH controller."""
from __future__ import annotations

import os
import select
import threading
import time

from hwut.sim.debug.components import CIDR_GENERIC, CIDR_ROM_TABLE

from .conftest import AIRCR, DEMCR, DFSR, DHCSR, Swd, open_board

C_DEBUGEN, C_HALT, C_STEP, C_MASKINTS = 1, 2, 4, 8
S_REGRDY, S_HALT, S_RETIRE_ST, S_RESET_ST = 1 << 16, 1 << 17, 1 << 24, 1 << 25


def _cid(swd: Swd, component: int) -> int:
    return sum((swd.read32(component + 0xFF0 + 4 * i) & 0xFF) << (8 * i) for i in range(4))


def _pid(swd: Swd, component: int) -> int:
    low = sum((swd.read32(component + 0xFE0 + 4 * i) & 0xFF) << (8 * i) for i in range(4))
    return low | (swd.read32(component + 0xFD0) & 0xFF) << 32


def test_rom_table_names_scs_dwt_fpb_itm(hello):
    _, swd = hello
    assert swd.dpidr == 0x2BA0_1477
    rom = 0xE00FF000
    assert _cid(swd, rom) == CIDR_ROM_TABLE
    entries = []
    for i in range(16):
        entry = swd.read32(rom + 4 * i)
        if entry == 0:
            break
        if entry & 1:
            entries.append((rom + (entry & 0xFFFF_F000)) & 0xFFFF_FFFF)
    assert entries == [0xE000E000, 0xE0001000, 0xE0002000, 0xE0000000]
    parts = {}
    for component in entries:
        assert _cid(swd, component) == CIDR_GENERIC
        pid = _pid(swd, component)
        assert (pid >> 12) & 0x7F == 0x3B and (pid >> 32) & 0xF == 4  # ARM's JEP106
        parts[component] = pid & 0xFFF
    assert parts == {0xE000E000: 0x00C, 0xE0001000: 0x002, 0xE0002000: 0x003, 0xE0000000: 0x001}
    assert swd.read32(0xE000ED00) == 0x410F_C241  # CPUID through the SCS
    assert swd.read32(0xE0002000) & 0xF0 == 0x60  # FP_CTRL: six code comparators


def test_halt_read_registers_step_resume(hello):
    target, swd = hello
    assert swd.read32(DHCSR) & S_HALT == 0
    swd.dhcsr(C_DEBUGEN | C_HALT)
    status = swd.wait_halted()
    assert status & S_REGRDY and status & C_DEBUGEN
    assert swd.read32(DFSR) & 1  # HALTED
    pc = swd.read_reg(15)
    xpsr = swd.read_reg(16)
    assert 0x0800_0000 <= pc < 0x0808_0000 and xpsr & (1 << 24)
    assert swd.read_reg(13) == swd.read_reg(17)  # SP is MSP in thread mode after reset
    swd.write_reg(0, 0xDEAD_BEEF)
    assert swd.read_reg(0) == 0xDEAD_BEEF
    # halted means halted: nothing moves while we look
    time.sleep(0.02)
    assert swd.read_reg(15) == pc
    first = swd.read32(pc & ~3) >> (8 * (pc & 2)) & 0xFFFF
    size = 4 if first >> 11 in (0b11101, 0b11110, 0b11111) else 2
    swd.dhcsr(C_DEBUGEN | C_STEP | C_MASKINTS)
    swd.wait_halted()
    after = swd.read_reg(15)
    branches = first & 0xF000 in (0xD000, 0xE000) or first >> 11 == 0b11110 or first & 0xFF00 == 0x4700
    assert after == pc + size or branches
    swd.dhcsr(C_DEBUGEN)  # resume
    assert swd.read32(DHCSR) & S_HALT == 0
    time.sleep(0.02)
    swd.dhcsr(C_DEBUGEN | C_HALT)
    assert swd.wait_halted() & S_RETIRE_ST  # instructions ran since the last look
    assert swd.read32(DHCSR) & S_RETIRE_ST == 0
    assert swd.read_reg(15) != after
    swd.dhcsr(0)  # the debugger leaves: the core runs on
    assert swd.read32(DHCSR) & (S_HALT | C_DEBUGEN) == 0


def test_writes_without_the_key_are_ignored(hello):
    _, swd = hello
    swd.write32(DHCSR, C_DEBUGEN | C_HALT)
    assert swd.read32(DHCSR) & (S_HALT | C_DEBUGEN) == 0


def test_reset_with_vector_catch_halts_at_the_reset_handler(hello):
    _, swd = hello
    swd.dhcsr(C_DEBUGEN | C_HALT)
    swd.wait_halted()
    swd.read32(DHCSR)  # clears S_RESET_ST
    swd.write32(DEMCR, 1)  # VC_CORERESET
    swd.write32(DFSR, 0x1F)
    swd.write32(AIRCR, 0x05FA_0004)  # SYSRESETREQ
    status = swd.wait_halted()
    assert status & S_RESET_ST
    assert swd.read32(DHCSR) & S_RESET_ST == 0  # sticky until read
    assert swd.read32(DFSR) & 8  # VCATCH
    assert swd.read_reg(15) == swd.read32(0x0800_0004) & ~1
    assert swd.read_reg(17) == swd.read32(0x0800_0000)
    swd.write32(DEMCR, 0)
    swd.write32(AIRCR, 0x05FA_0004)  # without the catch the core runs after reset
    time.sleep(0.01)
    assert swd.read32(DHCSR) & S_HALT == 0


def test_fpb_breakpoint_halts_before_the_instruction(hello):
    _, swd = hello
    swd.dhcsr(C_DEBUGEN | C_HALT)
    swd.wait_halted()
    swd.write32(DEMCR, 1)
    swd.write32(AIRCR, 0x05FA_0004)
    swd.wait_halted()
    entry = swd.read_reg(15)
    target = entry + 2 if swd.read32(entry & ~3) >> (8 * (entry & 2)) & 0xF800 < 0xE800 else entry + 4
    swd.write32(0xE0002008, (target & ~3) | 1 | (2 if target & 2 else 1) << 30)  # FP_COMP0
    swd.write32(0xE0002000, 3)  # KEY | ENABLE
    swd.write32(DFSR, 0x1F)
    swd.dhcsr(C_DEBUGEN)
    swd.wait_halted()
    assert swd.read_reg(15) == target
    assert swd.read32(DFSR) & 2  # BKPT
    swd.write32(0xE0002000, 2)  # disabled: resuming runs past it
    swd.dhcsr(C_DEBUGEN)
    time.sleep(0.01)
    assert swd.read32(DHCSR) & S_HALT == 0


# Thumb code at 0x20000000: unlock FLASH, set PG, store r2 as a half-word at [r1],
# wait for BSY, return FLASH_SR in r0, BKPT. Hand-assembled (see the comments).
FLASH_ROUTINE = [
    0x4806,  # ldr r0, =0x40022000
    0x4B07,  # ldr r3, =KEY1
    0x6043,  # str r3, [r0, #4]     KEYR
    0x4B07,  # ldr r3, =KEY2
    0x6043,  # str r3, [r0, #4]
    0x2301,  # movs r3, #1
    0x6103,  # str r3, [r0, #0x10]  CR = PG
    0x800A,  # strh r2, [r1]        the half-word, programmed by the FLASH interface
    0x68C3,  # ldr r3, [r0, #0xC]   SR
    0x07DB,  # lsls r3, r3, #31     BSY?
    0xD1FC,  # bne .-4
    0x68C0,  # ldr r0, [r0, #0xC]   return SR
    0xBE00,  # bkpt #0
    0xBF00,  # nop
]
LITERALS = [0x4002_2000, 0x4567_0123, 0xCDEF_89AB]


def test_code_run_on_the_core_programs_flash_through_the_controller(hello):
    _, swd = hello
    swd.dhcsr(C_DEBUGEN | C_HALT)
    swd.wait_halted()
    words = [FLASH_ROUTINE[i] | FLASH_ROUTINE[i + 1] << 16 for i in range(0, len(FLASH_ROUTINE), 2)]
    for i, word in enumerate(words + LITERALS):
        swd.write32(0x2000_0000 + 4 * i, word)
    # a debugger's own write into flash programs nothing: FLASH_CR.PG is clear
    target = 0x0807_F000
    assert swd.read32(target) == 0xFFFF_FFFF
    swd.write16(target, 0x1234)
    assert swd.read32(target) == 0xFFFF_FFFF
    swd.write32(0x4002_200C, 0x34)  # clear PGERR/EOP
    for regsel, value in ((1, target), (2, 0xA55A), (15, 0x2000_0000), (16, 1 << 24),
                          (13, 0x2000_4000)):
        swd.write_reg(regsel, value)
    swd.write32(DFSR, 0x1F)
    swd.dhcsr(C_DEBUGEN)
    swd.wait_halted()
    assert swd.read32(DFSR) & 2  # stopped at the BKPT
    assert swd.read_reg(15) == 0x2000_0018
    assert swd.read_reg(0) & 0x35 == 0x20  # EOP, no error
    assert swd.read32(target) & 0xFFFF == 0xA55A


def test_console_reaches_the_pseudo_terminal_and_back():
    before = set(threading.enumerate())
    target = open_board("echo")
    try:
        path = target.console_path
        fd = os.open(path, os.O_RDWR | os.O_NOCTTY)
        try:
            got = b""
            deadline = time.monotonic() + 10
            os.write(fd, b"ping\r")
            while b"ping" not in got and time.monotonic() < deadline:
                if select.select([fd], [], [], 0.1)[0]:
                    got += os.read(fd, 1024)
            assert b"ping" in got, got
        finally:
            os.close(fd)
    finally:
        target.close()
    assert set(threading.enumerate()) <= before
