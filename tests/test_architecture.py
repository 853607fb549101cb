"""The house rules of the code, checked from its imports (no framework is imported).

`compare/` is one subpackage per stage, imports flowing one way (spec <- data <- run <-
parity / report / bench <- cli); the pair engine (`compare.pair`) stands alone, importing
no stage, and the study's parity is its client; `compare` reaches the implementations
only through `compare.run.contract`; the implementations see only the spec; every
module says its stage; no import cycle anywhere.
"""

from __future__ import annotations

import ast
import pathlib

import pytest
from conftest import ROOT

# What each stage may import from the package (besides itself and the base modules).
BASE = {"compare", "compare.errors", "compare.files", "compare.network"}
ALLOWED = {
    "pair": set(),
    "spec": set(),
    "data": {"spec"},
    "run": {"spec", "data"},
    "parity": {"spec", "data", "run", "pair"},
    "report": {"spec", "data", "run"},
    "bench": {"spec", "data", "run"},
}
PACKAGES = ("compare", "pytorch_impl", "keras_impl")


def _modules() -> dict[str, pathlib.Path]:
    found = {}
    for package in PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            parts = path.relative_to(ROOT).with_suffix("").parts
            name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
            found[name] = path
    return found


def _imports(path: pathlib.Path) -> set[str]:
    """Every module of this repository that `path` imports (top level or in a function)."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            names |= {f"{node.module}.{alias.name}" for alias in node.names}
    return {n for n in names if n.split(".")[0] in PACKAGES}


MODULES = _modules()
GRAPH = {
    name: {imported for imported in _imports(path) if imported in MODULES and imported != name}
    for name, path in MODULES.items()
}


def _stage(name: str) -> str | None:
    """The stage a module of `compare` belongs to (None for the base modules and cli)."""
    parts = name.split(".")
    return parts[1] if parts[0] == "compare" and len(parts) > 1 and parts[1] in ALLOWED else None


@pytest.mark.parametrize("name", sorted(n for n in MODULES if _stage(n)))
def test_each_stage_imports_only_the_stages_below_it(name):
    stage = _stage(name)
    for imported in GRAPH[name]:
        if imported in BASE or imported == f"compare.{stage}":
            continue
        assert imported.startswith("compare."), f"{name} imports {imported}"
        assert _stage(imported) in ALLOWED[stage] | {stage}, f"{name} imports {imported}"


def test_compare_reaches_the_implementations_only_through_the_contract():
    for name, path in MODULES.items():
        if name.startswith("compare") and name != "compare.run.contract":
            offenders = {i for i in _imports(path) if i.startswith(("pytorch_impl", "keras_impl"))}
            assert not offenders, f"{name} imports {offenders}"


def test_the_implementations_see_only_the_spec():
    for name, path in MODULES.items():
        if name.startswith(("pytorch_impl", "keras_impl")):
            outside = {
                i
                for i in _imports(path)
                if i.startswith("compare")
                and not i.startswith("compare.spec")
                and i not in ("compare", "compare.errors")
            }
            assert not outside, f"{name} imports {outside}"
            assert not any(
                i.startswith("keras_impl" if name.startswith("pytorch") else "pytorch_impl")
                for i in _imports(path)
            ), f"{name} imports the other implementation"


def test_no_import_cycle():
    def visit(name, trail):
        if name in trail:
            cycle = trail[trail.index(name) :] + [name]
            raise AssertionError("import cycle: " + " -> ".join(cycle))
        for imported in GRAPH[name]:
            # A package's __init__ importing its own submodule is not a cycle of stages.
            if not imported.startswith(name + "."):
                visit(imported, [*trail, name])

    for name in MODULES:
        visit(name, [])


@pytest.mark.parametrize("name", sorted(n for n in MODULES if n.startswith("compare")))
def test_every_module_names_its_stage(name):
    docstring = ast.get_docstring(ast.parse(MODULES[name].read_text())) or ""
    assert "Stage" in docstring or "stage" in docstring, name
