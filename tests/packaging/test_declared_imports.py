"""Every third-party module the installed package imports is one its metadata declares.

A fresh ``pip install hwut`` gets only the declared dependencies; an import that
another package's dependency happened to bring along (capstone came with pyocd once)
works in CI and hangs a new user's first command.
"""
from __future__ import annotations

import ast
import re
import sys
from importlib import metadata
from pathlib import Path

import hwut
import hwut.backends
import hwut.sim

OWN = {"hwut", "__future__"}


def _canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _declared() -> tuple[set[str], set[str]]:
    """(core dependencies, dependencies of extras) from the installed metadata."""
    core, extras = set(), set()
    for requirement in metadata.requires("hwut") or ():
        name = _canonical(re.split(r"[\s;<>=!~\[(]", requirement, maxsplit=1)[0])
        (extras if "extra ==" in requirement else core).add(name)
    return core, extras


def _catches_import_error(node: ast.Try) -> bool:
    names = {"ImportError", "ModuleNotFoundError"}
    for handler in node.handlers:
        caught = handler.type
        kinds = caught.elts if isinstance(caught, ast.Tuple) else [caught]
        if any(isinstance(k, ast.Name) and k.id in names for k in kinds):
            return True
    return False


def _imports(path: Path) -> tuple[set[str], set[str]]:
    """(top-level modules imported unguarded, those imported inside a ``try`` that
    catches ImportError): only the guarded ones may come from an extra."""
    tree = ast.parse(path.read_text())
    plain, guarded = set(), set()

    def visit(node: ast.AST, in_guard: bool) -> None:
        for child in ast.iter_child_nodes(node):
            names: list[str] = []
            if isinstance(child, ast.Import):
                names = [a.name for a in child.names]
            elif isinstance(child, ast.ImportFrom) and child.level == 0 and child.module:
                names = [child.module]
            for name in names:
                (guarded if in_guard else plain).add(name.split(".")[0])
            if isinstance(child, ast.Try) and _catches_import_error(child):
                for stmt in child.body:
                    visit(ast.Module(body=[stmt], type_ignores=[]), True)
                for rest in (*child.handlers, *child.orelse, *child.finalbody):
                    visit(rest, in_guard)
            else:
                visit(child, in_guard)

    visit(tree, False)
    return plain, guarded


def _package_files() -> list[Path]:
    folders = {Path(p) for pkg in (hwut, hwut.sim, hwut.backends) for p in pkg.__path__}
    return sorted(f for folder in folders for f in folder.rglob("*.py"))


def _distributions(module: str) -> set[str]:
    return {_canonical(d) for d in metadata.packages_distributions().get(module, ())}


def test_the_package_is_found_where_its_files_are():
    files = _package_files()
    names = {f.name for f in files}
    assert {"cli.py", "machine.py", "registry.py"} <= names, names


def test_every_unguarded_import_is_a_declared_dependency():
    core, _ = _declared()
    missing = {}
    for path in _package_files():
        plain, _ = _imports(path)
        for module in plain - OWN - set(sys.stdlib_module_names):
            dists = _distributions(module)
            assert dists, f"{path}: imports {module}, which no installed distribution provides"
            if not dists & core:
                missing[f"{path.name}: {module}"] = sorted(dists)
    assert not missing, f"imported but not in [project].dependencies: {missing}"


def test_guarded_imports_are_declared_at_least_in_an_extra():
    core, extras = _declared()
    for path in _package_files():
        _, guarded = _imports(path)
        for module in guarded - OWN - set(sys.stdlib_module_names):
            dists = _distributions(module)
            assert dists & (core | extras), f"{path}: imports {module} ({dists}), undeclared"


def test_the_physical_extra_is_imported_guarded_only():
    """pyOCD and pyserial come with ``hwut[physical]``; without it every module still
    imports (or says which extra it needs)."""
    for path in _package_files():
        plain, _ = _imports(path)
        assert not plain & {"pyocd", "serial"}, path


def test_the_broker_extra_is_imported_guarded_only():
    """Celery and kombu come with ``hwut[broker]``; the embedded default (the README's
    first command, no extras) imports every module without them."""
    for path in _package_files():
        plain, _ = _imports(path)
        assert not plain & {"celery", "kombu", "amqp"}, path


def test_the_guard_is_recognised(tmp_path: Path):
    path = tmp_path / "probe.py"
    path.write_text("import json\ntry:\n    import pyocd\nexcept ImportError:\n    pass\n"
                    "def f():\n    import serial\n")
    assert _imports(path) == ({"json", "serial"}, {"pyocd"})
