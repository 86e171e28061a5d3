"""Executable formats: ELF, Intel HEX and raw BIN, parsed into loadable segments.

The service validates uploads with the same parser the emulators load with, and
against the memory map of the board asked for (``MemoryMap``, from the backend's
``BoardInfo``), so an image that was accepted is one that board's backend can load.
Two refusals: ``InvalidFirmware`` (not a Cortex-M executable at all) and its
subclass ``DoesNotFit`` (an executable, but for memory this board lacks).
"""
from __future__ import annotations

import io
import re
import struct
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from elftools.common.exceptions import ELFError
from elftools.elf.elffile import ELFFile
from intelhex import IntelHex, IntelHexError

from .base import ARMV7M, MemoryMap, Region

FORMATS = ("elf", "hex", "bin")
_HEX_RECORD = re.compile(rb":[0-9A-Fa-f]{10,}")
#: Where any Cortex-M may have its stack (the code region above the usual flash, and
#: the SRAM region): an initial SP there marks a vector table, if not for this board.
_ANY_STACK: tuple[Region, ...] = ((0x1000_0000, 0x3000_0000),)
#: Where any Cortex-M may execute from at reset (ARMv7-M code and SRAM regions).
_ANY_CODE: tuple[Region, ...] = ((0x0000_0000, 0x4000_0000),)


class InvalidFirmware(ValueError):
    """The upload is not an executable this board can run; the message says why."""


class DoesNotFit(InvalidFirmware):
    """A Cortex-M executable, but it needs memory the board asked for does not have."""


@dataclass(frozen=True)
class Segment:
    address: int
    data: bytes


@dataclass(frozen=True)
class FirmwareImage:
    format: str
    segments: tuple[Segment, ...]
    entry: int | None = None

    def word(self, address: int) -> int | None:
        """The 32-bit little-endian word at ``address`` if the image holds it."""
        for seg in self.segments:
            off = address - seg.address
            if 0 <= off and off + 4 <= len(seg.data):
                return struct.unpack_from("<I", seg.data, off)[0]
        return None


def detect_format(data: bytes) -> str:
    if data.startswith(b"\x7fELF"):
        return "elf"
    first_line = data.lstrip(b"\xef\xbb\xbf \t\r\n").split(b"\n", 1)[0].strip()
    if _HEX_RECORD.fullmatch(first_line):
        return "hex"
    return "bin"


def parse(data: bytes, fmt: str | None = None, memory: MemoryMap = ARMV7M) -> FirmwareImage:
    """Parse and check an executable against a board's memory map; raises
    InvalidFirmware (or DoesNotFit) with the reason."""
    if not data:
        raise InvalidFirmware("the executable is empty")
    fmt = fmt or detect_format(data)
    if fmt == "elf":
        image = _parse_elf(data)
    elif fmt == "hex":
        image = _parse_hex(data)
    elif fmt == "bin":
        image = FirmwareImage("bin", (Segment(memory.bin_base, bytes(data)),))
    else:
        raise InvalidFirmware(f"unknown format {fmt!r}; allowed: {', '.join(FORMATS)}")
    if image.format == "bin":  # only its vector table says a BIN is firmware: that first
        _check_vector_table(image, memory)
        _check_regions(image, memory.regions)
    else:
        _check_regions(image, memory.regions)
        _check_vector_table(image, memory)
    return image


def load(path: Path, fmt: str | None = None, memory: MemoryMap = ARMV7M) -> FirmwareImage:
    return parse(Path(path).read_bytes(), fmt, memory)


def _parse_elf(data: bytes) -> FirmwareImage:
    try:
        elf = ELFFile(io.BytesIO(data))
        machine = elf["e_machine"]
        if machine != "EM_ARM":
            raise InvalidFirmware(f"ELF is for {machine}, not ARM (EM_ARM)")
        if elf.elfclass != 32 or not elf.little_endian:
            raise InvalidFirmware("ELF must be 32-bit little-endian for a Cortex-M")
        segments = []
        for seg in elf.iter_segments():
            if seg["p_type"] != "PT_LOAD" or seg["p_filesz"] == 0:
                continue
            data = seg.data()
            if len(data) != seg["p_filesz"]:
                raise InvalidFirmware(
                    f"ELF is truncated: the segment at 0x{seg['p_paddr']:08x} needs "
                    f"{seg['p_filesz']} bytes, the file holds {len(data)}")
            segments.append(Segment(seg["p_paddr"], data))
        entry = elf["e_entry"]
    except ELFError as exc:
        raise InvalidFirmware(f"ELF cannot be read: {exc}") from None
    except (struct.error, ValueError, IndexError) as exc:
        if isinstance(exc, InvalidFirmware):
            raise
        raise InvalidFirmware(f"ELF is truncated or damaged: {exc}") from None
    if not segments:
        raise InvalidFirmware("ELF has no loadable segments")
    return FirmwareImage("elf", tuple(segments), entry)


