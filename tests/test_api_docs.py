"""Every public class and function has an entry in the API reference (docs/api/)."""

import glob
import importlib
import inspect
import os
import re

DOCS = os.path.join(os.path.dirname(__file__), os.pardir, "docs", "api")
PACKAGES = (
    "keras_memory.layers",
    "keras_memory.memories",
    "keras_memory.models",
    "keras_memory.data",
    "keras_memory.training",
    "keras_memory.losses",
    "keras_memory.optimizers",
    "keras_memory.ops",
    "keras_memory.backend",
    "keras_memory.distribution",
    "keras_memory.generation",
    "keras_memory.bench.quality",
    "keras_memory.bench.recall",
    "keras_memory.bench.speed",
    "keras_memory.plots",
)
# Helpers of the modules above that are not part of the API.
INTERNAL = {
    "keras_memory.backend.device_name",
    "keras_memory.backend.top_k",
    "keras_memory.generation.functional_twin",
    "keras_memory.bench.quality.code_corpus",
    "keras_memory.bench.quality.english_corpus",
    "keras_memory.bench.quality.main",
    "keras_memory.bench.recall.main",
    "keras_memory.bench.speed.main",
}


def documented():
    names = set()
    for path in glob.glob(os.path.join(DOCS, "*.md")):
        with open(path) as f:
            names |= set(re.findall(r"^::: ([\w.]+)$", f.read(), flags=re.M))
    return names


def public_callables(package):
    module = importlib.import_module(package)
    names = getattr(module, "__all__", None) or [
        name
        for name, value in vars(module).items()
        if not name.startswith("_") and getattr(value, "__module__", None) == package
    ]
    return {
        f"{package}.{name}"
        for name in names
        if inspect.isclass(getattr(module, name)) or inspect.isfunction(getattr(module, name))
    }


def test_every_public_class_and_function_has_an_api_entry():
    entries = documented()
    missing = sorted(
        name
        for package in PACKAGES
        for name in public_callables(package) - INTERNAL
        if name not in entries
        # A re-export documented under the module that defines it.
        and not any(entry.endswith("." + name.rsplit(".", 1)[1]) for entry in entries)
    )
    assert not missing, f"add these to a page of docs/api/: {missing}"


def test_every_api_entry_names_something_that_exists():
    for entry in documented():
        module, _, name = entry.rpartition(".")
        try:
            target = importlib.import_module(entry)
        except ImportError:
            target = getattr(importlib.import_module(module), name, None)
        assert target is not None, entry
