"""The package's layering, read from its own source.

`keras_memory` is built in layers that only import downwards:

    cli -> bench, plots -> training, generation -> models -> memories
        -> layers -> data, distribution -> ops -> backend

(`losses` and `optimizers` are thin public names for the LSWT toolkit's pieces
in `memories/lswt/`.) This module reads every module's imports, at module and
function level, with `ast` (nothing is imported), so the tests can hold the
rules and the docs can draw the picture from the code itself.

Example:
```python
from keras_memory import architecture

graph = architecture.import_graph()
assert not architecture.layering_violations(graph)
assert not architecture.import_cycles(graph)
```
"""

import ast
import os

PACKAGE = "keras_memory"
ROOT = os.path.dirname(os.path.abspath(__file__))

# Each top-level part and its level: a module imports only from parts of its
# own level or below. Parts on one level do not import each other unless
# listed in `ALLOWED_SIDEWAYS`.
LEVELS = {
    "version": 0,
    "lazy_names": 0,
    "backend": 1,
    "ops": 2,
    "data": 3,
    "distribution": 3,
    "layers": 4,
    "memories": 5,
    "losses": 6,
    "optimizers": 6,
    "models": 7,
    "training": 8,
    "generation": 8,
    "bench": 9,
    "plots": 9,
    "cli": 10,
    "architecture": 10,
}
ALLOWED_SIDEWAYS = {("bench", "plots"), ("generation", "training")}


def module_name(path):
    """`keras_memory/ops/knn.py` -> `keras_memory.ops.knn` (packages by their `__init__`)."""
    relative = os.path.relpath(path, os.path.dirname(ROOT))
    parts = relative[: -len(".py")].split(os.sep)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def modules():
    """`{module name: path}` of every module of the package."""
    found = {}
    for directory, _, files in os.walk(ROOT):
        for name in files:
            if name.endswith(".py"):
                path = os.path.join(directory, name)
                found[module_name(path)] = path
    return found


def _imported(node, module, is_package, known):
    """The package's modules one import statement names."""
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names if alias.name.startswith(PACKAGE)]
    if node.level:  # relative: from . import x
        base = module.split(".")
        base = base[: len(base) - node.level + (1 if is_package else 0)]
        target = ".".join(base + ([node.module] if node.module else []))
    else:
        target = node.module or ""
    if not target.startswith(PACKAGE):
        return []
    names = [f"{target}.{alias.name}" for alias in node.names]
    # `from package import submodule` imports the submodule.
    return [name for name in names if name in known] or [target]


def import_graph():
    """`{module: {imported module: function-level?}}` over the whole package.

    Function-level imports count like module-level ones; the flag says
    which it is (True: inside a function).
    """
    known = modules()
    graph = {}
    for module, path in known.items():
        with open(path) as f:
            tree = ast.parse(f.read(), path)
        is_package = path.endswith("__init__.py")
        edges = {}
        top_level = {id(node) for node in tree.body}
        for node in ast.walk(tree):
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                for target in _imported(node, module, is_package, known):
                    if target != module:
                        inner = id(node) not in top_level
                        edges[target] = edges.get(target, True) and inner
        graph[module] = edges
    return graph


def part(module):
    """The top-level part a module belongs to (`keras_memory.ops.knn` -> `ops`)."""
    pieces = module.split(".")
    return pieces[1] if len(pieces) > 1 else None


def layering_violations(graph):
    """`[(importer, imported)]` edges that point upwards or sideways.

    The package's own `__init__` (the public API) is exempt: it names everything.
    """
    bad = []
    for module, edges in graph.items():
        source = part(module)
        if source is None:
            continue
        for target in edges:
            destination = part(target)
            if destination is None or destination == source:
                continue
            if (source, destination) in ALLOWED_SIDEWAYS:
                continue
            if LEVELS.get(destination, 99) >= LEVELS.get(source, -1):
                bad.append((module, target))
    return sorted(bad)


def import_cycles(graph):
    """Every cycle of module imports, each as a list of modules (empty: none).

    A package's `__init__` importing its own submodules is not a cycle with
    those submodules importing their siblings, so only the edges between
    modules (and from a module to a package it does not belong to) count.
    """

    def counts(module, target):
        return not (module + ".").startswith(target + ".") and not (target + ".").startswith(
            module + "."
        )

    edges = {
        module: sorted(t for t in targets if t in graph and counts(module, t))
        for module, targets in graph.items()
    }
    cycles, state, stack = [], {}, []

    def visit(module):
        state[module] = "open"
        stack.append(module)
        for target in edges[module]:
            if state.get(target) == "open":
                cycles.append(stack[stack.index(target) :] + [target])
            elif target not in state:
                visit(target)
        stack.pop()
        state[module] = "done"

    for module in sorted(edges):
        if module not in state:
            visit(module)
    return cycles


def part_graph(graph):
    """`{part: {imported part}}`: the layering between top-level parts."""
    parts = {}
    for module, edges in graph.items():
        source = part(module)
        if source is None:
            continue
        targets = parts.setdefault(source, set())
        for target in edges:
            destination = part(target)
            if destination not in (None, source):
                targets.add(destination)
    return parts
