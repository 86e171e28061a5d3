"""Executable formats: ELF, Intel HEX and raw BIN, parsed into loadable segments.

The service validates uploads with the same parser the emulators load with, and
against the memory map of the board asked for (``MemoryMap``, from the backend's
``BoardInfo``), so an image that was accepted is one that board's backend can load.
Two refusals: ``InvalidFirmware`` (not a Cortex-M executable at all) and its
subclass ``DoesNotFit`` (an executable, but for memory this board lacks).

Parsing runs in the submit request's thread, so what it costs is bounded by the board,
never by what the upload claims:

* ELF: the header and at most ``MAX_PROGRAM_HEADERS`` program headers are read and
  checked before any segment's bytes are. A loadable segment (``PT_LOAD`` with file
  bytes) must hold no more bytes in the file than in memory, stay inside the 32-bit
  address space and inside the file; two segments may not overlap in memory (a loader
  would write one over the other: no linker makes that) nor load the same bytes of the
  file; and all of them together may not load more than the board's flash and RAM hold.
  So the bytes read are at most the file's size and the board's memory.
* Intel HEX: the data records are counted (a regular expression over the upload, up to
  the end-of-file record) before ``intelhex``, which keeps a dict entry (~100 bytes of
  Python memory) per data byte, sees the text; more data than the board's flash and RAM
  hold is refused first.
* BIN: the upload itself, within the service's executable size limit.

What is accepted is what the loaders load: every ``PT_LOAD`` segment's file bytes at its
physical address, every HEX data byte at its address, a BIN at the start of flash (or at
the address the job gives it).

A job may carry several images, as a lab flashes a bootloader and its application one
after the other (:func:`combine`): each is placed by its own addresses and must fit the
board's memory, no two may write the same byte (:class:`Overlap`, naming both and the
range), and together they must boot: the vector table check runs on the whole, not on
each (an application at 0x0800A000 is not what the core boots from).
"""
from __future__ import annotations

import io
import re
import struct
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from elftools.elf.enums import ENUM_E_MACHINE
from intelhex import IntelHex, IntelHexError

from .base import ARMV7M, MemoryMap, Region, RunRequest

FORMATS = ("elf", "hex", "bin")
#: Program headers an ELF may have. Firmware has a handful (flash, RAM data, RAM code,
#: ARM.exidx, GNU_STACK); 64 leaves room for any linker script and bounds the header read.
MAX_PROGRAM_HEADERS = 64
_HEX_RECORD = re.compile(rb":[0-9A-Fa-f]{10,}")
#: How much of an upload detect_format() looks at.
_DETECT_BYTES = 64 * 1024
#: An Intel HEX data record's length field, at the start of a line (intelhex's lines end
#: at "\n"; anything it would store starts so) ...
_HEX_DATA = re.compile(rb"^:([0-9A-Fa-f]{2})[0-9A-Fa-f]{4}00", re.MULTILINE)
#: ... and the end-of-file record, after which intelhex reads nothing.
_HEX_EOF = re.compile(rb"^:00[0-9A-Fa-f]{4}01", re.MULTILINE)
#: Elf32_Ehdr (ELF spec, figure 1-3) and Elf32_Phdr (figure 2-1), little-endian.
_EHDR = struct.Struct("<16sHHIIIIIHHHHHH")
_PHDR = struct.Struct("<IIIIIIII")
_EM_ARM = 40
_PT_LOAD = 1
_MACHINES = {number: name for name, number in ENUM_E_MACHINE.items() if name != "_default_"}
#: Where any Cortex-M may have its stack (the code region above the usual flash, and
#: the SRAM region): an initial SP there marks a vector table, if not for this board.
_ANY_STACK: tuple[Region, ...] = ((0x1000_0000, 0x3000_0000),)
#: Where any Cortex-M may execute from at reset (ARMv7-M code and SRAM regions).
_ANY_CODE: tuple[Region, ...] = ((0x0000_0000, 0x4000_0000),)


class InvalidFirmware(ValueError):
    """The upload is not an executable this board can run; the message says why."""


class DoesNotFit(InvalidFirmware):
    """A Cortex-M executable, but it needs memory the board asked for does not have."""


class Overlap(InvalidFirmware):
    """Two images of one job would write the same bytes; the message names both."""


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
    # a record is at most 521 characters: a bounded head, not a copy of the whole upload
    first_line = data[:_DETECT_BYTES].lstrip(b"\xef\xbb\xbf \t\r\n").split(b"\n", 1)[0].strip()
    if _HEX_RECORD.fullmatch(first_line):
        return "hex"
    return "bin"


