"""Flash memory interface of the STM32F303 (RM0316 section 4 / PM0075 style).

Two jobs: ACR reads back what clock set-up code writes (wait states,
prefetch, with PRFTBS following PRFTBE), and the programming interface, so
firmware or a debugger's flash algorithm can unlock, erase pages and program
half-words into the flash array the machine owns (``memory``).
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from hwut.sim.regs import Access, Field, Peripheral, Register

from .irq import IrqOut, NoIrq

ACR, KEYR, OPTKEYR, SR, CR, AR, OBR, WRPR = 0x00, 0x04, 0x08, 0x0C, 0x10, 0x14, 0x1C, 0x20
KEY1, KEY2 = 0x4567_0123, 0xCDEF_89AB
RDPRT_KEY = 0x00A5

PAGE_SIZE = 2048


class FlashArray(Protocol):
    """The flash contents, owned by the machine."""

    def read(self, address: int, size: int) -> bytes: ...
    def write(self, address: int, data: bytes) -> None: ...


class FlashInterface(Peripheral):
    """FLASH registers; ``flash_base``/``flash_size`` of the array come from the SoC spec."""

    def __init__(self, name: str, base: int, *, note: Callable[[str], None] | None = None,
                 flash_base: int, flash_size: int, memory: FlashArray | None = None,
                 irq: IrqOut | None = None, obr_reset: int = 0xFFFF_7F00,
                 wrpr_reset: int = 0xFFFF_FFFF) -> None:
        self.memory = memory
        #: Where the array sits and how big it is: the SoC spec's flash (one source).
        self.flash_base = flash_base
        self.flash_size = flash_size
        self.irq = irq or NoIrq()
        self._obr_reset = obr_reset
        self._wrpr_reset = wrpr_reset
        self._key_step = 0
        self._opt_step = 0
        self._locked_out = False
        self._far = 0
        #: Page addresses whose cells no longer take a program (PGERR), as on a worn-out
        #: chip (failure injection; a real F303's flash endures 10 000 cycles).
        self.worn_pages: set[int] = set()
        super().__init__(name, base, note=note)

    def registers(self) -> list[Register]:
        self.sr = Register("SR", SR, fields=(
            Field("BSY", 0, access=Access.RO), Field("PGERR", 2, access=Access.RC_W1),
            Field("WRPRTERR", 4, access=Access.RC_W1), Field("EOP", 5, access=Access.RC_W1),
        ), on_write=lambda old, new: self._update_irq())
        self.cr = Register("CR", CR, fields=(
            Field("PG", 0), Field("PER", 1), Field("MER", 2), Field("OPTPG", 4),
            Field("OPTER", 5), Field("STRT", 6, access=Access.RS),
            Field("LOCK", 7, access=Access.RS), Field("OPTWRE", 9, access=Access.RC_W0),
            Field("ERRIE", 10), Field("EOPIE", 12), Field("OBL_LAUNCH", 13, access=Access.RS),
        ), on_write=self._cr_written,
            # FLASH_CR is write-protected while locked (setting LOCK again is harmless).
            writable_when=lambda: not self.lock.value)
        self.cr.reset = self.cr["LOCK"].mask
        self.lock = self.cr["LOCK"]
        self.acr = Register("ACR", ACR, reset=0x30, fields=(
            Field("LATENCY", 0, 3), Field("HLFCYA", 3), Field("PRFTBE", 4),
            Field("PRFTBS", 5, access=Access.RO),
        ), on_write=self._acr_written)
        return [
            self.acr,
            Register("KEYR", KEYR, fields=(Field("FKEYR", 0, 32, Access.WO),),
                     on_write=self._keyr_written),
            Register("OPTKEYR", OPTKEYR, fields=(Field("OPTKEYR", 0, 32, Access.WO),),
                     on_write=self._optkeyr_written),
            self.sr, self.cr,
            Register("AR", AR, fields=(Field("FAR", 0, 32, Access.WO),),
                     on_write=self._ar_written),
            Register("OBR", OBR, reset=self._obr_reset, fields=(
                Field("OPTERR", 0, access=Access.RO), Field("RDPRT", 1, 2, access=Access.RO),
                Field("USER", 8, 8, access=Access.RO), Field("DATA0", 16, 8, access=Access.RO),
                Field("DATA1", 24, 8, access=Access.RO),
            )),
            Register("WRPR", WRPR, reset=self._wrpr_reset,
                     fields=(Field("WRP", 0, 32, Access.RO),)),
        ]

    def reset(self) -> None:
        self._key_step = 0
        self._opt_step = 0
        self._locked_out = False
        super().reset()
        self._far = 0
        self._update_irq()

    # -- ACR ---------------------------------------------------------------------
    def _acr_written(self, old: int, value: int) -> None:
        # PRFTBS reports whether the prefetch buffer is on; it follows PRFTBE.
        self.acr["PRFTBS"].value = self.acr["PRFTBE"].value

    # -- keys ----------------------------------------------------------------------
    def _keyr_written(self, old: int, value: int) -> None:
        key = value & 0xFFFF_FFFF
        if self._locked_out or not self.lock.value:
            self._wrong_key()   # any write once unlocked is a wrong sequence too
            return
        if self._key_step == 0 and key == KEY1:
            self._key_step = 1
        elif self._key_step == 1 and key == KEY2:
            self._key_step = 0
            self.lock.value = 0
        else:
            self._wrong_key()

    def _wrong_key(self) -> None:
        """A wrong key locks FLASH_CR until the next reset (and a bus error on the chip)."""
        self._locked_out = True
        self._key_step = 0
        self.lock.value = 1
        self.note("wrong flash key sequence: locked until reset")

    def _optkeyr_written(self, old: int, value: int) -> None:
        key = value & 0xFFFF_FFFF
        if self._opt_step == 0 and key == KEY1:
            self._opt_step = 1
        elif self._opt_step == 1 and key == KEY2 and not self.lock.value:
            self._opt_step = 0
            self.cr["OPTWRE"].value = 1
        else:
            self._opt_step = 0

    # -- CR: operations ------------------------------------------------------------
    def stable_until(self, offset: int) -> int | None:
        """SR also changes when the machine programs a half-word (not a register write)."""
        return None if offset & ~3 == SR else super().stable_until(offset)

    def _ar_written(self, old: int, value: int) -> None:
        self._far = value   # write-only: kept for the next page erase

    def _cr_written(self, old: int, new: int) -> None:
        cr = self.cr
        if cr["STRT"].value:
            if cr["PER"].value:
                self._erase(self._far, PAGE_SIZE)
            elif cr["MER"].value:
                self._erase(self.flash_base, self.flash_size)
            elif cr["OPTER"].value:
                self.note("option byte erase not modelled")
                self._done()
            cr["STRT"].value = 0
        if cr["OBL_LAUNCH"].value:
            self.note("option byte reload (OBL_LAUNCH) not modelled")
            cr["OBL_LAUNCH"].value = 0
        self._update_irq()

    def _erase(self, address: int, length: int) -> None:
        """Erase the page holding ``address`` (or the whole array): bytes read 0xFF."""
        address &= ~(PAGE_SIZE - 1)
        if address < self.flash_size:
            address += self.flash_base  # the boot alias at 0 names the same page
        start = address if length == PAGE_SIZE else self.flash_base
        if self.memory is None:
            self._done()
            return
        if not self.flash_base <= start < self.flash_base + self.flash_size:
            self.sr["WRPRTERR"].value = 1
            self._update_irq()
            return
        self.memory.write(start, b"\xff" * length)
        self._done()

    def program_halfword(self, address: int, value: int) -> bool:
        """The CPU wrote a half-word into flash while PG is set; True if it was programmed.

        The chip refuses (PGERR) to program a location that is not erased,
        unless the new value is 0; it also refuses while locked or without PG.
        """
        if self.lock.value or not self.cr["PG"].value or self.memory is None:
            self.sr["PGERR"].value = 1
            self._update_irq()
            return False
        if address < self.flash_size:
            address += self.flash_base  # written through the boot alias at 0
        if address & 1 or not self.flash_base <= address < self.flash_base + self.flash_size:
            self.sr["PGERR"].value = 1
            self._update_irq()
            return False
        current = int.from_bytes(self.memory.read(address, 2), "little")
        value &= 0xFFFF
        if (current != 0xFFFF and value != 0) or address & ~(PAGE_SIZE - 1) in self.worn_pages:
            self.sr["PGERR"].value = 1
            self._update_irq()
            return False
        self.memory.write(address, value.to_bytes(2, "little"))
        self._done()
        return True

    def _done(self) -> None:
        self.sr["BSY"].value = 0
        self.sr["EOP"].value = 1
        self._update_irq()

    def _update_irq(self) -> None:
        sr, cr = self.sr, self.cr
        self.irq.set(bool(cr["EOPIE"].value and sr["EOP"].value) or bool(
            cr["ERRIE"].value and (sr["PGERR"].value or sr["WRPRTERR"].value)))
