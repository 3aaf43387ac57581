"""Layering: the import contracts in .importlinter hold, and packages do not import in cycles.

Two checks, both over the real import graph of megaplane/ (grimp, the
library import-linter is built on):

- `lint-imports` (import-linter's CLI, from the venv) runs every contract
  in .importlinter; its own report is the failure message.
- No import cycles, per top-level package. TYPE_CHECKING imports count
  (grimp includes them unless told not to), and so does the implicit import
  of a package's __init__ when one of its modules is imported from outside
  the package: `from .wal.log import X` runs megaplane/store/wal/__init__.py
  first, which is where import cycles usually hide at runtime.

Every package must have none (and the modules directly under megaplane/,
checked as one unit).
"""

from __future__ import annotations

import functools
import os
import subprocess
import sys
from typing import Dict, List, Set, Tuple

import grimp
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LINT_IMPORTS = os.path.join(os.path.dirname(sys.executable), "lint-imports")
PACKAGE = "megaplane"
# The modules directly under megaplane/ (cli, controlplane, ...), checked as one unit.
TOP_LEVEL_MODULES = "megaplane.<modules>"


def test_import_contracts_hold() -> None:
    assert os.path.exists(LINT_IMPORTS), f"import-linter's lint-imports is not installed next to {sys.executable}"
    r = subprocess.run(
        [LINT_IMPORTS, "--no-cache", os.path.join(ROOT, ".importlinter")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert r.returncode == 0, f"lint-imports found broken contracts:\n{r.stdout}\n{r.stderr}"


# -- import cycles ----------------------------------------------------------------------------


def _ancestors(module: str) -> List[str]:
    parts = module.split(".")
    return [".".join(parts[:i]) for i in range(1, len(parts))]


@functools.lru_cache(maxsize=None)
def _graph() -> "grimp.ImportGraph":
    # exclude_type_checking_imports defaults to False; spelled out because it is the point.
    return grimp.build_graph(
        PACKAGE, include_external_packages=False, exclude_type_checking_imports=False, cache_dir=None
    )


@functools.lru_cache(maxsize=None)
def _edges() -> Dict[str, Tuple[str, ...]]:
    """importer -> imported modules, with the package __init__s each import runs."""
    graph = _graph()
    out: Dict[str, Tuple[str, ...]] = {}
    for m in graph.modules:
        targets: Set[str] = set(graph.find_modules_directly_imported_by(m))
        own = set(_ancestors(m)) | {m}
        for t in list(targets):
            # The importer's own ancestors are already importing when it runs; the others run now.
            targets.update(a for a in _ancestors(t) if a not in own)
        targets.discard(m)
        out[m] = tuple(sorted(targets))
    return out


@functools.lru_cache(maxsize=None)
def _cycles() -> Tuple[Tuple[str, ...], ...]:
    """Strongly connected components with more than one module (Tarjan, iterative)."""
    edges = _edges()
    index: Dict[str, int] = {}
    low: Dict[str, int] = {}
    on_stack: Set[str] = set()
    stack: List[str] = []
    found: List[Tuple[str, ...]] = []
    counter = 0
    for root in sorted(edges):
        if root in index:
            continue
        work = [(root, 0)]
        while work:
            v, i = work.pop()
            if i == 0:
                index[v] = low[v] = counter
                counter += 1
                stack.append(v)
                on_stack.add(v)
            targets = edges.get(v, ())
            if i < len(targets):
                work.append((v, i + 1))
                w = targets[i]
                if w not in index:
                    work.append((w, 0))
                elif w in on_stack:
                    low[v] = min(low[v], index[w])
                continue
            if low[v] == index[v]:
                comp = []
                while True:
                    w = stack.pop()
                    on_stack.discard(w)
                    comp.append(w)
                    if w == v:
                        break
                if len(comp) > 1:
                    found.append(tuple(sorted(comp)))
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[v])
    return tuple(found)


def _in_unit(module: str, unit: str) -> bool:
    if unit == TOP_LEVEL_MODULES:
        return module.count(".") == 1 and not _graph().find_children(module)
    return module == unit or module.startswith(unit + ".")


def cycles_in(unit: str) -> List[Tuple[str, ...]]:
    """The import cycles (strongly connected components) that include a module of `unit`."""
    return [c for c in _cycles() if any(_in_unit(m, unit) for m in c)]


def describe(cycle: Tuple[str, ...]) -> str:
    graph = _graph()
    members = set(cycle)
    lines = [f"cycle of {len(cycle)} modules:"]
    for m in cycle:
        for t in _edges()[m]:
            if t not in members:
                continue
            details = graph.get_import_details(importer=m, imported=t)
            where = ", ".join(f"l.{d['line_number']} {d['line_contents'].strip()}" for d in details)
            lines.append(f"  {m} -> {t}  [{where or 'runs the package __init__'}]")
    return "\n".join(lines)


def _units() -> List[str]:
    graph = _graph()
    packages = sorted(m for m in graph.find_children(PACKAGE) if graph.find_children(m))
    return packages + [TOP_LEVEL_MODULES]


@pytest.mark.parametrize("unit", _units())
def test_no_import_cycles(unit: str) -> None:
    found = cycles_in(unit)
    assert not found, f"{unit} imports in {len(found)} cycles:\n" + "\n".join(describe(c) for c in found)
