"""Systems on chip as data: memories and peripherals with their addresses and IRQs."""
from .spec import MemorySpec, PeripheralSpec, SocSpec

__all__ = ["MemorySpec", "PeripheralSpec", "SocSpec"]
