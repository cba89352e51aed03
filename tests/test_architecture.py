"""The package's layout rules hold: read from the source, so they stay true.

See docs/architecture.md: imports point down the layers, nothing imports in a
cycle, the kinds are named in one registry, no module reaches into another's
private names, and every library file is small enough to read in one go.
"""

import ast
import os
import re
import subprocess

import pytest

from keras_memory import architecture
from keras_memory.memories import kind_names

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
GRAPH = architecture.import_graph()
SOURCES = architecture.modules()
# Where the kinds may be named: their own folders and the registry.
KIND_HOMES = ("keras_memory.memories.",)
MAX_LINES = 400


def parse(module):
    with open(SOURCES[module]) as f:
        return ast.parse(f.read())


def test_the_graph_sees_module_and_function_level_imports():
    edges = GRAPH["keras_memory.models.memory_lm"]
    assert "keras_memory.memories.registry" in edges
    # Every module is in the graph, the memory kinds' folders too.
    for folder in ("transformer_xl", "memorizing", "block_recurrent", "melodi", "lswt"):
        assert f"keras_memory.memories.{folder}" in GRAPH


def test_imports_only_point_down_the_layers():
    assert architecture.layering_violations(GRAPH) == []


def test_every_part_of_the_package_has_a_level():
    parts = {architecture.part(m) for m in GRAPH} - {None}
    assert parts <= set(architecture.LEVELS), parts - set(architecture.LEVELS)


def test_no_import_cycles_function_level_imports_included():
    assert architecture.import_cycles(GRAPH) == []


def test_a_mechanism_folder_imports_no_other_mechanism_but_the_window_it_builds_on():
    mechanisms = ("transformer_xl", "memorizing", "block_recurrent", "melodi", "lswt")
    for module, edges in GRAPH.items():
        if not module.startswith("keras_memory.memories."):
            continue
        own = module.split(".")[2]
        if own not in mechanisms:  # the registry and the shared stack code
            continue
        for target in edges:
            if not target.startswith("keras_memory.memories."):
                continue
            other = target.split(".")[2]
            if other in mechanisms and other != own:
                # Memorizing and Block-Recurrent stacks put XLAttention in their other layers.
                assert (own, other) in {
                    ("memorizing", "transformer_xl"),
                    ("block_recurrent", "transformer_xl"),
                } and module.endswith(".kind"), (module, target)


def kind_comparisons(tree, kinds):
    """Lines that compare anything with a kind's name (`==`, `in`, `.startswith`)."""
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Compare):
            for operand in [node.left, *node.comparators]:
                constants = [operand] if isinstance(operand, ast.Constant) else []
                if isinstance(operand, (ast.Tuple, ast.List, ast.Set)):
                    constants = [e for e in operand.elts if isinstance(e, ast.Constant)]
                if any(c.value in kinds for c in constants):
                    found.append(node.lineno)
        elif (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr in ("startswith", "endswith")
            and node.args
            and isinstance(node.args[0], ast.Constant)
            and isinstance(node.args[0].value, str)
            and any(kind.startswith(node.args[0].value) for kind in kinds)
            and len(node.args[0].value) > 2
        ):
            found.append(node.lineno)
    return found


def scripts():
    """The repository's scripts: recipes/ and benchmarks/."""
    for folder in ("recipes", "benchmarks"):
        for name in sorted(os.listdir(os.path.join(REPO, folder))):
            if name.endswith(".py"):
                yield os.path.join(folder, name)


def test_the_kinds_are_named_in_the_registry_only():
    kinds = set(kind_names())
    offenders = {}
    for module in SOURCES:
        if module.startswith(KIND_HOMES):
            continue
        lines = kind_comparisons(parse(module), kinds)
        if lines:
            offenders[module] = lines
    for script in scripts():
        with open(os.path.join(REPO, script)) as f:
            lines = kind_comparisons(ast.parse(f.read()), kinds)
        if lines:
            offenders[script] = lines
    assert offenders == {}


def test_no_module_imports_another_modules_private_names():
    offenders = []
    for module in SOURCES:
        for node in ast.walk(parse(module)):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("keras_memory"):
                private = [
                    a.name
                    for a in node.names
                    if a.name.startswith("_") and not a.name.startswith("__")
                ]
                if private and node.module != module:
                    offenders.append((module, node.module, private))
    assert offenders == []


def test_no_module_reads_another_objects_private_attributes():
    offenders = []
    for module in SOURCES:
        for node in ast.walk(parse(module)):
            if not isinstance(node, ast.Attribute):
                continue
            name = node.attr
            if not name.startswith("_") or name.startswith("__"):
                continue
            owner = node.value
            if isinstance(owner, ast.Name) and owner.id in ("self", "cls"):
                continue
            if isinstance(owner, ast.Call) and getattr(owner.func, "id", None) == "super":
                continue  # a subclass extending its parent's method
            offenders.append((module, node.lineno, name))
    assert offenders == []


def test_library_files_are_small_enough_to_read_in_one_go():
    long_files = {}
    for module, path in SOURCES.items():
        with open(path) as f:
            lines = sum(1 for _ in f)
        if lines > MAX_LINES:
            long_files[module] = lines
    assert long_files == {}


def test_the_repository_stands_alone():
    if not os.path.isdir(os.path.join(REPO, ".git")):
        pytest.skip("not a git checkout")
    listed = subprocess.run(
        ["git", "ls-files"], cwd=REPO, capture_output=True, text=True, check=True
    ).stdout.split()
    pattern = re.compile(r"(\.\./)?shared/(bench|seeds|DESIGN|MECHANICS|STYLE)")
    offenders = []
    for name in listed:
        if name.endswith((".jsonl", ".keras", ".npz", ".png")) or name.startswith("tests/fixtures"):
            continue
        path = os.path.join(REPO, name)
        if not os.path.isfile(path):
            continue
        with open(path, errors="replace") as f:
            if pattern.search(f.read()):
                offenders.append(name)
    assert offenders == []
