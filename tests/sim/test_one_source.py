"""Each board and SoC fact has one source: ``sim/soc`` (the SoC descriptions) and
``sim/boards`` (the boards). Models take per-instance choices as constructor
arguments; no other module spells an address of the memory map or keeps a table
of instances (``tests/api/test_targets_data.py`` holds the targets API to the same data)."""
from __future__ import annotations

import ast
import importlib
from collections.abc import Mapping, Set
from pathlib import Path

import pytest

from hwut.sim.soc.stm32f303 import SOCS

ROOT = Path(__file__).resolve().parents[2]
#: Where other code might copy a fact: the models, the machine, the image check,
#: the emulator backends' board data, the service.
SCANNED = [*sorted((ROOT / "sim" / "peripherals").glob("*.py")),
           ROOT / "sim" / "machine.py", ROOT / "sim" / "bus.py",
           *sorted((ROOT / "sim" / "core").glob("*.py")),
           ROOT / "backends" / "image.py", ROOT / "backends" / "simboards.py",
           ROOT / "backends" / "base.py", *sorted((ROOT / "hwut").rglob("*.py"))]
#: Known copies, each with the reason it is not derived (listed so that they stay few).
ALLOWED: dict[tuple[str, int], str] = {}


def _facts() -> dict[int, str]:
    """Memory bases and device peripheral bases of every SoC, by value. Multiples of
    0x10000000 are left out: they are the architecture's region boundaries (code,
    SRAM, peripheral) and common register reset values, not this SoC's map."""
    facts: dict[int, str] = {}
    for soc in SOCS.values():
        for m in soc.memories:
            facts[m.base] = f"{soc.name} {m.name} base"
        for p in soc.peripherals:
            if p.base < 0xE000_0000:   # the core's own blocks are the architecture's
                facts[p.base] = f"{soc.name} {p.name} base"
    return {v: what for v, what in facts.items() if v % 0x1000_0000}


def _int_literals(path: Path) -> list[tuple[int, int]]:
    tree = ast.parse(path.read_text(), str(path))
    return [(n.lineno, n.value) for n in ast.walk(tree)
            if isinstance(n, ast.Constant) and type(n.value) is int]


@pytest.mark.parametrize("path", SCANNED, ids=lambda p: str(p.relative_to(ROOT)))
def test_no_address_of_the_map_outside_the_soc_description(path):
    facts = _facts()
    copies = [f"line {line}: 0x{value:08x} is the {facts[value]}"
              for line, value in _int_literals(path)
              if value in facts and (str(path.relative_to(ROOT)), value) not in ALLOWED]
    assert not copies, f"{path.relative_to(ROOT)} repeats SoC facts: {copies}"


@pytest.mark.parametrize("path", sorted((ROOT / "sim" / "peripherals").glob("*.py")),
                         ids=lambda p: p.name)
def test_no_peripheral_module_holds_an_instance_table(path):
    """A table keyed by instance name (TIM2, USART1, DMA1 ...) is SoC data."""
    names = {p.name for soc in SOCS.values() for p in soc.peripherals}
    tree = ast.parse(path.read_text(), str(path))
    for node in tree.body:
        if isinstance(node, (ast.Assign, ast.AnnAssign)) and isinstance(node.value, ast.Dict):
            keys = {k.value for k in node.value.keys if isinstance(k, ast.Constant)}
            assert not keys & names, (path.name, node.lineno, sorted(keys & names))
    for node in ast.walk(tree):   # nor decides behaviour from an instance's name
        if isinstance(node, ast.Compare):
            consts = {n.value for n in ast.walk(node) if isinstance(n, ast.Constant)}
            assert not consts & names, (path.name, node.lineno, sorted(consts & names))


def _numbered_tables(module: object) -> list[str]:
    """The module's constants that number things: a mapping keyed by integers (EXTI
    line → interrupt, DMA channel → request ...) or a set of integers (direct lines,
    channels that have X). Taken from the imported module, so comprehensions and
    ``**`` spreads count. Tuples are allowed: a register layout is a sequence read by
    position (offsets of a bank, a divider code's values), not a table of instances;
    so are mappings keyed by names (``RESET_FLAG``, ``KINDS``)."""
    found = []
    for name, value in vars(module).items():
        if name.startswith("__"):
            continue
        if isinstance(value, Mapping) and any(type(k) is int for k in value):
            found.append(f"{name}: a mapping keyed by numbers")
        elif isinstance(value, Set) and any(type(v) is int for v in value):
            found.append(f"{name}: a set of numbers")
    return found


@pytest.mark.parametrize("path", sorted((ROOT / "sim" / "peripherals").glob("*.py")),
                         ids=lambda p: p.name)
def test_no_peripheral_module_holds_a_numbered_table(path):
    """Which interrupt a line drives, which channel a request reaches, which lines are
    special: these are the SoC's (``sim/soc``), given to the model as arguments."""
    module = importlib.import_module(f"hwut.sim.peripherals.{path.stem}")
    tables = _numbered_tables(module)
    assert not tables, f"{path.name} holds SoC tables: {tables}"


def test_the_numbered_table_check_sees_a_table():
    """The check above catches the shape it is for (the table that used to sit in exti.py)."""
    from types import SimpleNamespace
    module = SimpleNamespace(IRQ_OF_LINE={0: 6, **{n: 23 for n in range(5, 10)}},
                             DIRECT_LINES=frozenset({23, 24}), _BANKS=((0x00, 0x04),),
                             KINDS={"basic": 1})
    assert _numbered_tables(module) == ["IRQ_OF_LINE: a mapping keyed by numbers",
                                        "DIRECT_LINES: a set of numbers"]


def test_every_register_of_every_model_declares_its_fields():
    """Built from the SoC description as the machine builds them, core blocks included:
    every register declares its fields (a whole-register value is one field, ``word()``),
    and every bit it holds at reset lies in a declared field (reserved bits are declared
    with ``reserved()``), so the bus trace can name every bit a model stores."""
    from hwut.sim.boards import BOARDS
    from hwut.sim.machine import Machine
    from hwut.sim.regs import Peripheral
    for board in BOARDS.values():
        m = Machine(board)
        built = {p.name for p in m.peripherals.values()}
        assert built >= {p.name for p in board.soc.peripherals}, board.name
        for p in m.peripherals.values():
            assert isinstance(p, Peripheral), f"{board.name}: {p.name} declares no registers"
            for reg in p.regs.values():
                assert reg.fields, f"{board.name}: {p.name}.{reg.name} declares no fields"
                declared = sum(f.mask for f in reg.fields)
                assert not reg.reset & ~declared & 0xFFFF_FFFF, (
                    f"{board.name}: {p.name}.{reg.name} resets bits no field declares: "
                    f"0x{reg.reset & ~declared & 0xFFFF_FFFF:08x}")
