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


def _imports(path: Path) -> tuple[set[str], set[str]]:
    """(top-level modules imported at module level, those imported inside functions)."""
    tree = ast.parse(path.read_text())
    top, nested = set(), set()

    def visit(node: ast.AST, in_function: bool) -> None:
        for child in ast.iter_child_nodes(node):
            inner = in_function or isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef))
            names: list[str] = []
            if isinstance(child, ast.Import):
                names = [a.name for a in child.names]
            elif isinstance(child, ast.ImportFrom) and child.level == 0 and child.module:
                names = [child.module]
            for name in names:
                (nested if inner else top).add(name.split(".")[0])
            visit(child, inner)

    visit(tree, False)
    return top, nested


def _package_files() -> list[Path]:
    folders = {Path(p) for pkg in (hwut, hwut.sim, hwut.backends) for p in pkg.__path__}
    return sorted(f for folder in folders for f in folder.rglob("*.py"))


def _distributions(module: str) -> set[str]:
    return {_canonical(d) for d in metadata.packages_distributions().get(module, ())}


def test_the_package_is_found_where_its_files_are():
    files = _package_files()
    names = {f.name for f in files}
    assert {"cli.py", "machine.py", "registry.py"} <= names, names


def _plugin_modules() -> set[str]:
    """Files that only another program loads, through its own entry-point group (pyOCD's
    ``pyocd.probe``): like an import inside a function, they run only where that
    program, an extra of ours, is installed."""
    ours = {"console_scripts", "hwut.backends"}
    files = set()
    for ep in metadata.distribution("hwut").entry_points:
        if ep.group not in ours:
            files.add(ep.value.split(":")[0].rsplit(".", 1)[-1] + ".py")
    return files


def test_every_module_level_import_is_a_declared_dependency():
    core, extras = _declared()
    plugins = _plugin_modules()
    missing = {}
    for path in _package_files():
        top, _ = _imports(path)
        allowed = core | extras if path.name in plugins else core
        for module in top - OWN - set(sys.stdlib_module_names):
            dists = _distributions(module)
            assert dists, f"{path}: imports {module}, which no installed distribution provides"
            if not dists & allowed:
                missing[f"{path.name}: {module}"] = sorted(dists)
    assert not missing, f"imported but not in [project].dependencies: {missing}"


def test_the_pyocd_probe_plugin_is_such_a_module():
    assert "simprobe.py" in _plugin_modules()


def test_imports_inside_functions_are_declared_at_least_in_an_extra():
    core, extras = _declared()
    for path in _package_files():
        _, nested = _imports(path)
        for module in nested - OWN - set(sys.stdlib_module_names):
            dists = _distributions(module)
            assert dists & (core | extras), f"{path}: imports {module} ({dists}), undeclared"
