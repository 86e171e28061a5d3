"""Executable parsing and validation: good images load, bad inputs say why, and an image
is held to the memory map of the board it is for (from the backend's BoardInfo)."""
from __future__ import annotations

import io
import re
import struct
import tracemalloc
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from intelhex import IntelHex

from hwut.backends.base import ARMV7M, MemoryMap
from hwut.backends.image import (
    DoesNotFit,
    FirmwareImage,
    InvalidFirmware,
    Segment,
    detect_format,
    load,
    parse,
)
from hwut.backends.sim import SimBackend

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures"


def memory(board: str) -> MemoryMap:
    info = SimBackend.board_info(board)
    assert info is not None
    return info.memory


NUCLEO, DISCO = memory("nucleo-f303re"), memory("stm32f3discovery")


def vectors(sp: int, reset: int, size: int = 64) -> bytes:
    """A BIN image: the two words a Cortex-M reads at reset, then padding."""
    return struct.pack("<II", sp, reset) + bytes(size - 8)


def board_of(fixture: Path) -> MemoryMap:
    return DISCO if fixture.stem.startswith("disco_") else NUCLEO


@pytest.mark.parametrize("fmt", ["elf", "bin", "hex"])
def test_every_fixture_parses_to_the_same_bytes(fmt):
    for elf in sorted((FIXTURES / "build").glob("*.elf")):
        ref = load(elf, memory=board_of(elf))
        base = min(s.address for s in ref.segments)  # 0x0800A000 for an application
        img = load(elf.with_suffix(f".{fmt}"), memory=board_of(elf),
                   address=base if fmt == "bin" and base != 0x0800_0000 else None)
        assert img.format == fmt
        assert img.word(base) == ref.word(base)
        assert img.word(base + 4) == ref.word(base + 4)


@pytest.mark.parametrize("name, fragment", [
    ("x86.elf", "not ARM"),
    ("truncated.elf", "ELF"),
    ("bad_checksum.hex", "Intel HEX is invalid"),
    ("random.bin", "vector table"),
    ("empty.bin", "empty"),
])
def test_bad_inputs_are_refused_with_a_reason(name, fragment):
    with pytest.raises(InvalidFirmware) as err:
        load(FIXTURES / "bad" / name, memory=NUCLEO)
    assert fragment in str(err.value)
    assert not isinstance(err.value, DoesNotFit)  # not executables at all


def test_detects_formats_by_content():
    assert detect_format(b"\x7fELF...") == "elf"
    assert detect_format(b":10000000000102030405060708090A0B0C0D0E0F78\n") == "hex"
    assert detect_format(b":\xb6\x24garbage") == "bin"
    assert detect_format(b"\x00\x10\x00\x20") == "bin"


def test_the_board_memory_maps_come_from_the_soc_specs():
    assert NUCLEO == MemoryMap(
        regions=((0x0, 0x80000), (0x0800_0000, 0x80000), (0x1000_0000, 0x4000),
                 (0x2000_0000, 0x10000)),
        ram=((0x2000_0000, 0x10000), (0x1000_0000, 0x4000)), bin_base=0x0800_0000)
    assert DISCO == MemoryMap(
        regions=((0x0, 0x40000), (0x0800_0000, 0x40000), (0x1000_0000, 0x2000),
                 (0x2000_0000, 0xA000)),
        ram=((0x2000_0000, 0xA000), (0x1000_0000, 0x2000)), bin_base=0x0800_0000)


def test_a_bin_goes_where_the_board_says():
    image = parse(vectors(0x2000_A000, 0x0800_0009), "bin", DISCO)
    assert [s.address for s in image.segments] == [0x0800_0000]
    image = parse(vectors(0x2000_A000, 0x0000_0009), "bin", ARMV7M)
    assert [s.address for s in image.segments] == [0x0]


def hex_image(*segments: tuple[int, bytes]) -> bytes:
    ih = IntelHex()
    for address, data in segments:
        ih.puts(address, data)
    out = io.StringIO()
    ih.write_hex_file(out)
    return out.getvalue().encode()


