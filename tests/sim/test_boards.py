"""Boards are data: a second F3 board is an entry, not new code."""
from __future__ import annotations

import dataclasses
import struct

import pytest

from hwut.sim.boards import BOARDS, board
from hwut.sim.machine import Machine
from hwut.sim.soc.stm32f303 import FLASH_SIZE_REGISTER, STM32F303RE, STM32F303VC

from .conftest import expected, run_firmware


def test_nucleo_wiring():
    b = board("nucleo-f303re")
    assert b.console == "USART2" and b.hse_hz == 8_000_000
    assert [(led.name, led.port, led.pin) for led in b.leds] == [("LD2", "GPIOA", 5)]
    assert [(x.name, x.port, x.pin, x.idle_level) for x in b.buttons] == [("B1", "GPIOC", 13, 1)]


def test_discovery_runs_its_own_fixture_on_usart1():
    """disco_hello is linked for the F303VC (stack at the top of 40 KiB) and prints on
    USART1, the discovery's console, the flash size the chip reports: 256 KiB."""
    r = run_firmware("disco_hello", 0.1, board_name="stm32f3discovery")
    assert r.uart == expected("disco_hello") == (
        b"HWUT hello from STM32F3DISCOVERY\r\nFLASH_KB=256\r\n")
    assert r.result.exit_code == 0 and not r.result.faults
    assert len(board("stm32f3discovery").leds) == 8
    # on the nucleo the same image runs (its memory is larger) but USART1 is no console
    r = run_firmware("disco_hello", 0.1)
    assert r.uart == b"" and r.result.exit_code == 0


def test_a_nucleo_image_overflows_the_discovery_sram():
    # hello's stack starts at 0x20010000, past the VC's 40 KiB: the first push faults
    r = run_firmware("hello", 0.02, board_name="stm32f3discovery")
    assert r.uart == b""
    assert any("0x2000fff8" in fault for fault in r.result.faults), r.result.faults


def test_the_discovery_carries_an_f303vc():
    vc, re = board("stm32f3discovery").soc, board("nucleo-f303re").soc
    assert vc is STM32F303VC and re is STM32F303RE
    sizes = {s.name: {m.name: (m.base, m.size) for m in s.memories if m.name != "system"}
             for s in (vc, re)}
    assert sizes == {
        "stm32f303vc": {"flash": (0x0800_0000, 256 * 1024), "sram": (0x2000_0000, 40 * 1024),
                        "ccmram": (0x1000_0000, 8 * 1024)},
        "stm32f303re": {"flash": (0x0800_0000, 512 * 1024), "sram": (0x2000_0000, 64 * 1024),
                        "ccmram": (0x1000_0000, 16 * 1024)},
    }


def test_variants_differ_in_data_only():
    """Same core, peripherals (at the same places, with the same IRQs) and wiring; only
    the memories, the GPIO ports and the device id differ: the xB/xC die has A-F, the
    xD/xE die A-H (GPIOG/GPIOH, issue 13); DBGMCU_IDCODE reads DEV_ID 0x422 / 0x446."""
    vc, re = STM32F303VC, STM32F303RE
    assert (vc.cpu, vc.irq_count, vc.priority_bits, vc.wiring) == \
        (re.cpu, re.irq_count, re.priority_bits, re.wiring)
    gh = ("DBGMCU", "GPIOG", "GPIOH")
    assert [p for p in vc.peripherals if p.name not in gh] == \
        [p for p in re.peripherals if p.name not in gh]
    assert type(vc) is type(re) and dataclasses.fields(vc) == dataclasses.fields(re)
    ids = {soc.name: next(p.args["idcode"] for p in soc.peripherals if p.name == "DBGMCU")
           & 0xFFF for soc in (vc, re)}
    assert ids == {"stm32f303vc": 0x422, "stm32f303re": 0x446}
    ports = sorted(p.name for p in vc.peripherals if p.name.startswith("GPIO"))
    assert ports == [f"GPIO{x}" for x in "ABCDEF"]
    ports = {p.name: p.base for p in re.peripherals if p.name.startswith("GPIO")}
    assert ports == {f"GPIO{x}": 0x4800_0000 + 0x400 * i for i, x in enumerate("ABCDEFGH")}
    assert ports["GPIOG"] == 0x4800_1800 and ports["GPIOH"] == 0x4800_1C00
    ahb2 = {base: size for base, size in vc.peripheral_space}, \
        {base: size for base, size in re.peripheral_space}
    assert ahb2[0][0x4800_0000] == 0x1800 and ahb2[1][0x4800_0000] == 0x2000
    assert [s for s in vc.peripheral_space if s[0] != 0x4800_0000] == \
        [s for s in re.peripheral_space if s[0] != 0x4800_0000]


@pytest.mark.parametrize("name, kib", [("stm32f3discovery", 256), ("nucleo-f303re", 512)])
def test_flash_size_register_and_interface_agree_with_the_spec(name, kib):
    m = Machine(board(name))
    assert m.bus.read(FLASH_SIZE_REGISTER, 2) == kib
    assert struct.unpack("<H", bytes(m.uc.mem_read(FLASH_SIZE_REGISTER, 2)))[0] == kib
    flash = m.peripherals["FLASH"]
    assert (flash.flash_base, flash.flash_size) == (0x0800_0000, kib * 1024)


def test_unknown_board_names_the_known_ones():
    with pytest.raises(KeyError) as err:
        board("nucleo-f401re")
    assert all(name in str(err.value) for name in BOARDS)
