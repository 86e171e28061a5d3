"""Executable parsing and validation: good images load, bad inputs say why, and an image
is held to the memory map of the board it is for (from the backend's BoardInfo)."""
from __future__ import annotations

import io
import struct
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from intelhex import IntelHex

from hwut.backends.base import ARMV7M, MemoryMap
from hwut.backends.image import DoesNotFit, InvalidFirmware, detect_format, load, parse
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
        img = load(elf.with_suffix(f".{fmt}"), memory=board_of(elf))
        assert img.format == fmt
        assert img.word(0x0800_0000) == ref.word(0x0800_0000)
        assert img.word(0x0800_0004) == ref.word(0x0800_0004)


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
