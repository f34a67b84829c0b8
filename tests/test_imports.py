"""latecore's modules import each other without a cycle, and in any order.

A static check reads every module with :mod:`ast` and looks for a cycle in the
graph of imports between latecore's own modules, counting imports inside
functions too (a function-local import hides a cycle, it does not remove it).
Imports under ``if TYPE_CHECKING:`` never run and are left out. A package's
``__init__`` importing its own submodules is not a cycle; a submodule importing
its package back is. A dynamic check then imports every module in a fresh
interpreter, once in each order.
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
import textwrap
from dataclasses import dataclass
from pathlib import Path

import pytest

import latecore
import latecore.validation

PACKAGE_DIR = Path(latecore.__file__).parent


@dataclass(frozen=True)
class Edge:
    """``source`` imports ``target``, at ``path``:``line``."""

    source: str
    target: str
    path: Path
    line: int


def module_names(package_dir: Path, package: str) -> dict[str, Path]:
    """Every module of the package under ``package_dir``, by dotted name."""
    names = {}
    for path in sorted(package_dir.rglob("*.py")):
        parts = [package, *path.relative_to(package_dir).with_suffix("").parts]
        if parts[-1] == "__init__":
            parts.pop()
        names[".".join(parts)] = path
    return names


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


class _ImportCollector(ast.NodeVisitor):
    """The package-internal modules one module imports, wherever the import statement sits."""

    def __init__(self, module: str, path: Path, modules: dict[str, Path], package: str) -> None:
        self.module = module
        self.path = path
        self.modules = modules
        self.root = package
        self.package = module if path.name == "__init__.py" else module.rpartition(".")[0]
        self.edges: list[Edge] = []

    def visit_If(self, node: ast.If) -> None:
        if _is_type_checking(node.test):
            for child in node.orelse:
                self.visit(child)
        else:
            self.generic_visit(node)

    def visit_Import(self, node: ast.Import) -> None:
        for alias in node.names:
            self._add(alias.name, node.lineno)

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        if node.level:
            parts = self.package.split(".")
            base = ".".join(parts[: len(parts) - node.level + 1])
            base = f"{base}.{node.module}" if node.module else base
        else:
            base = node.module or ""
        submodules = [f"{base}.{a.name}" for a in node.names if f"{base}.{a.name}" in self.modules]
        if len(submodules) < len(node.names):  # reads names from ``base`` itself
            self._add(base, node.lineno)
        for submodule in submodules:  # ``from . import submodule`` needs only the submodule
            self._add(submodule, node.lineno)

    def _add(self, target: str, line: int) -> None:
        if target != self.root and not target.startswith(self.root + "."):
            return
        if target != self.module:
            self.edges.append(Edge(self.module, target, self.path, line))
        # Importing a.b.c also runs the packages a and a.b, but those that contain the
        # importer are being imported already: that is no edge (reading from one is).
        parts = target.split(".")
        inside = self.module.split(".")
        for depth in range(1, len(parts)):
            if parts[:depth] != inside[:depth]:
                self.edges.append(Edge(self.module, ".".join(parts[:depth]), self.path, line))


def import_edges(package_dir: Path, package: str) -> list[Edge]:
    """Every import of one of the package's modules by another, at module level or not."""
    modules = module_names(package_dir, package)
    edges = []
    for module, path in modules.items():
        collector = _ImportCollector(module, path, modules, package)
        collector.visit(ast.parse(path.read_text(encoding="utf-8"), filename=str(path)))
        edges.extend(collector.edges)
    return edges


def find_cycles(edges: list[Edge]) -> list[list[Edge]]:
    """One cycle (as its edges) per group of modules that import each other in a circle."""
    graph: dict[str, dict[str, Edge]] = {}
    for edge in edges:
        graph.setdefault(edge.source, {}).setdefault(edge.target, edge)
    # Tarjan's strongly connected components.
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in graph.get(node, {}):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            components.append(component)

    for node in sorted(graph):
        if node not in index:
            visit(node)
    cycles = []
    for component in components:
        members = set(component)
        start = min(component)
        if len(component) == 1 and start not in graph.get(start, {}):
            continue
        # Shortest way from start back to start inside the component (breadth first).
        paths: dict[str, list[Edge]] = {start: []}
        queue = [start]
        found: list[Edge] | None = None
        while queue and found is None:
            node = queue.pop(0)
            for target, edge in sorted(graph.get(node, {}).items()):
                if target == start:
                    found = [*paths[node], edge]
                    break
                if target in members and target not in paths:
                    paths[target] = [*paths[node], edge]
                    queue.append(target)
        assert found is not None
        cycles.append(found)
    return cycles


def describe(cycle: list[Edge], root: Path) -> str:
    steps = " -> ".join([cycle[0].source, *(edge.target for edge in cycle)])
    where = "; ".join(
        f"{edge.source} imports {edge.target} at {edge.path.relative_to(root)}:{edge.line}"
        for edge in cycle
    )
    return f"{steps} ({where})"


