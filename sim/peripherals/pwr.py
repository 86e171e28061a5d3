"""PWR of the STM32F303 (RM0316 section 7): what firmware reads back or waits on.

DBP must read back (RTC and LSE set-up code sets it, then checks it); the
wakeup/standby flags clear through CWUF/CSBF; VREFINT is ready at once.
"""
from __future__ import annotations

from hwut.sim.regs import Access, Field, Peripheral, Register

CR, CSR = 0x00, 0x04
WUF, SBF, VREFINTRDYF = 1, 2, 8


class Pwr(Peripheral):
    """Power controller; low-power modes themselves are the core's business (WFI/WFE)."""


    def registers(self) -> list[Register]:
        return [
            Register("CR", CR, fields=(
                Field("LPDS", 0), Field("PDDS", 1),
                Field("CWUF", 2, access=Access.WO), Field("CSBF", 3, access=Access.WO),
                Field("PVDE", 4), Field("PLS", 5, 3), Field("DBP", 8),
            ), on_write=self._cr_written),
            Register("CSR", CSR, reset=VREFINTRDYF, fields=(
                Field("WUF", 0, access=Access.RO), Field("SBF", 1, access=Access.RO),
                Field("PVDO", 2, access=Access.RO), Field("VREFINTRDYF", 3, access=Access.RO),
                Field("EWUP1", 8), Field("EWUP2", 9), Field("EWUP3", 10),
            )),
        ]

    def _cr_written(self, old: int, new: int) -> None:
        # CWUF/CSBF clear the wakeup and standby flags; PVDO stays 0 (VDD is fine).
        cr, csr = self.regs["CR"], self.regs["CSR"]
        if new & cr["CWUF"].mask:
            csr["WUF"].value = 0
        if new & cr["CSBF"].mask:
            csr["SBF"].value = 0
