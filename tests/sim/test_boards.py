"""Boards are data: a second F3 board is an entry, not new code."""
from __future__ import annotations

import pytest

from hwut.sim.boards import BOARDS, board

from .conftest import run_firmware


def test_nucleo_wiring():
    b = board("nucleo-f303re")
    assert b.console == "USART2" and b.hse_hz == 8_000_000
    assert [(led.name, led.port, led.pin) for led in b.leds] == [("LD2", "GPIOA", 5)]
    assert [(x.name, x.port, x.pin, x.idle_level) for x in b.buttons] == [("B1", "GPIOC", 13, 1)]


def test_discovery_console_is_usart1():
    # hello prints on USART2, which is not the F3DISCOVERY's console: its log stays empty
    r = run_firmware("hello", 0.02, board_name="stm32f3discovery")
    assert r.uart == b"" and r.result.instructions > 0
    assert len(board("stm32f3discovery").leds) == 8


def test_unknown_board_names_the_known_ones():
    with pytest.raises(KeyError) as err:
        board("nucleo-f401re")
    assert all(name in str(err.value) for name in BOARDS)
