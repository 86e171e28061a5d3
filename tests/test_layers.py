"""Imports go down, never up: sim knows nothing of backends or the service; the
service reaches emulators only through the backend contract.

The repository folders ``sim/`` and ``backends/`` are the import packages
``hwut.sim`` and ``hwut.backends``; every other ``hwut.*`` module is the service.
"""
from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SIM, BACKENDS = "hwut.sim", "hwut.backends"


def _layer(module: str) -> str:
    """'sim', 'backends', 'service' for our own modules, else the top-level name."""
    if module == SIM or module.startswith(SIM + "."):
        return "sim"
    if module == BACKENDS or module.startswith(BACKENDS + "."):
        return "backends"
    if module == "hwut" or module.startswith("hwut."):
        return "service"
    return module.split(".")[0]


def imported_modules(folder: str) -> dict[str, set[str]]:
    """Absolute imports of each file below ``folder`` (relative ones stay in the layer)."""
    found: dict[str, set[str]] = {}
    for path in (ROOT / folder).rglob("*.py"):
        modules: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                modules |= {a.name for a in node.names}
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                modules.add(node.module)
                if node.module in ("hwut", "hwut.sim", "hwut.backends"):
                    modules |= {f"{node.module}.{a.name}" for a in node.names}
        found[str(path.relative_to(ROOT))] = modules
    return found


def layers(folder: str) -> dict[str, set[str]]:
    return {path: {_layer(m) for m in mods} for path, mods in imported_modules(folder).items()}


def test_sim_imports_neither_backends_nor_the_service():
    for path, used in layers("sim").items():
        assert not used & {"backends", "service"}, path


def test_no_generic_top_level_imports_remain():
    """``sim`` and ``backends`` are only importable as ``hwut.sim`` and ``hwut.backends``."""
    for folder in ("sim", "backends", "hwut", "tests", "bench"):
        for path, mods in imported_modules(folder).items():
            tops = {m.split(".")[0] for m in mods}
            assert not tops & {"sim", "backends", "fixtures"}, path


def test_backends_do_not_import_the_service():
    for path, used in layers("backends").items():
        assert "service" not in used, path


def test_only_emulator_backends_import_sim():
    # simboards.py: the sim's board data in the contract's terms, shared by both emulators;
    # simlab.py and simprobe.py: emulated boards behind simulated debug probes, and the
    # pyOCD plug-in that serves them; pyocd_targets.py: the part's memory map for pyOCD,
    # from the same SoC data; simboard.py: such a board served as a lab bench;
    # renode_platform.py: Renode's platform files, generated from the same SoC and board data
    allowed = {"sim.py", "renode.py", "simboards.py", "simlab.py", "simprobe.py",
               "pyocd_targets.py", "simboard.py", "renode_platform.py"}
    for path, used in layers("backends").items():
        if "sim" in used:
            assert Path(path).name in allowed, path


def test_nothing_of_ours_imports_the_pyocd_probe_plugin():
    """Only pyOCD loads ``simprobe`` (entry point ``pyocd.probe``): importing pyOCD loads
    its plug-ins, so a module that imported the plug-in before pyOCD would import it
    half-way (boards are registered through ``simlab``)."""
    for folder in ("sim", "backends", "hwut", "tests", "bench"):
        for path, mods in imported_modules(folder).items():
            assert "hwut.backends.simprobe" not in mods, path


def test_the_sim_never_imports_pyocd():
    for path, used in layers("sim").items():
        assert "pyocd" not in used, path


def test_the_service_never_imports_sim():
    for path, used in layers("hwut").items():
        assert "sim" not in used, path


def _sibling_imports(path: Path) -> set[str]:
    """The modules of the same package a file imports relatively (``from .queue import``)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.level == 1:
            found |= {node.module} if node.module else {a.name for a in node.names}
    return found


def test_the_store_parts_stand_alone():
    """``hwut/store``: the repository, the artifact files, the queue and the offline
    instances know nothing of one another (the queue follows the repository through a
    listener); only the package's ``__init__`` (JobStore, Store) puts them together."""
    folder = ROOT / "hwut" / "store"
    parts = {"repository", "artifacts", "queue", "offline"}
    for name in parts:
        assert not _sibling_imports(folder / f"{name}.py") & parts, name
    assert {p.stem for p in folder.glob("*.py")} == parts | {"__init__"}
