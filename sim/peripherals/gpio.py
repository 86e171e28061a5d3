"""GPIO port of the STM32F303 (RM0316 section 11).

IDR is what the pin carries, computed when read: a push-pull output drives its
ODR bit; an open-drain output drives 0 or lets go; a released pin reads what
the outside world drives (``set_input``), else the board's wiring
(``external``: B1's pull-up on PC13), else its own PUPDR pull, else the
board's ``floating_level`` (a pin nothing touches). Firmware that
waits for a button or bit-bangs I2C over pull-ups depends on exactly this.
Listeners see output changes (LEDs) and pin level changes (EXTI).
"""
from __future__ import annotations

from collections.abc import Callable

from hwut.sim.regs import Access, Field, Peripheral, Register, per_pin
from hwut.sim.signals import ClockTree
from hwut.sim.vclock import VirtualClock

MODER, OTYPER, OSPEEDR, PUPDR, IDR, ODR, BSRR, LCKR, AFRL, AFRH, BRR = (
    0x00, 0x04, 0x08, 0x0C, 0x10, 0x14, 0x18, 0x1C, 0x20, 0x24, 0x28)


Listener = Callable[[int, int], None]


class GpioPort(Peripheral):
    """One port (A..H); ``resets`` are the reset values that differ from 0 on this
    port (register name → value; the SoC description has them: the debug pins)."""

    def __init__(self, name: str, base: int, *, clock: VirtualClock, clocks: ClockTree,
                 note: Callable[[str], None] | None = None,
                 resets: dict[str, int] | None = None,
                 external: dict[int, int] | None = None, floating_level: int = 0) -> None:
        self.clock = clock
        self.clocks = clocks
        self.resets = dict(resets or {})
        #: Board wiring: the level a pin has when nothing drives it.
        self.external: dict[int, int] = dict(external or {})
        #: What a pin with nothing on it and its own pull off reads (board data).
        self.floating_level = 1 if floating_level else 0
        #: Levels driven from outside (scripted inputs); None = not driven.
        self._driven: dict[int, int] = {}
        self._output_listeners: list[Listener] = []
        self._input_listeners: list[Listener] = []
        self._lock_step = 0
        self._lock_pins = 0
        self._lock_active = False
        self._locked = 0
        self._last_pins = 0
        self._last_outputs: dict[int, int] = {}
        super().__init__(name, base, note=note)

    # -- declarations --------------------------------------------------------
    def registers(self) -> list[Register]:
        resets = self.resets
        changed = self._config_written

        def config(name: str, off: int, fields: tuple[Field, ...]) -> Register:
            return Register(name, off, resets.get(name, 0), fields,
                            on_write=lambda old, new: changed(name, old))

        self.moder = config("MODER", MODER, per_pin("MODER", 16, 2))
        self.otyper = config("OTYPER", OTYPER, per_pin("OT", 16, 1))
        self.pupdr = config("PUPDR", PUPDR, per_pin("PUPDR", 16, 2))
        self.odr = Register("ODR", ODR, 0, per_pin("ODR", 16, 1),
                            on_write=lambda old, new: self._pins_changed())
        self.lckr = Register("LCKR", LCKR, 0, per_pin("LCK", 16, 1) + (Field("LCKK", 16),),
                             on_write=self._lckr_written, on_read=self._lckr_read)
        self.lckk = self.lckr["LCKK"]
        return [
            self.moder, self.otyper,
            config("OSPEEDR", OSPEEDR, per_pin("OSPEEDR", 16, 2)),
            self.pupdr,
            # IDR changes only through writes and set_input (a clock event or the host):
            # stable for the machine's read cache, so button-wait loops run natively.
            Register("IDR", IDR, 0, per_pin("IDR", 16, 1, Access.RO), on_read=self._idr_read,
                     stable=True),
            self.odr,
            Register("BSRR", BSRR, 0, per_pin("BS", 16, 1, Access.WO)
                     + tuple(Field(f"BR{i}", 16 + i, 1, Access.WO) for i in range(16)),
                     on_write=self._bsrr_written),
            self.lckr,
            config("AFRL", AFRL, per_pin("AFRL", 8, 4)),
            config("AFRH", AFRH, tuple(Field(f"AFRH{i + 8}", 4 * i, 4) for i in range(8))),
            Register("BRR", BRR, 0, per_pin("BR", 16, 1, Access.WO), on_write=self._brr_written),
        ]

    def reset(self) -> None:
        self._lock_step = 0
        self._lock_active = False
        self._locked = 0
        super().reset()
        self._pins_changed()

    # -- host side -------------------------------------------------------------
    def set_input(self, pin: int, level: int | None) -> None:
        """Drive ``pin`` from outside (1/0), or let it go (None): pulls decide then."""
        if level is None:
            self._driven.pop(pin, None)
        else:
            self._driven[pin] = 1 if level else 0
        self._pins_changed()

    def schedule_input(self, at_ps: int, pin: int, level: int | None) -> None:
        """Scripted input: drive ``pin`` at virtual time ``at_ps`` (press B1 at 0.5 s)."""
        self.clock.at_time(at_ps, lambda: self.set_input(pin, level))

    def on_output(self, callback: Listener) -> None:
        """``callback(pin, level)`` whenever a pin configured as output changes level."""
        self._output_listeners.append(callback)

    def on_input_change(self, callback: Listener) -> None:
        """``callback(pin, level)`` whenever the level seen by the input stage changes."""
        self._input_listeners.append(callback)

    # -- pin levels -------------------------------------------------------------
    def pin_levels(self) -> int:
        """The 16 pin levels as IDR shows them."""
        moder, otyper, pupdr = self.moder.value, self.otyper.value, self.pupdr.value
        odr = self.odr.value
        levels = 0
        for pin in range(16):
            mode = (moder >> 2 * pin) & 3
            if mode == 3:
                continue                                   # analog: input stage off
            out = odr >> pin & 1
            if mode == 1 and not (otyper >> pin & 1):
                level = out                                # push-pull output
            elif mode == 1 and not out:
                level = 0                                  # open drain pulling low
            else:
                level = self._released_level(pin, (pupdr >> 2 * pin) & 3)
            levels |= level << pin
        return levels

    def _released_level(self, pin: int, pull: int) -> int:
        if pin in self._driven:
            return self._driven[pin]
        if pin in self.external:
            return 1 if self.external[pin] else 0
        if pull in (1, 2):
            return 1 if pull == 1 else 0
        return self.floating_level

    def _outputs(self) -> dict[int, int]:
        moder, odr = self.moder.value, self.odr.value
        return {pin: odr >> pin & 1 for pin in range(16) if (moder >> 2 * pin) & 3 == 1}

    def _pins_changed(self) -> None:
        """Tell listeners what changed since last time; called after every change."""
        outputs = self._outputs()
        if self._output_listeners:
            for pin, level in outputs.items():
                if self._last_outputs.get(pin) != level:
                    for cb in self._output_listeners:
                        cb(pin, level)
        self._last_outputs = outputs
        pins = self.pin_levels()
        diff = pins ^ self._last_pins
        self._last_pins = pins
        if diff and self._input_listeners:
            for pin in range(16):
                if diff >> pin & 1:
                    for cb in self._input_listeners:
                        cb(pin, pins >> pin & 1)

    # -- register behaviour -----------------------------------------------------
    def _idr_read(self, stored: int) -> int:
        # Every change goes through _pins_changed, which keeps this current.
        return self._last_pins

    def _config_written(self, name: str, old: int) -> None:
        if self._locked:
            reg = self.regs[name]
            mask = self._lock_mask(reg)
            reg.value = (reg.value & ~mask) | (old & mask)   # locked pins keep their value
        self._pins_changed()

    def _lock_mask(self, reg: Register) -> int:
        """The bits of ``reg`` that belong to locked pins (AFRH: pins 8-15)."""
        mask = 0
        for f in reg.fields:
            pin = int(f.name.lstrip("ABCDEFGHIJKLMNOPQRSTUVWXYZ"))
            if self._locked >> pin & 1:
                mask |= f.mask
        return mask

    def _bsrr_written(self, old: int, new: int) -> None:
        # BSx in the low half, BRx in the high half; both requested: set wins (RM0316 11.4.7).
        sets, resets = new & 0xFFFF, new >> 16
        self.odr.value = (self.odr.value & ~resets) | sets
        self._pins_changed()

    def _brr_written(self, old: int, new: int) -> None:
        self.odr.value &= ~new
        self._pins_changed()

    def _lckr_written(self, old: int, new: int) -> None:
        """Lock key sequence: LCKK=1, 0, 1 with the same LCK bits, then a read."""
        if self._lock_active:
            self.lckr.value = old                           # frozen until reset
            return
        lckk = self.lckk.value
        lck = self.lckr.value & ~self.lckk.mask
        expected = (1, 0, 1)
        if self._lock_step < 3 and lckk == expected[self._lock_step] and (
                self._lock_step == 0 or lck == self._lock_pins):
            self._lock_pins = lck
            self._lock_step += 1
        else:
            self._lock_step = 1 if lckk == 1 else 0
            self._lock_pins = lck
        self.lckk.value = 0          # LCKK reads 0 until the sequence completes

    def _lckr_read(self, stored: int) -> int:
        if self._lock_step == 3 and not self._lock_active:
            self._lock_active = True
            self._locked = self._lock_pins
            self.lckr.value = self._lock_pins
            self.lckk.value = 1
        return self.lckr.value