def test_segments_outside_the_board_are_refused_as_not_fitting():
    image = hex_image((0x0800_0000, vectors(0x2001_0000, 0x0800_0009)),
                      (0x0808_0000, b"data past the end of flash"))
    with pytest.raises(DoesNotFit, match="places 26 bytes at 0x08080000-0x08080019, outside "
                                         "the board's flash and RAM"):
        parse(image, "hex", NUCLEO)
    assert len(parse(image, "hex", ARMV7M).segments) == 2  # the architecture allows it


@pytest.mark.parametrize("sp", [0x2000_FFFF, 0x2000_FFFE, 0x2000_FFFD, 0x2000_FFFC,
                                0x2001_0003, 0x2001_0000, 0x1000_4000, 0x2000_0004])
def test_the_initial_sp_low_two_bits_are_ignored_as_by_the_core(sp):
    """ARMv7-M TakeReset: SP_main = vector[0] AND 0xFFFFFFFC; it must leave a word of RAM."""
    image = parse(vectors(sp, 0x0800_0009), "bin", NUCLEO)
    assert image.word(0x0800_0000) == sp


@pytest.mark.parametrize("sp, error", [
    (0x2001_0004, DoesNotFit),    # past the end of the F303RE's 64 KiB SRAM
    (0x2000_0000, DoesNotFit),    # the stack would start below RAM: no room for a push
    (0x2000_0003, DoesNotFit),    # the same once bits [1:0] are dropped
    (0x0800_1000, InvalidFirmware),  # flash is no stack: not a vector table
    (0xFFFF_FFFF, InvalidFirmware),
])
def test_an_initial_sp_outside_ram_is_refused(sp, error):
    with pytest.raises(error, match="initial stack pointer") as err:
        parse(vectors(sp, 0x0800_0009), "bin", NUCLEO)
    assert type(err.value) is error


def test_the_reset_handler_must_be_thumb_code_of_the_board():
    with pytest.raises(InvalidFirmware, match="reset handler 0x08000008") as err:
        parse(vectors(0x2001_0000, 0x0800_0008), "bin", NUCLEO)
    assert not isinstance(err.value, DoesNotFit)  # bit 0 clear: no Cortex-M runs that
    with pytest.raises(DoesNotFit, match="reset handler 0x08050001"):
        parse(vectors(0x2000_A000, 0x0805_0001), "bin", DISCO)  # beyond the VC's 256 KiB
    assert parse(vectors(0x2001_0000, 0x0805_0001), "bin", NUCLEO)  # inside the RE's 512


def test_an_image_beyond_256k_fits_the_nucleo_but_not_the_discovery():
    big = (FIXTURES / "build" / "disco_hello.bin").read_bytes().ljust(256 * 1024 + 4, b"\xff")
    assert parse(big, "bin", NUCLEO).segments[0].data == big
    with pytest.raises(DoesNotFit) as err:
        parse(big, "bin", DISCO)
    assert str(err.value) == (
        "BIN places 262148 bytes at 0x08000000-0x08040003, outside the board's flash and "
        "RAM (0x00000000+0x40000, 0x08000000+0x40000, 0x10000000+0x2000, 0x20000000+0xa000)")


def test_a_nucleo_image_needs_more_ram_than_the_discovery_has():
    with pytest.raises(DoesNotFit, match=r"initial stack pointer 0x20010000\) does not point "
                                         r"into RAM of this board \(RAM 0x20000000\+0xa000"):
        load(FIXTURES / "build" / "hello.elf", memory=DISCO)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=512), st.sampled_from([None, "elf", "hex", "bin"]),
       st.sampled_from([NUCLEO, DISCO, ARMV7M]))
def test_any_bytes_either_parse_or_raise_invalid_firmware(data, fmt, board):
    try:
        parse(data, fmt, board)
    except InvalidFirmware as exc:
        assert str(exc)


