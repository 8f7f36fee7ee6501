"""The layers read one way — spec → tiles → engine → runner → store → analysis: no module of the package
imports, at its top or inside a function, one that imports it back (directly or through others)."""

import ast
from pathlib import Path

import descentsim

PACKAGE = Path(descentsim.__file__).parent


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports(path: Path) -> set[str]:
    """Package modules that ``path`` imports anywhere but under ``if TYPE_CHECKING`` (relative imports
    resolved; packages by their __init__)."""
    here = module_name(path)
    package = here if path.name == "__init__.py" else here.rpartition(".")[0]
    found = set()
    tree = ast.parse(path.read_text())
    for block in ast.walk(tree):  # imports for type checkers only never run
        if isinstance(block, ast.If) and getattr(block.test, "id", None) == "TYPE_CHECKING":
            block.body = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.level:
            base = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
            target = f"{base}.{node.module}" if node.module else base
            found.add(target)
            found.update(f"{target}.{alias.name}" for alias in node.names)  # from . import store
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names if alias.name.startswith("descentsim"))
    return found


def graph() -> dict[str, set[str]]:
    modules = {module_name(p): p for p in PACKAGE.rglob("*.py")}
    return {name: {m for m in imports(path) if m in modules and m != name} for name, path in modules.items()}


def cycle(edges: dict[str, set[str]]) -> list[str] | None:
    """One import cycle, or None; the package's ``__init__`` modules (which gather names) are left out."""
    edges = {a: {b for b in bs if b != "descentsim"} for a, bs in edges.items() if a != "descentsim"}
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(edges.get(node, ())):
            if state.get(nxt) == 1:
                return stack[stack.index(nxt):] + [nxt]
            if nxt not in state and (found := visit(nxt)):
                return found
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(edges):
        if node not in state and (found := visit(node)):
            return found
    return None


def test_no_import_cycles():
    assert cycle(graph()) is None, " → ".join(cycle(graph()))


def test_the_analysis_layer_sits_on_top():
    """The runner and the store never import the analysis (ConvergenceMap, plots, critical curves, zooms)."""
    analysis = {"descentsim.convergence_map", "descentsim.critical", "descentsim.plot", "descentsim.zoom"}
    for low in ("runner", "store", "journal", "mpi", "refine", "map_data", "zoom_file"):
        assert not graph()[f"descentsim.{low}"] & analysis, low
