"""The package's imports run one way (docs/ARCHITECTURE.md): a module imports only from its own unit or from a
lower layer, and no modules import each other in a circle. Read from the source, so a function-level import
that dodges a cycle counts as much as a top-level one (only `if TYPE_CHECKING:` blocks are left out)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from dcgan._moved import MOVED_MODULES

SRC = Path(__file__).resolve().parents[1] / "src" / "dcgan"

# Lowest first. A unit is a top-level module or subpackage of dcgan; core modules may use one another.
LAYERS = [
    {"_version", "_moved", "errors", "fileio", "options", "imaging", "figures", "plots", "rundir"},  # core
    {"models"},
    {"data", "sampling", "checkpoint"},
    {"metrics", "explore"},
    {"training"},
    {"export", "server", "report"},
    {"cli"},
    {"__main__", "__init__"},  # `python -m dcgan`, and the public API that gathers every layer
]
CORE = LAYERS[0]
# The 0.3.0 paths that forward to their new homes (dcgan._moved.OldPaths): no module may import through them.
MOVED = {old.split(".")[1] for old in MOVED_MODULES}


def _module_name(path: Path) -> str:
    parts = path.relative_to(SRC.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _is_type_checking(node: ast.If) -> bool:
    return isinstance(node.test, ast.Name) and node.test.id == "TYPE_CHECKING"


def _imports(path: Path) -> set[str]:
    """Every dcgan module (or package) that `path` imports, outside `if TYPE_CHECKING:`."""
    module = _module_name(path)
    package = module if path.name == "__init__.py" else module.rsplit(".", 1)[0]
    found: set[str] = set()

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.If) and _is_type_checking(node):
            return
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.startswith("dcgan"))
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if target.startswith("dcgan"):
                for alias in node.names:  # `from .x import y`: y when it is a module, else x
                    sub = f"{target}.{alias.name}"
                    found.add(
                        sub
                        if (SRC.parent / sub.replace(".", "/")).with_suffix(".py").exists() or (SRC.parent / sub.replace(".", "/")).is_dir()
                        else target
                    )
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(ast.parse(path.read_text()))
    return found


def _unit(module: str) -> str:
    parts = module.split(".")
    return "__init__" if len(parts) == 1 else parts[1]


def _layer(unit: str) -> int:
    return next(i for i, layer in enumerate(LAYERS) if unit in layer)


GRAPH = {_module_name(p): _imports(p) for p in sorted(SRC.rglob("*.py"))}


def test_every_unit_has_a_layer():
    units = {_unit(m) for m in GRAPH} - MOVED
    assert units == set().union(*LAYERS), "a new top-level module or package needs its layer in LAYERS"


@pytest.mark.parametrize("module", sorted(m for m in GRAPH if _unit(m) not in MOVED))
def test_imports_run_downwards(module):
    unit = _unit(module)
    upward = sorted(
        target
        for target in GRAPH[module]
        if (other := _unit(target)) != unit and not (unit in CORE and other in CORE) and (other in MOVED or _layer(other) >= _layer(unit))
    )
    assert not upward, f"{module} imports {upward} from its own layer or above (or through an old path)"


def test_no_modules_import_each_other_in_a_circle():
    edges = {m: {t for t in targets if t in GRAPH and t != m} for m, targets in GRAPH.items()}
    state: dict[str, int] = {}  # 1 on the current path, 2 done
    path: list[str] = []

    def walk(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(edges[node]):
            if state.get(nxt) == 1:
                return path[path.index(nxt) :] + [nxt]
            elif nxt not in state and (found := walk(nxt)):
                return found
        path.pop()
        state[node] = 2
        return None

    for start in sorted(edges):
        if start not in state and (cycle := walk(start)):
            pytest.fail(" -> ".join(cycle))