# -- bounded parsing (issue 11): what the headers claim is checked before it is read ------
#: The flash of both boards and the F303RE's SRAM.
FLASH, SRAM = 0x0800_0000, 0x2000_0000
PT_LOAD, PT_NOTE = 1, 4
HOSTILE_SEGMENT = 512 * 1024


def elf_file(headers: list[tuple[int, ...]], payload: bytes = b"", *, machine: int = 40,
             ident: bytes = b"\x7fELF\x01\x01\x01", phentsize: int = 32,
             phnum: int | None = None, entry: int = FLASH + 9) -> bytes:
    """An ELF32 file: header, program headers (p_type, p_offset, p_paddr, p_filesz,
    p_memsz), then ``payload``; offsets count from the start of the file."""
    phoff = 52
    head = struct.pack("<16sHHIIIIIHHHHHH", ident.ljust(16, b"\0"), 2, machine, 1, entry,
                       phoff, 0, 0x0500_0200, 52, phentsize,
                       len(headers) if phnum is None else phnum, 40, 0, 0)
    table = b"".join(struct.pack("<IIIIIIII", p_type, offset, paddr, paddr, filesz, memsz,
                                 5, 4).ljust(phentsize, b"\0")
                     for p_type, offset, paddr, filesz, memsz in headers)
    return head + table + payload


def payload_offset(count: int) -> int:
    return 52 + 32 * count


def elf_of(*segments: tuple[int, bytes]) -> bytes:
    """A well-formed ELF loading each (address, bytes) from its own part of the file."""
    offset, headers, payload = payload_offset(len(segments)), [], b""
    for address, data in segments:
        headers.append((PT_LOAD, offset + len(payload), address, len(data), len(data)))
        payload += data
    return elf_file(headers, payload)


def peak_bytes(data: bytes, board: MemoryMap) -> tuple[int, BaseException | None]:
    """Python memory parse() allocates at its peak (beyond the input it was given)."""
    tracemalloc.start()
    try:
        try:
            parse(data, None, board)
            error = None
        except InvalidFirmware as exc:
            error = exc
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return peak, error


def test_a_generated_elf_loads_its_segments_at_their_physical_addresses():
    image = parse(elf_of((FLASH, vectors(0x2001_0000, FLASH + 9)), (FLASH + 64, b"data"),
                         (SRAM + 0x100, b"ramfunc!")), "elf", NUCLEO)
    assert [(s.address, len(s.data)) for s in image.segments] == [
        (FLASH, 64), (FLASH + 64, 4), (SRAM + 0x100, 8)]
    assert image.entry == FLASH + 9 and image.word(FLASH + 64) == int.from_bytes(b"data", "little")


def test_2000_overlapping_512k_segments_are_refused_without_reading_them():
    """The upload that cost 1 GiB in the request thread: 588 KB, 2000 PT_LOAD headers
    all loading the same 512 KiB."""
    headers = [(PT_LOAD, payload_offset(2000), FLASH, HOSTILE_SEGMENT, HOSTILE_SEGMENT)] * 2000
    data = elf_file(headers, vectors(0x2001_0000, FLASH + 9, HOSTILE_SEGMENT))
    assert 580_000 < len(data) < 600_000
    for board in (NUCLEO, ARMV7M):
        peak, error = peak_bytes(data, board)
        assert isinstance(error, InvalidFirmware) and not isinstance(error, DoesNotFit)
        assert str(error) == "ELF has 2000 program headers; at most 64 are accepted " \
                             "(firmware has a handful)"
        assert peak < 64 * 1024


@pytest.mark.parametrize("phnum", [65534, 0xFFFF])
def test_tens_of_thousands_of_program_headers_are_refused_by_their_count(phnum):
    """The one that asked for 32 GiB; 0xFFFF (PN_XNUM, 'the count is elsewhere') too."""
    headers = [(PT_LOAD, payload_offset(65534), FLASH, HOSTILE_SEGMENT, HOSTILE_SEGMENT)]
    data = elf_file(headers * 65534, bytes(HOSTILE_SEGMENT), phnum=phnum)
    peak, error = peak_bytes(data, ARMV7M)
    assert isinstance(error, InvalidFirmware)
    assert f"ELF has {phnum} program headers" in str(error)
    assert peak < 64 * 1024


