"""pyOCD target definitions HWUT ships, for parts pyOCD has no built-in target for.

``stm32f303retx`` (the name the STM32F3 CMSIS pack gives the NUCLEO-F303RE's part):
memory map and a flash algorithm built from our own C source
(``fixtures/flashalgo``, committed as ``backends/flashalgo/stm32f3_flash.elf``).
``register()`` adds it to pyOCD's target table unless a target of that name is
already there; a CMSIS pack given to a session still replaces it (pyOCD adds pack
targets over the table's entries).

pyOCD is the ``physical`` extra: it is imported inside ``register`` only, guarded.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from elftools.elf.elffile import ELFFile
from elftools.elf.sections import SymbolTableSection

from hwut.sim.peripherals.flash_if import PAGE_SIZE
from hwut.sim.soc.stm32f303 import STM32F303RE

from .extras import ExtraMissing

ALGO_ELF = Path(__file__).resolve().parent / "flashalgo" / "stm32f3_flash.elf"
TARGET_NAME = "stm32f303retx"
#: The part's memories, from the same SoC data the emulator runs (one source per fact).
_FLASH, _SRAM, _CCM = (STM32F303RE.memory(n) for n in ("flash", "sram", "ccmram"))
FLASH_BASE, FLASH_SIZE, SECTOR = _FLASH.base, _FLASH.size, PAGE_SIZE
SRAM_BASE, SRAM_SIZE = _SRAM.base, _SRAM.size
CCM_BASE, CCM_SIZE = _CCM.base, _CCM.size
PAGE = 0x400
#: The algorithm's SRAM: code at 0x20000000, stack below 0x20001000, two page buffers.
ALGO_BASE = SRAM_BASE
_ENTRY_POINTS = {"pc_init": "Init", "pc_unInit": "UnInit", "pc_eraseAll": "EraseChip",
                 "pc_erase_sector": "EraseSector", "pc_program_page": "ProgramPage"}


def flash_algo(path: Path = ALGO_ELF, load_address: int = ALGO_BASE) -> dict[str, Any]:
    """pyOCD's flash-algorithm dictionary for the algorithm ELF at ``path``."""
    with path.open("rb") as f:
        elf = ELFFile(f)
        text_section, symtab = elf.get_section_by_name(".text"), elf.get_section_by_name(".symtab")
        assert text_section is not None and isinstance(symtab, SymbolTableSection), path
        text = text_section.data()
        symbols = {s.name: s["st_value"] for s in symtab.iter_symbols()}
    text += b"\0" * (-len(text) % 4)
    words = [int.from_bytes(text[i:i + 4], "little") for i in range(0, len(text), 4)]
    algo: dict[str, Any] = {
        "load_address": load_address,
        "instructions": words,
        "static_base": load_address + len(text),  # no static data: r9 unused
        "begin_stack": load_address + 0x1000,
        "begin_data": load_address + 0x1000,
        "page_buffers": [load_address + 0x1000, load_address + 0x1000 + PAGE],
        "min_program_length": 2,
        "analyzer_supported": False,
    }
    if symbols.get("algo_return") != 0:
        raise ValueError(f"{path}: the BKPT pyOCD returns to must be at offset 0")
    for key, name in _ENTRY_POINTS.items():
        algo[key] = load_address + (symbols[name] | 1)
    return algo


def register() -> bool:
    """Add ``stm32f303retx`` to pyOCD's targets; False if one was there already."""
    try:
        from pyocd.core.memory_map import FlashRegion, MemoryMap, RamRegion
        from pyocd.coresight.coresight_target import CoreSightTarget
        from pyocd.target import TARGET
    except ImportError as exc:
        raise ExtraMissing(f"the pyOCD target {TARGET_NAME}", exc) from exc

    if TARGET_NAME in TARGET:
        return False

    class STM32F303RETx(CoreSightTarget):
        VENDOR = "STMicroelectronics"
        MEMORY_MAP = MemoryMap(
            FlashRegion(start=FLASH_BASE, length=FLASH_SIZE, blocksize=SECTOR, page_size=PAGE,
                        is_boot_memory=True, algo=flash_algo()),
            RamRegion(start=SRAM_BASE, length=SRAM_SIZE),
            RamRegion(start=CCM_BASE, length=CCM_SIZE),
        )

        def __init__(self, session: Any) -> None:
            super().__init__(session, self.MEMORY_MAP)

    TARGET[TARGET_NAME] = STM32F303RETx
    return True