def parse(data: bytes, fmt: str | None = None, memory: MemoryMap = ARMV7M, *,
          address: int | None = None, boot: bool = True) -> FirmwareImage:
    """Parse and check an executable against a board's memory map; raises
    InvalidFirmware (or DoesNotFit) with the reason.

    ``address``: where a BIN goes (default: the start of flash); an ELF or HEX places
    itself, so an address for one is refused. ``boot`` False skips the vector table check,
    for one image among several (:func:`combine` checks the whole)."""
    if not data:
        raise InvalidFirmware("the executable is empty")
    fmt = fmt or detect_format(data)
    if address is not None and fmt != "bin":
        raise InvalidFirmware(f"an address (0x{address:08x}) is for a BIN image only: "
                              f"{fmt.upper()} places itself by its own addresses")
    if fmt == "elf":
        image = _parse_elf(data, memory)
    elif fmt == "hex":
        image = _parse_hex(data, memory)
    elif fmt == "bin":
        base = memory.bin_base if address is None else address
        image = FirmwareImage("bin", (Segment(base, bytes(data)),))
    else:
        raise InvalidFirmware(f"unknown format {fmt!r}; allowed: {', '.join(FORMATS)}")
    if not boot:
        _check_regions(image, memory.regions)
    elif image.format == "bin":  # only its vector table says a BIN is firmware: that first
        _check_vector_table(image, memory)
        _check_regions(image, memory.regions)
    else:
        _check_regions(image, memory.regions)
        _check_vector_table(image, memory)
    return image


def load(path: Path, fmt: str | None = None, memory: MemoryMap = ARMV7M, *,
         address: int | None = None, boot: bool = True) -> FirmwareImage:
    return parse(Path(path).read_bytes(), fmt, memory, address=address, boot=boot)


def load_images(request: RunRequest, memory: MemoryMap = ARMV7M) -> FirmwareImage:
    """Every image of a run (``request.image_files()``) as one memory content, checked
    as at submit: what an emulator loads."""
    files = request.image_files()
    several = len(files) > 1
    return combine([(f.name or f.path.name,
                     load(f.path, f.format, memory, address=f.address, boot=not several))
                    for f in files], memory)


def combine(parts: Sequence[tuple[str, FirmwareImage]], memory: MemoryMap = ARMV7M
            ) -> FirmwareImage:
    """Several images of one job as the one memory content a lab would flash, in order:
    :class:`Overlap` (naming both images and the range) when two would write the same
    byte, and the vector table check on the whole. ``parts``: (name, image), each
    already parsed (with ``boot=False`` when there are several). Its format is the first
    image's, its entry point the first that has one."""
    if not parts:
        raise InvalidFirmware("a job needs at least one image")
    spans = sorted((seg.address, seg.address + len(seg.data), n)
                   for n, (_, image) in enumerate(parts) for seg in image.segments)
    reach, owner = -1, -1
    for start, end, n in spans:
        if start < reach and n != owner:
            first, second = sorted((owner, n))
            raise Overlap(f"images {parts[first][0]!r} and {parts[second][0]!r} overlap at "
                          f"0x{start:08x}-0x{min(end, reach) - 1:08x}: both would write "
                          "those bytes (a lab would flash one over the other)")
        if end > reach:
            reach, owner = end, n
    entry = next((image.entry for _, image in parts if image.entry is not None), None)
    whole = FirmwareImage(parts[0][1].format,
                          tuple(seg for _, image in parts for seg in image.segments), entry)
    _check_vector_table(whole, memory)
    return whole


def _capacity(memory: MemoryMap) -> int:
    """The most bytes an image may load on the board: its regions' sizes together."""
    return sum(size for _, size in memory.regions)


def _too_big(what: str, size: int, memory: MemoryMap) -> DoesNotFit:
    return DoesNotFit(f"{what} {size} bytes, more than the board's flash and RAM hold "
                      f"({_capacity(memory)} bytes: {_regions_text(memory.regions)})")


