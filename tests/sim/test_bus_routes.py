"""The bus finds each address's peripheral once (``Bus.route``): the answers stay the
model's, the table stays bounded under firmware sweeping peripheral space, and a
shared interrupt line still carries the OR of its sources."""
from __future__ import annotations

from hwut.sim.boards import board
from hwut.sim.bus import ROUTES
from hwut.sim.machine import Machine
from hwut.sim.peripherals.irq import IrqOr

TIM2_ARR = 0x4000_002C


def test_routes_answer_as_the_models_and_stay_bounded() -> None:
    m = Machine(board("nucleo-f303re"))
    bus = m.bus
    tim2 = bus.peripherals["TIM2"]
    assert bus.route(TIM2_ARR) == (tim2, 0x2C)
    assert bus.cached_read(TIM2_ARR, 4) == 0xFFFF_FFFF       # reset value, through the route
    bus.cached_write(TIM2_ARR, 4, 1234)
    assert tim2.read(0x2C, 4) == 1234
    # a sweep of every word of 64 KiB of peripheral space (more addresses than the table)
    for address in range(0x4001_0000, 0x4002_0000, 4):
        bus.route(address)
    assert len(bus._routes) <= ROUTES      # noqa: SLF001 - the bound is what is tested
    assert bus.route(TIM2_ARR) == (tim2, 0x2C)
    assert bus.cached_read(TIM2_ARR, 4) == 1234
    assert bus.route(0x4000_0400 + 0x2C)[0] is bus.peripherals["TIM3"]
    assert bus.failure is None and bus.model_errors == 0


class _Line:
    def __init__(self) -> None:
        self.levels: list[bool] = []

    def set(self, level: bool) -> None:
        self.levels.append(level)


def test_shared_line_is_the_or_of_its_inputs_and_follows_only_changes() -> None:
    line = _Line()
    shared = IrqOr(line)
    a, b = shared.input(), shared.input()
    a.set(True)
    a.set(True)                 # no change: the line is not driven again
    b.set(True)
    a.set(False)                # b still holds it up
    b.set(False)
    b.set(0)                    # no change
    assert line.levels == [True, True, True, False]
