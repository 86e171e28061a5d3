"""The optional ``physical`` extra (pyOCD and pyserial): what to say when it is missing.

Modules that need it import it inside ``try`` blocks that raise :class:`ExtraMissing`,
so a plain ``pip install hwut`` never fails on an import it did not ask for.
"""
from __future__ import annotations

PHYSICAL = "the physical extra (pyOCD and pyserial): pip install 'hwut[physical]'"


class ExtraMissing(ImportError):
    """A part of HWUT whose optional dependencies are not installed."""

    def __init__(self, what: str, cause: ImportError) -> None:
        super().__init__(f"{what} needs {PHYSICAL} ({cause})")