def _parse_hex(data: bytes) -> FirmwareImage:
    ih = IntelHex()
    try:
        ih.loadhex(io.StringIO(data.decode("ascii")))
    except UnicodeDecodeError:
        raise InvalidFirmware("Intel HEX must be ASCII text") from None
    except IntelHexError as exc:
        raise InvalidFirmware(f"Intel HEX is invalid: {exc}") from None
    segments = tuple(Segment(start, ih.tobinstr(start=start, end=end - 1))
                     for start, end in ih.segments())
    if not segments:
        raise InvalidFirmware("Intel HEX holds no data")
    start = ih.start_addr or {}
    entry = start.get("EIP")
    return FirmwareImage("hex", segments, entry)


def _inside(address: int, size: int, regions: Sequence[Region]) -> bool:
    return any(base <= address and address + size <= base + length
               for base, length in regions)


def _regions_text(regions: Sequence[Region]) -> str:
    return ", ".join(f"0x{b:08x}+0x{s:x}" for b, s in regions)


def _check_regions(image: FirmwareImage, regions: Sequence[Region]) -> None:
    for seg in image.segments:
        if not _inside(seg.address, len(seg.data), regions):
            end = seg.address + len(seg.data)
            raise DoesNotFit(
                f"{image.format.upper()} places {len(seg.data)} bytes at "
                f"0x{seg.address:08x}-0x{end - 1:08x}, outside the board's flash and RAM "
                f"({_regions_text(regions)})")


def _vector_base(image: FirmwareImage, memory: MemoryMap) -> int:
    """Where the image's vector table is: at the start of flash (or at 0, where the core
    fetches it at reset) when the image places anything there, else at its lowest address."""
    for base in dict.fromkeys((memory.bin_base, 0)):
        if image.word(base) is not None:
            return base
    return min(s.address for s in image.segments)


def _check_vector_table(image: FirmwareImage, memory: MemoryMap) -> None:
    """A Cortex-M boots from a vector table (ARMv7-M ARM B1.5.5, TakeReset): SP_main is
    word 0 with its low two bits ignored, the PC word 1 with bit 0 (Thumb) required.

    Refused as not an executable (InvalidFirmware): words that no Cortex-M could boot
    from. Refused as not fitting (DoesNotFit): a stack or reset handler that would be
    valid on some Cortex-M but lies outside this board's RAM or code.
    """
    base = _vector_base(image, memory)
    raw_sp, reset = image.word(base), image.word(base + 4)
    if raw_sp is None or reset is None:
        raise InvalidFirmware(f"no vector table at 0x{base:08x}: the image is too short")
    sp, code = raw_sp & ~3, reset & ~1  # the core ignores bits [1:0] of the initial SP
    problems = []
    if not _inside(sp - 4, 4, memory.ram):
        problems.append(f"the first word of the vector table (initial stack pointer "
                        f"0x{raw_sp:08x}) does not point into RAM")
    if not (reset & 1 and _inside(code, 2, memory.regions)):
        problems.append(f"the second word of the vector table (reset handler 0x{reset:08x}) "
                        "is not a Thumb address in flash or RAM")
    if not problems:
        return
    if _inside(sp - 4, 4, _ANY_STACK) and reset & 1 and _inside(code, 2, _ANY_CODE):
        raise DoesNotFit(f"{'; '.join(problems)} of this board (RAM "
                         f"{_regions_text(memory.ram)}; flash and RAM "
                         f"{_regions_text(memory.regions)})")
    raise InvalidFirmware(f"{problems[0]}: not a Cortex-M vector table")