def test_64_segments_loading_the_same_file_bytes_are_refused():
    """At the header cap, distinct addresses (the ARMv7-M map holds 64 x 512 KiB): the
    bytes would be read 64 times over."""
    base = payload_offset(64)
    headers = [(PT_LOAD, base, n * HOSTILE_SEGMENT, HOSTILE_SEGMENT, HOSTILE_SEGMENT)
               for n in range(64)]
    data = elf_file(headers, vectors(0x2000_1000, 9, HOSTILE_SEGMENT))
    peak, error = peak_bytes(data, ARMV7M)
    assert isinstance(error, InvalidFirmware)
    assert str(error) == "ELF segments at 0x00000000 and 0x00080000 load the same bytes " \
                         f"of the file (from offset {base})"
    assert peak < 64 * 1024


def test_segments_overlapping_in_memory_are_refused():
    with pytest.raises(InvalidFirmware) as err:
        parse(elf_of((FLASH, vectors(0x2001_0000, FLASH + 9)), (FLASH + 60, b"overlaps")),
              "elf", NUCLEO)
    assert str(err.value) == ("ELF segments overlap in memory: 0x08000000-0x0800003f and "
                              "0x0800003c-0x08000043 (a loader would write one over the other)")
    assert not isinstance(err.value, DoesNotFit)
    # adjacent is fine: what the linker makes of .text, .rodata and .data's load image
    assert parse(elf_of((FLASH, vectors(0x2001_0000, FLASH + 9)), (FLASH + 64, b"next")),
                 "elf", NUCLEO)


def test_more_bytes_than_the_board_holds_do_not_fit_before_they_are_read():
    """The Discovery's flash, its boot alias and its RAMs hold 573 440 bytes: 600 000 bytes
    in distinct places do not fit, however they are spread."""
    size = 0x40000
    flash = vectors(0x2000_A000, FLASH + 9, size)
    data = elf_of((FLASH, flash), (0, flash), (0x1000_0000, bytes(0x2000)),
                  (SRAM, bytes(0xA000)), (0x3000_0000, bytes(12)))
    peak, error = peak_bytes(data, DISCO)
    assert type(error) is DoesNotFit
    assert str(error) == (
        "ELF loads 573452 bytes, more than the board's flash and RAM hold (573440 bytes: "
        "0x00000000+0x40000, 0x08000000+0x40000, 0x10000000+0x2000, 0x20000000+0xa000)")
    assert peak < 64 * 1024  # refused from the headers: nothing was read
    assert len(parse(data, "elf", ARMV7M).segments) == 5  # the architecture has room


@pytest.mark.parametrize("header, message", [
    ((PT_LOAD, 84, FLASH, 64, 16), "ELF segment at 0x08000000 has more bytes in the file "
                                   "(64) than in memory (16)"),
    ((PT_LOAD, 84, 0xFFFF_FFF0, 64, 64), "ELF segment at 0xfffffff0 (+64 bytes) runs past "
                                         "the end of the 32-bit address space"),
    ((PT_LOAD, 84, FLASH, 0x7FFF_FFFF, 0x7FFF_FFFF), "ELF is truncated: the segment at "
                                                     "0x08000000 needs 2147483647 bytes, "
                                                     "the file holds 64"),
    ((PT_LOAD, 0xFFFF_FFFF, FLASH, 64, 64), "ELF is truncated: the segment at 0x08000000 "
                                            "needs 64 bytes, the file holds 0"),
])
def test_a_segment_claiming_what_it_does_not_hold_is_refused(header, message):
    with pytest.raises(InvalidFirmware) as err:
        parse(elf_file([header], vectors(0x2001_0000, FLASH + 9)), "elf", NUCLEO)
    assert str(err.value) == message


