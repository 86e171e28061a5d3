"""Executable parsing and validation: good images load, bad inputs say why."""
from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hwut.backends.image import InvalidFirmware, detect_format, load, parse

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures"


@pytest.mark.parametrize("fmt", ["elf", "bin", "hex"])
def test_every_fixture_parses_to_the_same_bytes(fmt):
    for elf in sorted((FIXTURES / "build").glob("*.elf")):
        ref = load(elf)
        img = load(elf.with_suffix(f".{fmt}"))
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
        load(FIXTURES / "bad" / name)
    assert fragment in str(err.value)


def test_detects_formats_by_content():
    assert detect_format(b"\x7fELF...") == "elf"
    assert detect_format(b":10000000000102030405060708090A0B0C0D0E0F78\n") == "hex"
    assert detect_format(b":\xb6\x24garbage") == "bin"
    assert detect_format(b"\x00\x10\x00\x20") == "bin"


def test_segments_outside_flash_and_ram_are_refused():
    image = bytes.fromhex("00000120") + bytes.fromhex("09000008")  # SP 0x20010000, reset 0x08000009
    with pytest.raises(InvalidFirmware, match="outside"):
        parse(image, "bin", bin_base=0x3000_0000)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=512), st.sampled_from([None, "elf", "hex", "bin"]))
def test_any_bytes_either_parse_or_raise_invalid_firmware(data, fmt):
    try:
        parse(data, fmt)
    except InvalidFirmware as exc:
        assert str(exc)