# The dynamic check: import each module in turn in one interpreter. A module whose own
# third-party dependency is not installed is reported as "missing", not as a failure.
_IMPORT_EACH = textwrap.dedent(
    """
    import importlib, importlib.util, json, sys
    failures, missing = {}, {}
    for name in json.loads(sys.argv[1]):
        try:
            importlib.import_module(name)
        except ModuleNotFoundError as error:
            top = (error.name or "").partition(".")[0]
            if top and top != sys.argv[2] and importlib.util.find_spec(top) is None:
                missing[name] = error.name
            else:
                failures[name] = f"{type(error).__name__}: {error}"
        except Exception as error:
            failures[name] = f"{type(error).__name__}: {error}"
    print(json.dumps({"failures": failures, "missing": missing}))
    """
)


def import_each(names: list[str], package: str, cwd: Path | None = None) -> dict[str, dict]:
    result = subprocess.run(
        [sys.executable, "-c", _IMPORT_EACH, json.dumps(names), package],
        capture_output=True,
        text=True,
        check=True,
        cwd=cwd,
        timeout=600,
    )
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_latecore_has_no_import_cycle() -> None:
    cycles = find_cycles(import_edges(PACKAGE_DIR, "latecore"))
    root = PACKAGE_DIR.parent
    assert not cycles, "import cycles in latecore:\n" + "\n".join(describe(c, root) for c in cycles)


@pytest.mark.parametrize("order", ["forward", "reverse"])
def test_every_module_imports_in_a_fresh_interpreter(order: str) -> None:
    names = sorted(module_names(PACKAGE_DIR, "latecore"))
    assert {"latecore.testing", "latecore.documents", "latecore.backends.qdrant"} <= set(names)
    outcome = import_each(names if order == "forward" else names[::-1], "latecore")
    assert outcome["failures"] == {}
    # qdrant-client is a test dependency: its backend must import, not be skipped.
    assert "latecore.backends.qdrant" not in outcome["missing"], outcome["missing"]


