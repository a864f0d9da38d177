"""The import graph of solver/ and kernel_ext/ obeys docs/architecture.md: no circle, no forbidden arrow."""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("solver", "kernel_ext")
RULES_DOC = ROOT / "docs" / "architecture.md"


@dataclass(frozen=True)
class Import:
    """One import statement: the module that has it, the module it names, and its line."""

    source: str
    target: str
    line: int


def module_files() -> dict[str, Path]:
    """Every module of our packages by dotted name (a package is its `__init__`)."""
    modules: dict[str, Path] = {}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            parts = list(path.relative_to(ROOT).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            modules[".".join(parts)] = path
    return modules


def _absolute(module: str, is_package: bool, node: ast.ImportFrom) -> str:
    if not node.level:
        return node.module or ""
    base = module.split(".") if is_package else module.split(".")[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def _named_modules(module: str, is_package: bool, node: ast.Import | ast.ImportFrom,
                   modules: dict[str, Path]) -> Iterator[str]:
    """The modules a statement names: `from pkg import sub` names pkg.sub when that is a module, else pkg."""
    if isinstance(node, ast.Import):
        yield from (alias.name for alias in node.names)
        return
    base = _absolute(module, is_package, node)
    for alias in node.names:
        candidate = f"{base}.{alias.name}" if base else alias.name
        yield candidate if candidate in modules else base


def _owning_module(name: str, modules: dict[str, Path]) -> str | None:
    while name and name not in modules:
        name = name.rpartition(".")[0]
    return name or None


def imports_of(module: str, path: Path, modules: dict[str, Path]) -> Iterator[Import]:
    """The imports of our own modules in a file, wherever they stand (functions and TYPE_CHECKING too)."""
    tree = ast.parse(path.read_text(), filename=str(path))
    is_package = path.name == "__init__.py"
    for node in ast.walk(tree):
        if not isinstance(node, (ast.Import, ast.ImportFrom)):
            continue
        targets = {_owning_module(name, modules) for name in _named_modules(module, is_package, node, modules)}
        for target in sorted(t for t in targets if t and t != module):
            yield Import(module, target, node.lineno)


def import_graph() -> dict[str, list[Import]]:
    modules = module_files()
    return {name: list(imports_of(name, path, modules)) for name, path in modules.items()}


def find_cycles(graph: dict[str, list[Import]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan's algorithm, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    components: list[list[str]] = []
    counter = 0
    for start in graph:
        if start in index:
            continue
        work: list[tuple[str, Iterator[Import]]] = [(start, iter(graph[start]))]
        index[start] = low[start] = counter
        counter += 1
        stack.append(start)
        on_stack.add(start)
        while work:
            node, edges = work[-1]
            for edge in edges:
                nxt = edge.target
                if nxt not in index:
                    index[nxt] = low[nxt] = counter
                    counter += 1
                    stack.append(nxt)
                    on_stack.add(nxt)
                    work.append((nxt, iter(graph.get(nxt, []))))
                    break
                if nxt in on_stack:
                    low[node] = min(low[node], index[nxt])
            else:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[node])
                if low[node] == index[node]:
                    component = []
                    while True:
                        member = stack.pop()
                        on_stack.discard(member)
                        component.append(member)
                        if member == node:
                            break
                    if len(component) > 1:
                        components.append(sorted(component))
    return components


@dataclass(frozen=True)
class Rules:
    """The allowed arrows of docs/architecture.md: unit -> the units it may import."""

    allowed: dict[str, tuple[str, ...]]

    def unit_of(self, module: str) -> str | None:
        """The longest unit name that is the module or a package above it."""
        best = None
        for unit in self.allowed:
            if (module == unit or module.startswith(unit + ".")) and (best is None or len(unit) > len(best)):
                best = unit
        return best

    def allows(self, source_unit: str, target_unit: str) -> bool:
        if source_unit == target_unit:
            return True
        return target_unit in self.allowed[source_unit]


def load_rules(text: str) -> Rules:
    """Read the fenced ```imports block: one `unit -> unit unit ...` line each."""
    match = re.search(r"```imports\n(.*?)```", text, re.S)
    assert match, f"{RULES_DOC} has no ```imports block"
    allowed: dict[str, tuple[str, ...]] = {}
    for raw in match.group(1).splitlines():
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        unit, arrow, targets = line.partition("->")
        assert arrow, f"rule line without '->': {raw!r}"
        allowed[unit.strip()] = tuple(targets.split())
    return Rules(allowed)


@pytest.fixture(scope="module")
def graph() -> dict[str, list[Import]]:
    return import_graph()


@pytest.fixture(scope="module")
def rules() -> Rules:
    return load_rules(RULES_DOC.read_text())


def test_no_import_circle_between_files(graph: dict[str, list[Import]]) -> None:
    cycles = find_cycles(graph)  # TYPE_CHECKING imports count too
    assert not cycles, "import circles:\n" + "\n".join(" <-> ".join(c) for c in cycles)


def test_every_module_belongs_to_a_unit_of_the_rules(graph: dict[str, list[Import]], rules: Rules) -> None:
    orphans = [m for m in graph if rules.unit_of(m) is None]
    assert not orphans, f"modules that docs/architecture.md's imports block does not place: {orphans}"


def test_rules_name_real_units_and_form_no_circle(graph: dict[str, list[Import]], rules: Rules) -> None:
    for unit, targets in rules.allowed.items():
        assert any(rules.unit_of(m) == unit for m in graph), f"rule for {unit}, which has no module"
        for target in targets:
            assert target in rules.allowed, f"{unit} -> {target}: no such unit"
    arrows = {u: [Import(u, t, 0) for t in ts if t != u] for u, ts in rules.allowed.items()}
    assert not find_cycles(arrows), f"the allowed arrows form a circle: {find_cycles(arrows)}"


def test_every_import_is_an_allowed_arrow(graph: dict[str, list[Import]], rules: Rules) -> None:
    bad = []
    for module, imports in graph.items():
        source_unit = rules.unit_of(module)
        for imp in imports:
            target_unit = rules.unit_of(imp.target)
            if source_unit and target_unit and not rules.allows(source_unit, target_unit):
                bad.append(f"{module} (line {imp.line}) -> {imp.target}: {source_unit} -> {target_unit} is not allowed")
    assert not bad, "imports that docs/architecture.md does not allow:\n" + "\n".join(bad)


def test_the_checker_sees_a_circle_and_a_forbidden_arrow() -> None:
    """The checks above can fail: a two-file circle and an llb -> solve arrow are caught."""
    fake = {"a": [Import("a", "b", 1)], "b": [Import("b", "a", 1)], "c": []}
    assert find_cycles(fake) == [["a", "b"]]
    rules = load_rules("```imports\nsolver.llb -> solver.errors\nsolver.solve -> solver.llb\nsolver.errors ->\n```")
    assert not rules.allows("solver.llb", "solver.solve")
    assert rules.allows("solver.solve", "solver.llb")
    assert rules.unit_of("solver.llb.pb") == "solver.llb"
