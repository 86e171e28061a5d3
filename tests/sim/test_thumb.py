"""One Thumb decoder in Python (``sim.thumb``) and the native hooks' own (counter.c,
``decode``): both must give the same answers, over every 16-bit encoding and a
broad sample of 32-bit ones, or precharged blocks and the Python counters would
count differently."""
from __future__ import annotations

import ctypes
import random

import pytest

from hwut.sim import thumb
from hwut.sim.nativelib import LIB

native_only = pytest.mark.skipif(LIB is None, reason="the native module is not built")
BLOCK_MEMORY = 4   # counter.c's flag: the block has a load or store


def _native():
    assert LIB is not None
    LIB.hwut_thumb_wide.argtypes = [ctypes.c_uint16]
    LIB.hwut_thumb_accesses_memory.argtypes = [ctypes.c_uint16]
    LIB.hwut_thumb_decode.argtypes = [ctypes.c_void_p, ctypes.c_uint32,
                                      ctypes.POINTER(ctypes.c_uint32)]
    LIB.hwut_thumb_decode.restype = ctypes.c_uint32
    return LIB


@native_only
def test_every_first_halfword_has_the_same_length_and_memory_access():
    lib = _native()
    for hw1 in range(0x10000):
        assert bool(lib.hwut_thumb_wide(hw1)) == thumb.is_wide(hw1), hex(hw1)
        assert bool(lib.hwut_thumb_accesses_memory(hw1)) == thumb.accesses_memory(hw1), hex(hw1)
        assert thumb.size(hw1) == (4 if thumb.is_wide(hw1) else 2)


def _stream(rng: random.Random, n: int) -> list[int]:
    """Half-words mixing 16-bit encodings and 32-bit pairs (first half-words 0xE800-0xFFFF)."""
    out: list[int] = []
    while len(out) < n:
        if rng.random() < 0.4:
            out += [rng.randrange(0xE800, 0x10000), rng.randrange(0x10000)]
        else:
            out.append(rng.randrange(0xE800))
    return out


@native_only
def test_instruction_counts_and_memory_access_agree_on_sampled_code():
    lib = _native()
    rng = random.Random(12)
    for _ in range(20_000):
        halfwords = _stream(rng, rng.randrange(1, 40))
        code = b"".join(hw.to_bytes(2, "little") for hw in halfwords)
        flags = ctypes.c_uint32()
        buf = (ctypes.c_uint16 * len(halfwords))(*halfwords)
        n = lib.hwut_thumb_decode(buf, len(halfwords), ctypes.byref(flags))
        assert n == thumb.count(code), halfwords
        memory, i = False, 0
        while i < len(code) - 1:
            hw1 = thumb.halfword(code, i)
            memory |= thumb.accesses_memory(hw1)
            i += thumb.size(hw1)
        assert bool(flags.value & BLOCK_MEMORY) == memory, halfwords


def test_the_sites_the_image_scans_look_for():
    assert thumb.is_unmask(0xB662, 0) and thumb.is_unmask(0xB661, 0)       # cpsie i, cpsie f
    assert thumb.is_unmask(0xF380, 0x8810)                                 # msr primask, r0
    assert thumb.is_unmask(0xF383, 0x8811) and thumb.is_unmask(0xF380, 0x8813)  # basepri, faultmask
    assert not thumb.is_unmask(0xF380, 0x8808)                             # msr msp, r0
    assert not thumb.is_unmask(0xB672, 0)                                  # cpsid i
    assert thumb.divide_rm(0xFB92, 0xF0F1) == 1 and thumb.divide_rm(0xFBB2, 0xF3F4) == 4
    assert thumb.divide_rm(0xFB02, 0xF0F1) is None                         # mul
    assert thumb.sleep_hint(0, thumb.WFI) == "wfi" and thumb.sleep_hint(0, thumb.WFE) == "wfe"
    assert thumb.sleep_hint(0xF3AF, 0x8003) == "wfi" and thumb.sleep_hint(0xF3AF, 0x8002) == "wfe"
    assert thumb.sleep_hint(0xF3AF, 0x8000) is None and thumb.sleep_hint(0, thumb.SEV) is None
    sites = list(thumb.scan([(0x100, bytes.fromhex("62b640bf"))]))
    assert sites == [(0x100, 0xB662, 0xBF40), (0x102, 0xBF40, 0)]
