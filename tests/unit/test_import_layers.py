"""The package's seams: every import goes down the layer table, and no modules import each other in a ring.

Imports inside functions count (a lazy import still couples two modules), and so do imports under
``TYPE_CHECKING`` (a type-level ring is still a ring for the reader). A new upward import or cycle fails here
with the importing line named.
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "qzhou_eval"

# Lowest first. A module belongs to the longest prefix listed (its unit); it may import its own unit or
# any unit of a lower layer, never one of its own layer (siblings such as runs and train stay apart) or
# above. The package root only re-exports, lazily, and is the top.
LAYERS: list[tuple[str, ...]] = [
    ("errors",),
    ("constants", "_paths", "_atomic", "_ranks"),
    ("integrity", "results.layout", "run_manifest"),
    ("record",),  # the record format and its readers: what a report reads, model-free
    ("modeling", "instructions"),
    ("option_table", "benchmarks"),
    ("presets",),
    ("options",),
    ("remote", "significance"),
    ("results",),  # readers sit below doers: a report imports nothing that loads a model
    ("report",),
    ("resolution",),
    ("encoder",),
    ("api",),
    ("runs", "train"),
    ("planning",),
    ("cli",),
    ("testing",),  # servers for tests and rehearsals: nothing in the package imports them
]


def _module_name(path: Path, package: Path) -> str:
    parts = path.relative_to(package).with_suffix("").parts
    return ".".join(p for p in parts if p != "__init__")


def _unit(module: str) -> tuple[int, str]:
    """(layer, unit prefix) of a module path relative to the package; the root's layer when none fits."""
    best = (len(LAYERS), "")
    for layer, prefixes in enumerate(LAYERS):
        for prefix in prefixes:
            if prefix and (module == prefix or module.startswith(prefix + ".")) and len(prefix) > len(best[1]):
                best = (layer, prefix)
    return best


def _imports(path: Path, package: Path) -> list[tuple[int, str]]:
    """(line, imported module relative to the package) of every import of the package's modules (type-only too)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "qzhou_eval":
            base = node.module.removeprefix("qzhou_eval").lstrip(".")
            for alias in node.names:
                sub = f"{base}.{alias.name}".lstrip(".")
                where = package.joinpath(*sub.split("."))
                found.append((node.lineno, sub if where.with_suffix(".py").exists() or where.is_dir() else base))
        elif isinstance(node, ast.Import):
            found += [
                (node.lineno, a.name.removeprefix("qzhou_eval."))
                for a in node.names
                if a.name.startswith("qzhou_eval.")
            ]
    return found


def _graph(package: Path = PACKAGE) -> dict[str, list[tuple[int, str]]]:
    return {_module_name(p, package): _imports(p, package) for p in sorted(package.rglob("*.py"))}


def _climbs(graph: dict[str, list[tuple[int, str]]]) -> list[str]:
    bad: list[str] = []
    for module, imports in graph.items():
        layer, unit = _unit(module)
        for line, target in imports:
            target_layer, target_unit = _unit(target)
            message = f"{module}:{line} imports {target} (layer {target_layer} >= {layer})"
            if target_unit != unit and target_layer >= layer and message not in bad:
                bad.append(message)
    return bad


def _cycles(graph: dict[str, list[tuple[int, str]]]) -> list[list[str]]:
    edges = {m: {t for _, t in imports if t != m} for m, imports in graph.items()}
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    cycles: list[list[str]] = []

    def visit(node: str, path: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(edges.get(node, ())):
            if state.get(nxt) == 1:
                cycles.append(path[path.index(nxt) :] + [nxt])
            elif nxt not in state:
                visit(nxt, path + [nxt])
        state[node] = 2

    for module in sorted(edges):
        if module not in state:
            visit(module, [module])
    return cycles


def test_every_module_has_a_layer():
    unplaced = [m for m in _graph() if m and _unit(m)[1] == ""]
    assert not unplaced, f"add these to LAYERS: {unplaced}"
    assert _unit("")[0] == len(LAYERS), "the package root is above every layer"


def test_no_import_climbs_or_crosses_the_layers():
    bad = _climbs(_graph())
    assert not bad, "imports that climb or cross the layer table:\n" + "\n".join(bad)


def test_no_import_cycles_between_modules():
    cycles = _cycles(_graph())
    assert not cycles, "import cycles:\n" + "\n".join(" -> ".join(c) for c in cycles)


def test_the_checks_see_a_planted_climb_and_cycle(tmp_path):
    fake = tmp_path / "qzhou_eval"
    (fake / "modeling").mkdir(parents=True)
    (fake / "errors.py").write_text("from qzhou_eval.modeling import loading\n")
    (fake / "modeling" / "loading.py").write_text("def f():\n    from qzhou_eval import errors\n")
    graph = _graph(fake)
    assert graph["errors"] == [(1, "modeling.loading")] and graph["modeling.loading"] == [(2, "errors")]
    assert _climbs(graph) == ["errors:1 imports modeling.loading (layer 4 >= 0)"]
    assert _cycles(graph) == [["errors", "modeling.loading", "errors"]]


def test_every_exception_class_lives_in_errors_py():
    import builtins

    errors_tree = ast.parse((PACKAGE / "errors.py").read_text(encoding="utf-8"))
    ours = {node.name for node in errors_tree.body if isinstance(node, ast.ClassDef)}
    builtin = {name for name, obj in vars(builtins).items() if isinstance(obj, type) and issubclass(obj, BaseException)}
    stray = []
    for path in sorted(PACKAGE.rglob("*.py")):
        if path.name == "errors.py":
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ClassDef):
                bases = {ast.unparse(b).rsplit(".", 1)[-1] for b in node.bases}
                if bases & (builtin | ours):
                    stray.append(f"{path.relative_to(PACKAGE)}: {node.name}")
    assert not stray, f"exception classes outside qzhou_eval/errors.py: {stray}"
