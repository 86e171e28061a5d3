"""Thumb-2 decoding, the little the simulator needs of it, in one place.

Every Python caller that looks at instruction encodings asks here: the
instruction counters (how many instructions a block holds), the rewind of a
precharged block, the flash-write skip, the image scans for the sites that need
a code hook (CPSIE/MSR to a mask register, SEV, SDIV/UDIV, loads and stores)
and the checks of what stopped the CPU (WFI, WFE, the semihosting BKPT).

The native hooks (sim/native/counter.c) decode lengths and memory accesses
themselves, in the engine, for speed; ``tests/sim/test_thumb.py`` holds the two
to the same answers over every 16-bit encoding and a sample of 32-bit ones.
Encodings: ARMv7-M Architecture Reference Manual (DDI 0403E), A5.1-A5.3.
"""
from __future__ import annotations

from collections.abc import Iterator

#: The 16-bit encodings the simulator recognises by their exact value.
SEV = 0xBF40
WFE = 0xBF20
WFI = 0xBF30
#: BKPT 0xAB: a semihosting call (ARM's semihosting specification, the Thumb form).
BKPT_SEMIHOSTING = 0xBEAB
#: CPSIE i, CPSIE f, CPSIE if.
CPSIE = (0xB662, 0xB661, 0xB663)
#: The 32-bit hint encodings (first half-word 0xF3AF) of WFE and WFI.
HINT32 = 0xF3AF
WFE32, WFI32 = 0x8002, 0x8003


def is_wide(hw1: int) -> bool:
    """Does the instruction whose first half-word is ``hw1`` take two (0b11101, 0b1111x)?"""
    return hw1 >> 11 >= 0x1D


def size(hw1: int) -> int:
    """The instruction's length in bytes, from its first half-word."""
    return 4 if hw1 >> 11 >= 0x1D else 2


def halfword(code: bytes, offset: int) -> int:
    return code[offset] | code[offset + 1] << 8


def count(code: bytes) -> int:
    """How many instructions ``code`` holds, decoded from its start (a 32-bit one
    cut off at the end counts)."""
    n = i = 0
    end = len(code) - 1
    while i < end:
        i += 4 if code[i + 1] >> 3 >= 0x1D else 2
        n += 1
    return n


def accesses_memory(hw1: int) -> bool:
    """Can the instruction whose first half-word is ``hw1`` load or store (A5.2, A5.3)?
    16-bit: LDR literal and the register/immediate forms (0x4800-0x9FFF), PUSH/POP,
    LDM/STM; 32-bit: LDM/STM/LDRD/STRD/exclusives/TBB, loads and stores, coprocessor
    and FP loads and stores (VLDR/VSTR/VLDM/VSTM)."""
    if hw1 >> 11 >= 0x1D:
        return (hw1 & 0xFE00 == 0xE800 or hw1 & 0xFE00 == 0xF800
                or hw1 & 0xEE00 == 0xEC00)
    return (0x4800 <= hw1 < 0xA000 or hw1 & 0xF600 == 0xB400
            or hw1 & 0xF000 == 0xC000)


def is_unmask(hw1: int, hw2: int) -> bool:
    """CPSIE, or MSR to PRIMASK/BASEPRI/BASEPRI_MAX/FAULTMASK (T1: 0xF38n, 0x88SS
    with SYSm 0x10-0x13): after these an interrupt held by the mask may be taken.
    ``hw2`` is only looked at for a 32-bit ``hw1``."""
    if hw1 in CPSIE:
        return True
    return hw1 & 0xFFF0 == 0xF380 and hw2 & 0xFF00 == 0x8800 and 0x10 <= (hw2 & 0xFF) <= 0x13


def divide_rm(hw1: int, hw2: int) -> int | None:
    """Rm of SDIV/UDIV (T1: 1111 1011 1001/1011 nnnn, 1111 dddd 1111 mmmm), else None."""
    if hw1 & 0xFFD0 == 0xFB90 and hw2 & 0xF0F0 == 0xF0F0:
        return hw2 & 0xF
    return None


def is_floating_point(hw1: int, hw2: int) -> bool:
    """A floating-point instruction: the coprocessor space (32-bit, 0xEC00-0xEFFF) for
    coprocessor 10 or 11 (``hw2`` bits 11:9 = 0b101), which CPACR.CP10/CP11 guard
    (A6.1, B3.2.20): VLDR/VSTR/VLDM/VSTM/VPUSH/VPOP, VMOV, VMRS/VMSR and the data
    processing ones."""
    return hw1 & 0xFC00 == 0xEC00 and hw2 & 0x0E00 == 0x0A00


def sleep_hint(before2: int, before1: int) -> str | None:
    """"wfi" or "wfe" when the instruction ending where the half-words ``before2``,
    ``before1`` end (in that order) is WFI or WFE, in its 16- or 32-bit form; else None."""
    if before1 == WFI:
        return "wfi"
    if before1 == WFE:
        return "wfe"
    if before2 == HINT32:
        return "wfi" if before1 == WFI32 else "wfe" if before1 == WFE32 else None
    return None


def scan(segments: list[tuple[int, bytes]]) -> Iterator[tuple[int, int, int]]:
    """(address, first half-word, next half-word or 0) at every half-word of ``segments``.

    Code and data are not told apart, nor instruction boundaries: a site found in
    literal data or in the middle of an instruction never runs as one, so a hook
    put there is harmless."""
    for address, data in segments:
        last = len(data) - 1
        for off in range(0, last, 2):
            hw1 = data[off] | data[off + 1] << 8
            hw2 = data[off + 2] | data[off + 3] << 8 if off + 3 <= last else 0
            yield address + off, hw1, hw2
