"""Random straight-line programs, loops and IT blocks mixing ALU work, RAM,
MMIO, DWT CYCCNT and SysTick CVR reads (which expose the exact count): each
runs the same precharged as counted per instruction (natively and in Python),
to the cycle."""
from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hwut.sim.boards import board
from hwut.sim.machine import Machine
from hwut.sim.nativelib import LIB

pytestmark = pytest.mark.skipif(LIB is None, reason="the native counter is not built")

FLASH, RAM = 0x0800_0000, 0x2000_0000
# r4 = RAM, r5 = GPIOA, r6 = SysTick, r7 = DWT; r0-r3 hold data, r3 also counts loops.
PROLOGUE = [
    0x2420, 0x0624,          # movs r4, #0x20; lsls r4, r4, #24
    0x2548, 0x062D,          # movs r5, #0x48; lsls r5, r5, #24
    0x26E0, 0x0636,          # movs r6, #0xe0; lsls r6, r6, #24
    0x21E0, 0x0209, 0x3110, 0x1876,   # r6 += 0xe010
    0x27E0, 0x063F,          # movs r7, #0xe0; lsls r7, r7, #24
    0x2110, 0x0209, 0x187F,  # r7 += 0x1000
    0x21DE, 0x0109, 0x310C, 0x1871,   # r1 = r6 + 0xdec (DEMCR)
    0x2201, 0x0612, 0x600A,  # DEMCR = TRCENA
    0x2201, 0x603A,          # DWT CTRL = CYCCNTENA
    0x2200, 0x3A01, 0x6072,  # SysTick LOAD = 0xffffff
    0x2205, 0x6032,          # SysTick CTRL = enable, core clock, no interrupt
    0xE7FF,                  # b to the next instruction: the prologue is one precharged block
]
EPILOGUE = [
    0x6720, 0x6761, 0x67A2, 0x67E3,   # r0-r3 -> RAM + 0x70
    0x2018, 0x2102, 0x0409, 0x3126,   # r0 = SYS_EXIT, r1 = 0x20026
    0xBEAB,
]
CONDITIONS = (0, 1, 2, 3, 4, 5, 8, 9, 10, 11, 12, 13)

data_reg = st.integers(0, 2)
imm8 = st.integers(0, 255)
slot = st.integers(0, 27)  # RAM words 0..27; 28..31 take the registers at the end


def _ops() -> st.SearchStrategy[list[int]]:
    """One instruction each (a list of half-words) that may sit in an IT block."""
    return st.one_of(
        st.builds(lambda d, i: [0x2000 | d << 8 | i], data_reg, imm8),          # movs
        st.builds(lambda d, i: [0x3000 | d << 8 | i], data_reg, imm8),          # adds
        st.builds(lambda d, i: [0x2800 | d << 8 | i], data_reg, imm8),          # cmp
        st.builds(lambda d, m: [0x4040 | m << 3 | d], data_reg, data_reg),      # eors
        st.builds(lambda d, s: [0x6000 | s << 6 | 4 << 3 | d], data_reg, slot),  # str RAM
        st.builds(lambda d, s: [0x6800 | s << 6 | 4 << 3 | d], data_reg, slot),  # ldr RAM
        st.builds(lambda d: [0x6000 | 5 << 6 | 5 << 3 | d], data_reg),          # str GPIOA ODR
        st.builds(lambda d: [0x6800 | 5 << 6 | 5 << 3 | d], data_reg),          # ldr GPIOA ODR
        st.builds(lambda d: [0x6800 | 1 << 6 | 7 << 3 | d], data_reg),          # ldr CYCCNT
        st.builds(lambda d: [0x6800 | 2 << 6 | 6 << 3 | d], data_reg),          # ldr SysTick CVR
        st.just([0xBF00]),                                                       # nop
    )


def _it_block(cond: int, body: list[list[int]]) -> list[int]:
    n = len(body)
    mask = 0
    for k in range(n - 1):  # all "then": the condition's low bit, then the end marker
        mask |= (cond & 1) << (3 - k)
    mask |= 1 << (4 - n)
    return [0xBF00 | cond << 4 | mask] + [hw for insn in body for hw in insn]


def _loop(turns: int, body: list[list[int]]) -> list[int]:
    code = [hw for insn in body for hw in insn] + [0x3B01]  # body; subs r3, #1
    back = -(len(code) + 2)  # half-words from the bne's PC+4 to the body
    return [0x2300 | turns] + code + [0xD100 | (back & 0xFF)]


pieces = st.one_of(
    _ops(),
    st.builds(_it_block, st.sampled_from(CONDITIONS), st.lists(_ops(), min_size=1, max_size=4)),
    st.builds(_loop, st.integers(1, 255), st.lists(_ops(), min_size=1, max_size=5)),
    st.just([0xB662]),   # cpsie i: an unmask site, its block always counted
    st.builds(lambda k: [0xE000 | (k - 1) & 0x7FF] + [0xBF00] * k, st.integers(0, 3)),  # b over nops
)


def image(body: list[int]) -> bytes:
    code = PROLOGUE + body + EPILOGUE
    vectors = (RAM + 0x2000).to_bytes(4, "little") + (FLASH + 8 + 1).to_bytes(4, "little")
    return vectors + b"".join(hw.to_bytes(2, "little") for hw in code)


def run(program: bytes, **machine_args: object) -> tuple[Machine, tuple]:
    m = Machine(board("nucleo-f303re"), **machine_args)
    m.load([(FLASH, program)])
    result = m.run(0.1)
    assert result.exit_code == 0, result
    return m, (bytes(m.uc.mem_read(RAM, 128)), result.instructions,
               m.bus.read(0x4800_0014, 4), m.notes)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(pieces, min_size=1, max_size=30))
def test_random_programs_run_the_same_precharged_and_counted(parts):
    program = image([hw for part in parts for hw in part])
    fast, seen = run(program)
    assert fast.state.pre.precharged > 0 and fast.state.pre.denials > 0
    assert seen == run(program, precharge=False)[1]
    assert seen == run(program, native=False)[1]  # the Python counter agrees too
