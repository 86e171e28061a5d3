"""Checks on the committed firmware fixtures in fixtures/.

Structure (vector tables, formats agree with each other, bad inputs are bad)
needs only Python; what they print is checked on the simulator in test_fixtures_run.py;
reproducibility needs arm-none-eabi-gcc and is skipped without it.
"""
from __future__ import annotations

import io
import struct
from pathlib import Path

import pytest
from elftools.elf.elffile import ELFFile
from intelhex import IntelHex

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures"
BUILD = FIXTURES / "build"
EXPECTED = FIXTURES / "expected"
BAD = FIXTURES / "bad"

NAMES = ["hello", "blink", "hal_clock", "semihost_exit", "semihost_exit0", "fault",
         "spin", "float", "echo", "compute", "uart_loop"]
STACK_TOP = 0x2001_0000
FLASH = 0x0800_0000
VECTORS = 16 + 85
RESERVED_IRQS = {49, 50, 62, 63, 67, 68, 69, 70, 71, 82, 83}


def elf_of(name):
    return ELFFile(io.BytesIO((BUILD / f"{name}.elf").read_bytes()))


def symbols(elf):
    return {s.name: s["st_value"] for s in elf.get_section_by_name(".symtab").iter_symbols()}


@pytest.mark.parametrize("name", NAMES)
def test_vector_table(name):
    data = (BUILD / f"{name}.bin").read_bytes()
    words = struct.unpack_from(f"<{VECTORS}I", data)
    syms = symbols(elf_of(name))
    assert words[0] == STACK_TOP
    assert words[1] == syms["Reset_Handler"] | 1
    for i, w in enumerate(words[2:], start=2):
        irq = i - 16
        if i in (7, 8, 9, 10, 13) or irq in RESERVED_IRQS:
            assert w == 0, f"vector {i} should be reserved (0)"
        else:
            assert w & 1 and FLASH <= w < FLASH + len(data), f"vector {i} = 0x{w:08x}"


@pytest.mark.parametrize("name", NAMES)
def test_formats_agree(name):
    elf = elf_of(name)
    assert elf["e_machine"] == "EM_ARM"
    assert elf.get_section_by_name(".note.gnu.build-id") is None
    assert not any(s.name.startswith(".debug") for s in elf.iter_sections())
    image = bytearray()
    for seg in elf.iter_segments():
        if seg["p_type"] == "PT_LOAD" and seg["p_filesz"]:
            off = seg["p_paddr"] - FLASH
            image[len(image):off] = bytes(max(0, off - len(image)))
            image[off:off + seg["p_filesz"]] = seg.data()
    assert (BUILD / f"{name}.bin").read_bytes() == bytes(image)
    ih = IntelHex(str(BUILD / f"{name}.hex"))
    assert ih.minaddr() == FLASH
    assert ih.tobinstr(start=FLASH, size=len(image)) == bytes(image)
    assert ih.start_addr == {"EIP": elf["e_entry"]}


def test_no_absolute_paths_in_images():
    for path in BUILD.iterdir():
        data = path.read_bytes()
        assert str(FIXTURES).encode() not in data and b"/tmp/" not in data, path



def test_the_fixtures_readme_names_only_files_that_exist():
    """Every path fixtures/README.md names in backticks exists (relative to fixtures/ or
    to the repository), and every committed image is described there."""
    import re
    text = (FIXTURES / "README.md").read_text()
    root = FIXTURES.parent
    named = set(re.findall(r"`([\w./-]+/[\w.-]+\.\w+)`", text))
    named |= {f"expected/{n}" for n in re.findall(r"`expected/(\w+\.txt)`", text)}
    missing = [p for p in sorted(named) if "NAME" not in p and not p.startswith(("/", "~"))
               and not (FIXTURES / p).exists() and not (root / p).exists()]
    assert not missing, missing
    undocumented = sorted(p.stem for p in BUILD.glob("*.elf") if p.stem not in text)
    assert not undocumented, undocumented
