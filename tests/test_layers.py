"""Imports go down, never up: sim knows nothing of backends or hwut; hwut reaches
emulators only through the backend contract."""
from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def imported_packages(folder: str) -> dict[str, set[str]]:
    found: dict[str, set[str]] = {}
    for path in (ROOT / folder).rglob("*.py"):
        tops: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                tops |= {a.name.split(".")[0] for a in node.names}
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                tops.add(node.module.split(".")[0])
        found[str(path.relative_to(ROOT))] = tops
    return found


def test_sim_imports_neither_backends_nor_hwut():
    for path, tops in imported_packages("sim").items():
        assert not tops & {"backends", "hwut"}, path


def test_backends_do_not_import_the_service():
    for path, tops in imported_packages("backends").items():
        assert "hwut" not in tops, path


def test_only_emulator_backends_import_sim():
    for path, tops in imported_packages("backends").items():
        if "sim" in tops:
            assert Path(path).name in {"sim.py", "renode.py"}, path


def test_the_service_never_imports_sim():
    for path, tops in imported_packages("hwut").items():
        assert "sim" not in tops, path