@pytest.mark.parametrize("module", ["latecore.testing", "latecore.documents"])
def test_light_modules_do_not_import_torch(module: str) -> None:
    code = (
        f"import sys, {module}; "
        "print(sorted(m for m in ('torch', 'transformers', 'pylate', 'tokenizers', "
        "'safetensors') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def _write_package(root: Path, files: dict[str, str]) -> Path:
    for name, source in files.items():
        path = root / "pkg" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(source, encoding="utf-8")
    return root / "pkg"


_CLEAN = {
    "__init__.py": "from .a import A\nfrom . import sub\n",
    "a.py": "A = 1\n",
    "b.py": "from typing import TYPE_CHECKING\n\nif TYPE_CHECKING:\n    from .c import C\n",
    "c.py": "from .b import *\n\nC = 1\n",
    "sub/__init__.py": "from .inner import X\n",
    "sub/inner.py": "from pkg import a\n\nX = a.A\n\n\ndef later():\n    from ..c import C\n",
}


def test_the_checks_pass_a_package_without_a_cycle(tmp_path: Path) -> None:
    """__init__ importing its submodules, TYPE_CHECKING imports, importing a sibling submodule."""
    package = _write_package(tmp_path, _CLEAN)
    assert find_cycles(import_edges(package, "pkg")) == []
    names = sorted(module_names(package, "pkg"))
    for order in (names, names[::-1]):
        assert import_each(order, "pkg", cwd=tmp_path) == {"failures": {}, "missing": {}}


def test_the_static_check_finds_a_cycle_through_a_function_local_import(tmp_path: Path) -> None:
    package = _write_package(
        tmp_path,
        {**_CLEAN, "a.py": "A = 1\n\n\ndef f():\n    from .sub import inner\n"},
    )
    (package / "sub" / "inner.py").write_text("from ..a import A\n\nX = A\n")
    cycles = find_cycles(import_edges(package, "pkg"))
    assert [describe(c, tmp_path).split(" (")[0] for c in cycles] == [
        "pkg.a -> pkg.sub.inner -> pkg.a"
    ]


def test_both_checks_find_a_submodule_importing_its_package_back(tmp_path: Path) -> None:
    package = _write_package(
        tmp_path,
        {**_CLEAN, "__init__.py": "from . import sub\nfrom .a import A\n"},
    )
    (package / "sub" / "inner.py").write_text("from pkg import A\n\nX = A\n")
    cycles = find_cycles(import_edges(package, "pkg"))
    assert len(cycles) == 1
    message = describe(cycles[0], tmp_path)
    assert message.startswith("pkg -> pkg.sub -> pkg.sub.inner -> pkg ("), message
    assert "pkg.sub.inner imports pkg at pkg/sub/inner.py:1" in message
    outcome = import_each(["pkg.sub.inner", "pkg.a"], "pkg", cwd=tmp_path)
    assert "partially initialized module 'pkg'" in outcome["failures"]["pkg.sub.inner"]


def test_a_missing_third_party_dependency_is_reported_apart(tmp_path: Path) -> None:
    _write_package(tmp_path, {**_CLEAN, "extra.py": "import no_such_dist_xyz\n"})
    outcome = import_each(["pkg.extra", "pkg.c"], "pkg", cwd=tmp_path)
    assert outcome == {"failures": {}, "missing": {"pkg.extra": "no_such_dist_xyz"}}


# --- Public names: the adapters stay on latecore's public side, shared names have one home ---

REPO = PACKAGE_DIR.parent
INTEGRATIONS = REPO / "integrations"

HOMES = {
    "BaseEncoder": "latecore.base_encoder",
    "progress_enabled": "latecore.base_encoder",
    "DEFAULT_MODEL": "latecore.models",
    "resolve_model": "latecore.models",
    **{name: "latecore.validation" for name in latecore.validation.__all__},
}
"""The one module each shared name is imported from, wherever it is used in this repository."""


@dataclass(frozen=True)
class ImportedName:
    """``path``:``line`` imports ``name`` from module ``module`` (absolute)."""

    path: Path
    line: int
    module: str
    name: str


def _module_of(path: Path) -> str:
    """Dotted name of the module at ``path`` (under the repository or an integration's root)."""
    roots = [d for d in INTEGRATIONS.iterdir() if d.is_dir()] + [REPO]
    root = next(r for r in roots if path.is_relative_to(r))
    parts = list(path.relative_to(root).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _where(path: Path) -> str:
    return path.relative_to(REPO).as_posix() if path.is_relative_to(REPO) else path.name


def imported_names(path: Path, module: str | None = None) -> list[ImportedName]:
    """Every module (``import a.b``, as name ``""``) and name (``from a import b``) ``path``
    imports, relative imports resolved against ``module`` (default: the file's own name),
    wherever the statement sits."""
    module = module or _module_of(path)
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
        if isinstance(node, ast.Import):
            found += [ImportedName(path, node.lineno, a.name, "") for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")
                base = ".".join(filter(None, [*parts[: len(parts) - node.level + 1], base]))
            found += [ImportedName(path, node.lineno, base, a.name) for a in node.names]
    return found


def private_latecore_imports(names: list[ImportedName]) -> list[str]:
    """Each import of a ``latecore._*`` module, or of a ``_name`` from a latecore module."""
    found = []
    for item in names:
        parts = item.module.split(".")
        if parts[0] != "latecore":
            continue
        dotted = [*parts, item.name] if item.name else parts
        if any(part.startswith("_") for part in dotted[1:]):
            found.append(f"{_where(item.path)}:{item.line} imports {'.'.join(dotted)}")
    return found


def misplaced_imports(names: list[ImportedName]) -> set[tuple[str, str, str]]:
    """(file, name, where from) for each shared name imported from another module than its home."""
    found = set()
    for item in names:
        home = HOMES.get(item.name)
        from_latecore = item.module == "latecore" or item.module.startswith("latecore.")
        if home and from_latecore and item.module != home:
            found.add((_where(item.path), item.name, item.module))
    return found


def _python_files(*roots: Path) -> list[Path]:
    return sorted(p for root in roots for p in root.rglob("*.py") if ".venv" not in p.parts)


def test_adapters_import_no_private_latecore_module() -> None:
    files = _python_files(INTEGRATIONS)
    assert len(files) >= 8 and any(p.name == "retrievers.py" for p in files)
    found = private_latecore_imports([n for path in files for n in imported_names(path)])
    assert not found, "adapters must use latecore's public modules:\n" + "\n".join(found)


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("from latecore._validation import check_count", "latecore._validation.check_count"),
        ("import latecore._int8", "latecore._int8"),
        ("from latecore import _atomic", "latecore._atomic"),
        ("def f():\n    from latecore.backends import _helper", "latecore.backends._helper"),
        ("from latecore.validation import check_count", None),
        ("from ._convert import document_from_hit", None),  # the adapter's own private module
    ],
)
def test_the_private_import_check_finds_every_form(
    tmp_path: Path, source: str, expected: str | None
) -> None:
    probe = tmp_path / "probe.py"
    probe.write_text(source + "\n", encoding="utf-8")
    found = private_latecore_imports(imported_names(probe, "langchain_latecore.probe"))
    line = source.count("\n") + 1
    assert found == ([] if expected is None else [f"probe.py:{line} imports {expected}"])


def test_each_shared_name_is_imported_from_its_one_home() -> None:
    files = _python_files(PACKAGE_DIR, INTEGRATIONS, REPO / "tests", REPO / "benchmarks")
    found = misplaced_imports([n for path in files for n in imported_names(path)])
    wrong = sorted(f"{p} imports {n} from {m}, not {HOMES[n]}" for p, n, m in found)
    assert not wrong, "\n".join(wrong)


def test_the_home_check_finds_a_name_imported_through_another_module(tmp_path: Path) -> None:
    probe = tmp_path / "probe.py"
    probe.write_text(
        "from latecore import BaseEncoder\nfrom .encoder import progress_enabled\n"
        "from latecore.base_encoder import BaseEncoder as Base\n",
        encoding="utf-8",
    )
    assert misplaced_imports(imported_names(probe, "latecore.probe")) == {
        ("probe.py", "BaseEncoder", "latecore"),
        ("probe.py", "progress_enabled", "latecore.encoder"),
    }
