"""HWUT: run microcontroller firmware on emulated or real boards; return what the board printed."""

__version__ = "0.1.0"
API_VERSION = "v1"