def test_only_loadable_segments_with_file_bytes_are_loaded():
    """.bss (PT_LOAD without file bytes, its LMA in flash) and notes are not loaded, nor
    held against the image: the sim loads p_filesz bytes of each PT_LOAD at p_paddr."""
    data = elf_file([(PT_LOAD, payload_offset(3), FLASH, 64, 64), (PT_LOAD, 0, FLASH + 64, 0, 0x1000),
                     (PT_NOTE, 0, 0, 0xFFFF_FFFF, 0xFFFF_FFFF)], vectors(0x2001_0000, FLASH + 9))
    assert [s.address for s in parse(data, "elf", NUCLEO).segments] == [FLASH]


@pytest.mark.parametrize("data, message", [
    (elf_file([], machine=62, ident=b"\x7fELF\x02\x01\x01"), "ELF is for EM_X86_64, not ARM"),
    (elf_file([], machine=0x9999), "ELF is for machine 39321, not ARM"),
    (elf_file([], ident=b"\x7fELF\x01\x02\x01").replace(b"\x28\x00", b"\x00\x28", 1),
     "ELF must be 32-bit little-endian"),
    (elf_file([], ident=b"\x7fELF\x03\x01\x01"), "ELF cannot be read: invalid class (3)"),
    (elf_file([]), "ELF has no loadable segments"),
    (elf_file([(PT_LOAD, 0, FLASH, 4, 4)], phentsize=16),
     "ELF cannot be read: its program headers are 16 bytes each, not 32"),
    (elf_file([(PT_LOAD, 0, FLASH, 4, 4)], phnum=3),
     "ELF is truncated: its 3 program headers at offset 52 end past the end of the file"),
    (b"\x7fELF\x01\x01\x01", "ELF is truncated: its header needs 52 bytes, the file holds 7"),
    (b"\x7fELf" + elf_file([])[4:], "ELF cannot be read: it does not start with the ELF magic"),
    (elf_file([])[:40], "ELF is truncated: its header needs 52 bytes, the file holds 40"),
])
def test_elf_headers_are_checked_with_a_reason(data, message):
    with pytest.raises(InvalidFirmware, match=re.escape(message)) as err:
        parse(data, "elf", NUCLEO)
    assert not isinstance(err.value, DoesNotFit)


def test_intel_hex_with_more_data_than_the_board_holds_is_refused_before_intelhex():
    """intelhex keeps ~100 bytes of Python memory per data byte; the records are counted
    first, so a HEX a board cannot hold costs about its own size to refuse."""
    data = hex_image((FLASH, vectors(0x2000_A000, FLASH + 9, 0x40000)), (0, bytes(0x40000)),
                     (SRAM, bytes(0xA000)), (0x1000_0000, bytes(0x2001)))
    peak, error = peak_bytes(data, DISCO)
    assert type(error) is DoesNotFit
    assert str(error).startswith("Intel HEX holds 573441 bytes, more than the board's flash "
                                 "and RAM hold (573440 bytes: ")
    assert peak < len(data) // 4
    assert len(parse(data, "hex", NUCLEO).segments) == 4  # the Nucleo holds it


def test_intel_hex_data_after_the_end_of_file_record_is_not_counted():
    """intelhex stops reading at the EOF record; so does the count."""
    image = hex_image((FLASH, vectors(0x2000_A000, FLASH + 9)))
    junk = hex_image((0x1000_0000, bytes(0x10000)))  # more than DISCO's CCM, never read
    parsed = parse(image + junk, "hex", DISCO)
    assert [(s.address, len(s.data)) for s in parsed.segments] == [(FLASH, 64)]


def test_a_bin_is_not_copied():
    """Only the head that format detection looks at (64 KiB) is."""
    data = vectors(0x2001_0000, FLASH + 9, 0x80000)
    peak, error = peak_bytes(data, NUCLEO)
    assert error is None and peak < 128 * 1024


# -- what is accepted is what the loader loads -----------------------------------------
_MACHINE: list[Any] = []


def sim_loads(image) -> None:
    """Load an image into a (shared) simulated Nucleo as the sim backend does; raises
    ValueError where the loader refuses."""
    if not _MACHINE:
        from hwut.sim.boards import board
        from hwut.sim.machine import Machine
        _MACHINE.append(Machine(board("nucleo-f303re"), note=lambda line: None))
    _MACHINE[0].load([(s.address, s.data) for s in image.segments])


