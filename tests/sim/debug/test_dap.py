"""The ADIv5 debug port model on its own: DP registers, sticky errors, the MEM-AP."""
from __future__ import annotations

import pytest

from hwut.sim.debug.dap import (
    AHB_AP_IDR_CORTEX_M4,
    CDBGPWRUPACK,
    CDBGPWRUPREQ,
    CSYSPWRUPACK,
    CSYSPWRUPREQ,
    DPIDR_CORTEX_M4,
    ROM_TABLE_BASE,
    STICKYERR,
    STKERRCLR,
    DapFault,
    DapNoResponse,
    DebugPort,
    MemAp,
)

DPIDR, ABORT, CTRL_STAT, SELECT, RDBUFF = 0x0, 0x0, 0x4, 0x8, 0xC
CSW, TAR, DRW = 0x0, 0x4, 0xC


class Memory:
    """A little RAM at 0x1000 (4 KiB) and nothing else."""

    def __init__(self) -> None:
        self.data = bytearray(0x3000)

    def _check(self, address: int, size: int) -> None:
        if not 0x1000 <= address <= 0x4000 - size:
            raise LookupError(address)

    def read(self, address: int, size: int) -> int:
        self._check(address, size)
        return int.from_bytes(self.data[address - 0x1000:address - 0x1000 + size], "little")

    def write(self, address: int, size: int, value: int) -> None:
        self._check(address, size)
        self.data[address - 0x1000:address - 0x1000 + size] = value.to_bytes(size, "little")


@pytest.fixture
def memory() -> Memory:
    return Memory()


@pytest.fixture
def dp(memory: Memory) -> DebugPort:
    port = DebugPort("DP", aps={0: MemAp("AHB-AP", memory=memory)})
    port.line_reset()
    assert port.read_dp(DPIDR) == DPIDR_CORTEX_M4
    port.write_dp(CTRL_STAT, CDBGPWRUPREQ | CSYSPWRUPREQ)
    return port


def test_after_a_line_reset_only_dpidr_answers():
    port = DebugPort("DP", aps={})
    port.line_reset()
    with pytest.raises(DapNoResponse):
        port.read_dp(CTRL_STAT)
    assert port.read_dp(DPIDR) == 0x2BA0_1477
    assert port.read_dp(CTRL_STAT) & CDBGPWRUPACK == 0


def test_power_up_requests_are_acknowledged(dp: DebugPort):
    cs = dp.read_dp(CTRL_STAT)
    assert cs & (CDBGPWRUPACK | CSYSPWRUPACK) == CDBGPWRUPACK | CSYSPWRUPACK
    dp.write_dp(CTRL_STAT, 0)
    assert dp.read_dp(CTRL_STAT) & (CDBGPWRUPACK | CSYSPWRUPACK) == 0


def test_ap_access_without_power_faults_and_sticks_until_abort():
    port = DebugPort("DP", aps={0: MemAp("AP", memory=Memory())})
    port.line_reset()
    port.read_dp(DPIDR)
    with pytest.raises(DapFault):
        port.read_ap(CSW)
    assert port.read_dp(CTRL_STAT) & STICKYERR
    with pytest.raises(DapFault):  # FAULT for all but DPIDR, CTRL/STAT reads and ABORT
        port.write_dp(CTRL_STAT, CDBGPWRUPREQ | CSYSPWRUPREQ)
    assert port.read_dp(CTRL_STAT) & CDBGPWRUPACK == 0
    port.write_dp(ABORT, STKERRCLR)
    assert port.read_dp(CTRL_STAT) & STICKYERR == 0
    port.write_dp(CTRL_STAT, CDBGPWRUPREQ | CSYSPWRUPREQ)
    assert port.read_ap(CSW) & 0x40  # DeviceEn


def test_identification_registers_in_bank_f(dp: DebugPort):
    dp.write_dp(SELECT, 0x0000_00F0)
    assert dp.read_ap(0xC) == AHB_AP_IDR_CORTEX_M4 == 0x2477_0011
    assert dp.read_ap(0x8) == ROM_TABLE_BASE == 0xE00F_F003
    assert dp.read_ap(0x4) == 0  # CFG: little-endian, 32-bit addresses
    assert dp.read_dp(RDBUFF) == 0  # the last AP read
    dp.write_dp(SELECT, 0x0100_00F0)  # APSEL 1: nothing there
    assert dp.read_ap(0xC) == 0


def test_drw_auto_increments_by_size(dp: DebugPort, memory: Memory):
    dp.write_ap(CSW, 0x0300_0012)   # 32-bit, single increment
    dp.write_ap(TAR, 0x1000)
    for word in (0x11111111, 0x22222222, 0x33333333):
        dp.write_ap(DRW, word)
    assert dp.read_ap(TAR) == 0x100C
    assert memory.read(0x1004, 4) == 0x22222222
    dp.write_ap(CSW, 0x0300_0010)   # 8-bit: data on its byte lane
    dp.write_ap(TAR, 0x1005)
    assert dp.read_ap(DRW) == 0x22 << 8
    assert dp.read_ap(TAR) == 0x1006
    dp.write_ap(DRW, 0xAB << 16)
    assert memory.read(0x1004, 4) == 0x22AB2222
    dp.write_ap(CSW, 0x0300_0001)   # 16-bit, no increment
    dp.write_ap(TAR, 0x1002)
    assert dp.read_ap(DRW) == 0x1111 << 16
    assert dp.read_ap(TAR) == 0x1002


def test_unsupported_size_reads_back_as_word(dp: DebugPort):
    dp.write_ap(CSW, 0x0300_0013)
    assert dp.read_ap(CSW) & 7 == 2
    assert dp.read_ap(CSW) & 0x40  # DeviceEn is read-only and set


def test_tar_wraps_within_its_page(dp: DebugPort, memory: Memory):
    dp.write_ap(CSW, 0x0300_0012)
    dp.write_ap(TAR, 0x1FFC)
    dp.write_ap(DRW, 1)
    assert dp.read_ap(TAR) == 0x1000  # the 4 KiB page of the Cortex-M4's AHB-AP


def test_banked_data_registers(dp: DebugPort, memory: Memory):
    memory.write(0x1010, 4, 0xA0)
    memory.write(0x101C, 4, 0xA3)
    dp.write_ap(TAR, 0x1014)
    dp.write_dp(SELECT, 0x10)       # bank 1: BD0-BD3
    assert dp.read_ap(0x0) == 0xA0
    assert dp.read_ap(0xC) == 0xA3
    dp.write_ap(0x4, 0xB1)
    assert memory.read(0x1014, 4) == 0xB1
    dp.write_dp(SELECT, 0)
    assert dp.read_ap(TAR) == 0x1014  # banked accesses do not increment


def test_a_refused_transfer_is_a_fault_until_cleared(dp: DebugPort):
    dp.write_ap(TAR, 0x8000)
    with pytest.raises(DapFault):
        dp.read_ap(DRW)
    assert dp.read_dp(CTRL_STAT) & STICKYERR
    with pytest.raises(DapFault):
        dp.write_ap(TAR, 0x1000)  # everything but DPIDR, CTRL/STAT and ABORT
    dp.write_dp(ABORT, STKERRCLR)
    dp.write_ap(TAR, 0x1000)
    assert dp.read_ap(DRW) == 0


def test_a_target_that_does_not_answer(dp: DebugPort):
    dp.responding = False
    with pytest.raises(DapNoResponse):
        dp.read_dp(DPIDR)
    dp.responding = True
    assert dp.read_dp(DPIDR) == DPIDR_CORTEX_M4