def _parse_elf(data: bytes, memory: MemoryMap) -> FirmwareImage:
    """Header, then program headers, then the checks, and only then the segments' bytes."""
    if not data.startswith(b"\x7fELF"):
        raise InvalidFirmware("ELF cannot be read: it does not start with the ELF magic "
                              "number (7f 45 4c 46)")
    if len(data) < 20:
        raise InvalidFirmware(f"ELF is truncated: its header needs {_EHDR.size} bytes, "
                              f"the file holds {len(data)}")
    ei_class, ei_data = data[4], data[5]
    if ei_class not in (1, 2) or ei_data not in (1, 2):
        raise InvalidFirmware(f"ELF cannot be read: invalid class ({ei_class}) or data "
                              f"encoding ({ei_data}) in its identification bytes")
    (machine,) = struct.unpack_from("<H" if ei_data == 1 else ">H", data, 18)
    if machine != _EM_ARM:
        raise InvalidFirmware(f"ELF is for {_MACHINES.get(machine, f'machine {machine}')}, "
                              "not ARM (EM_ARM)")
    if ei_class != 1 or ei_data != 1:
        raise InvalidFirmware("ELF must be 32-bit little-endian for a Cortex-M")
    if len(data) < _EHDR.size:
        raise InvalidFirmware(f"ELF is truncated: its header needs {_EHDR.size} bytes, "
                              f"the file holds {len(data)}")
    header = _EHDR.unpack_from(data)
    entry, phoff, phentsize, phnum = header[4], header[5], header[9], header[10]
    loads = _loadable(data, phoff, phentsize, phnum)
    if not loads:
        raise InvalidFirmware("ELF has no loadable segments")
    _refuse_overlaps(loads)
    total = sum(size for _, _, size in loads)
    if total > _capacity(memory):
        raise _too_big("ELF loads", total, memory)
    segments = tuple(Segment(address, bytes(data[offset:offset + size]))
                     for address, offset, size in loads)
    return FirmwareImage("elf", segments, entry)


def _loadable(data: bytes, phoff: int, phentsize: int, phnum: int
              ) -> list[tuple[int, int, int]]:
    """(physical address, file offset, file size) of each PT_LOAD segment with file bytes,
    checked against the file and the address space."""
    if phnum > MAX_PROGRAM_HEADERS:
        raise InvalidFirmware(f"ELF has {phnum} program headers; at most "
                              f"{MAX_PROGRAM_HEADERS} are accepted (firmware has a handful)")
    if phnum and phentsize < _PHDR.size:
        raise InvalidFirmware(f"ELF cannot be read: its program headers are {phentsize} "
                              f"bytes each, not {_PHDR.size}")
    if phnum and phoff + (phnum - 1) * phentsize + _PHDR.size > len(data):
        raise InvalidFirmware(f"ELF is truncated: its {phnum} program headers at offset "
                              f"{phoff} end past the end of the file ({len(data)} bytes)")
    loads = []
    for n in range(phnum):
        p_type, offset, _, paddr, filesz, memsz, _, _ = _PHDR.unpack_from(
            data, phoff + n * phentsize)
        if p_type != _PT_LOAD or filesz == 0:
            continue
        if filesz > memsz:
            raise InvalidFirmware(f"ELF segment at 0x{paddr:08x} has more bytes in the file "
                                  f"({filesz}) than in memory ({memsz})")
        if paddr + memsz > 1 << 32:
            raise InvalidFirmware(f"ELF segment at 0x{paddr:08x} (+{memsz} bytes) runs past "
                                  "the end of the 32-bit address space")
        if offset + filesz > len(data):
            raise InvalidFirmware(
                f"ELF is truncated: the segment at 0x{paddr:08x} needs {filesz} bytes, "
                f"the file holds {max(0, len(data) - offset)}")
        loads.append((paddr, offset, filesz))
    return loads


def _refuse_overlaps(loads: list[tuple[int, int, int]]) -> None:
    """Segments that a loader would write over each other, or that load the same file
    bytes twice: no linker output does either."""
    by_address = sorted(loads)
    for (a, _, a_size), (b, _, b_size) in zip(by_address, by_address[1:]):
        if a + a_size > b:
            raise InvalidFirmware(
                f"ELF segments overlap in memory: 0x{a:08x}-0x{a + a_size - 1:08x} and "
                f"0x{b:08x}-0x{b + b_size - 1:08x} (a loader would write one over the other)")
    by_offset = sorted(loads, key=lambda load: load[1])
    for (a, a_off, a_size), (b, b_off, _) in zip(by_offset, by_offset[1:]):
        if a_off + a_size > b_off:
            raise InvalidFirmware(f"ELF segments at 0x{a:08x} and 0x{b:08x} load the same "
                                  f"bytes of the file (from offset {b_off})")


def _hex_data_bytes(data: bytes) -> int:
    """An upper bound of the data bytes intelhex would store: the data records' length
    fields up to the end-of-file record, without decoding anything."""
    eof = _HEX_EOF.search(data)
    end = eof.start() if eof else len(data)
    return sum(int(m.group(1), 16) for m in _HEX_DATA.finditer(data, 0, end))


def _parse_hex(data: bytes, memory: MemoryMap) -> FirmwareImage:
    size = _hex_data_bytes(data)
    if size > _capacity(memory):
        raise _too_big("Intel HEX holds", size, memory)
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