_ADDRESSES = st.sampled_from([0, 0x40, 0x7_FFC0, 0x8_0000, FLASH, FLASH + 0x40, FLASH + 0x100,
                              FLASH + 0x7_FFF0, FLASH + 0x8_0000, 0x1000_0000, 0x1000_3FF8,
                              SRAM, SRAM + 0xFFF0, SRAM + 0x1_0000, 0x4000_0000, 0xFFFF_FFF0])
_SIZES = st.sampled_from([1, 4, 16, 64, 0x40, 0x1000, 0x4000])


@settings(max_examples=150, deadline=None)
@given(st.lists(st.tuples(_ADDRESSES, _SIZES), min_size=1, max_size=6))
def test_an_accepted_elf_is_one_the_sim_loads_and_a_refused_one_it_would_not(layout):
    """Outside the board: the loader refuses too. Overlapping: the loader would write one
    over the other, which no linker output asks for. Accepted: it loads."""
    segments = [(FLASH, vectors(0x2001_0000, FLASH + 9))]
    segments += [(address, bytes(size)) for address, size in layout]
    try:
        image = parse(elf_of(*segments), "elf", NUCLEO)
    except InvalidFirmware as exc:
        if "outside the board's flash and RAM" in str(exc) or "address space" in str(exc):
            with pytest.raises(ValueError, match="outside memory"):
                sim_loads(FirmwareImage("elf", tuple(Segment(a, d) for a, d in segments)))
        else:  # or zeros at 0, where the core fetches its vectors
            assert "overlap in memory" in str(exc) or "vector table" in str(exc)
        return
    sim_loads(image)


# -- no other exception, whatever the bytes; memory within a small multiple of them -----
def mutated(fixture: bytes, draw_edits: list[tuple[int, int]], cut: int | None) -> bytes:
    data = bytearray(fixture)
    for position, value in draw_edits:
        data[position % len(data)] = value
    return bytes(data[:cut] if cut is not None else data)


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(["hello", "fw_rtos", "core_system", "fault"]),
       st.sampled_from(["elf", "hex"]),
       st.lists(st.tuples(st.integers(0, 1 << 20), st.integers(0, 255)), max_size=8),
       st.one_of(st.none(), st.integers(0, 1 << 16)), st.booleans())
def test_mutated_fixtures_either_parse_or_raise_invalid_firmware(name, fmt, edits, cut, head):
    fixture = (FIXTURES / "build" / f"{name}.{fmt}").read_bytes()
    if head:  # where the ELF header, the program headers and the first records are
        edits = [(position % 200, value) for position, value in edits]
    try:
        parse(mutated(fixture, edits, cut), fmt, NUCLEO)
    except InvalidFirmware as exc:
        assert str(exc)


_FIELD = st.one_of(st.sampled_from([0, 1, 4, 52, 84, 0x40, 0x8000, FLASH, SRAM, 0x7FFF_FFFF,
                                    0xFFFF_FFFF, 0xFFFF_FFF0]), st.integers(0, 0xFFFF_FFFF))


@settings(max_examples=100, deadline=None)
@given(st.lists(st.tuples(st.sampled_from([PT_LOAD, PT_LOAD, PT_NOTE, 0x7000_0001]),
                          _FIELD, _FIELD, _FIELD, _FIELD), max_size=80),
       st.integers(0, 4096), st.sampled_from([None, 0, 65, 0xFFFF]),
       st.sampled_from([NUCLEO, DISCO, ARMV7M]))
def test_generated_elfs_with_any_program_headers_cost_at_most_their_size(
        headers, payload, phnum, board):
    data = elf_file(headers, vectors(0x2001_0000, FLASH + 9, 8 + payload), phnum=phnum)
    peak, _ = peak_bytes(data, board)  # any other exception fails the test
    assert peak < 2 * len(data) + 64 * 1024
