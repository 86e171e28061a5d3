"""Boards as data: a SoC plus its wiring (console UART, LEDs, buttons, crystals)."""
from .spec import BOARDS, BoardSpec, Button, Led, board

__all__ = ["BOARDS", "BoardSpec", "Button", "Led", "board"]
