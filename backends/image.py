"""Executable formats: ELF, Intel HEX and raw BIN, parsed into loadable segments.

The service validates uploads with the same parser the emulators load with, so
an image that was accepted is one a backend can load.
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

FORMATS = ("elf", "hex", "bin")

#: Where a Cortex-M image may place code and data: (start, size). The STM32F303RE's
#: flash and its alias at 0, CCM SRAM and SRAM; generous enough for any F3 part.
DEFAULT_REGIONS: tuple[tuple[int, int], ...] = (
    (0x0000_0000, 0x0008_0000),
    (0x0800_0000, 0x0008_0000),
    (0x1000_0000, 0x0000_4000),
    (0x2000_0000, 0x0001_0000),
)
FLASH_BASE = 0x0800_0000
_HEX_RECORD = re.compile(rb":[0-9A-Fa-f]{10,}")


class InvalidFirmware(ValueError):
    """The upload is not an executable this board can run; the message says why."""


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


def parse(data: bytes, fmt: str | None = None,
          regions: Sequence[tuple[int, int]] = DEFAULT_REGIONS,
          bin_base: int = FLASH_BASE) -> FirmwareImage:
    """Parse and check an executable; raises InvalidFirmware with the reason."""
    if not data:
        raise InvalidFirmware("the executable is empty")
    fmt = fmt or detect_format(data)
    if fmt == "elf":
        image = _parse_elf(data)
    elif fmt == "hex":
        image = _parse_hex(data)
    elif fmt == "bin":
        image = FirmwareImage("bin", (Segment(bin_base, bytes(data)),))
    else:
        raise InvalidFirmware(f"unknown format {fmt!r}; allowed: {', '.join(FORMATS)}")
    _check_regions(image, regions)
    _check_vector_table(image, regions)
    return image


def load(path: Path, fmt: str | None = None) -> FirmwareImage:
    return parse(Path(path).read_bytes(), fmt)


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


def _inside(address: int, size: int, regions: Sequence[tuple[int, int]]) -> bool:
    return any(base <= address and address + size <= base + length
               for base, length in regions)


def _check_regions(image: FirmwareImage, regions: Sequence[tuple[int, int]]) -> None:
    for seg in image.segments:
        if not _inside(seg.address, len(seg.data), regions):
            raise InvalidFirmware(
                f"{image.format.upper()} places {len(seg.data)} bytes at "
                f"0x{seg.address:08x}, outside the board's flash and RAM "
                f"({', '.join(f'0x{b:08x}+0x{s:x}' for b, s in regions)})")


def _check_vector_table(image: FirmwareImage, regions: Sequence[tuple[int, int]]) -> None:
    """A Cortex-M boots from a vector table: initial SP in RAM, reset handler in Thumb code."""
    base = min((s.address for s in image.segments if s.address >= FLASH_BASE or s.address < 0x0008_0000),
               default=image.segments[0].address)
    sp, reset = image.word(base), image.word(base + 4)
    if sp is None or reset is None:
        raise InvalidFirmware(f"no vector table at 0x{base:08x}: the image is too short")
    if not (_inside(sp - 4, 4, regions) and sp & 3 == 0 and sp >= 0x1000_0000):
        raise InvalidFirmware(
            f"the first word (initial stack pointer 0x{sp:08x}) does not point into RAM: "
            "not a Cortex-M vector table")
    if not (reset & 1 and _inside(reset & ~1, 2, regions)):
        raise InvalidFirmware(
            f"the second word (reset handler 0x{reset:08x}) is not a Thumb address in "
            "flash or RAM: not a Cortex-M vector table")
