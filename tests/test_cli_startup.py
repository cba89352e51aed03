"""The command line starts without Keras; `import keras_memory` still registers everything.

The `keras-memory` launcher sets `KERAS_MEMORY_LAZY=1`, builds the parser and
parses the command line before anything imports Keras (or a backend), so
`--help` and a refused flag are instant. Without the variable, `import
keras_memory` imports every subpackage, as it always did, so a saved model
loads right after it. Each case runs in a fresh interpreter: this one has
imported Keras already.
"""

import ast
import json
import os
import subprocess
import sys
import textwrap

import pytest

import keras_memory
from keras_memory.cli.parser import build_parser

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LEGACY = os.path.join(REPO, "tests", "fixtures", "legacy")
HEAVY = ("keras", "tensorflow", "jax", "torch")
# A few classes of each kind of home: shared layers, mechanism layers (loaded
# lazily by their packages), models, the optimizer.
REGISTERED = (
    "keras_memory>TransformerBlock",
    "keras_memory>XLAttention",
    "keras_memory>KNNAttention",
    "keras_memory>DenseKVAttention",
    "keras_memory>BlockRecurrentAttention",
    "keras_memory>MelodiLayer",
    "keras_memory>MemoryLM",
    "keras_memory>MelodiLM",
    "keras_memory>RetrofitLM",
    "keras_memory>Sophia",
)


def run_python(code, lazy):
    """Runs `code` in a fresh interpreter; returns the JSON its last line prints."""
    env = {k: v for k, v in os.environ.items() if k != "KERAS_MEMORY_LAZY"}
    if lazy:
        env["KERAS_MEMORY_LAZY"] = "1"
    done = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-4000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize(
    "argv",
    [
        ["train", "--kind", "memorizing"],
        ["train", "--kind", "block_recurrent", "--num-states", "8", "--memory-dropout", "0.1"],
        ["evaluate", "--memory-size", "64k"],
        ["bench", "ceiling", "--config", "tiny"],
        ["train", "--help"],
        ["train", "--num-neighbors", "0"],
    ],
)
def test_the_parser_parses_without_importing_keras_or_a_backend(argv):
    found = run_python(
        f"""
        import json, sys
        from keras_memory.cli.parser import build_parser

        try:
            build_parser().parse_args({argv!r})
            code = None
        except SystemExit as exit:  # --help, or a refused flag
            code = exit.code
        print()
        print(json.dumps({{"exit": code, "heavy": [m for m in {HEAVY!r} if m in sys.modules]}}))
        """,
        lazy=True,
    )
    assert found["heavy"] == []
    assert found["exit"] in (None, 0, 2)


LOAD = textwrap.dedent("""
    import json, sys
    {imports}
    import keras

    model = keras.saving.load_model({path!r})
    registered = set(keras.saving.get_custom_objects())
    print(json.dumps({{
        "class": type(model).__name__,
        "layers": sorted({{type(b.attention).__name__ for b in model.blocks}}),
        "missing": sorted(set({registered!r}) - registered),
        "keras_before": {keras_before},
    }}))
""")


def test_import_keras_memory_registers_the_classes_a_saved_model_needs():
    path = os.path.join(LEGACY, "memorizing.keras")
    imports = "import keras_memory\nkeras_before = 'keras' in sys.modules"
    found = run_python(
        LOAD.format(imports=imports, path=path, registered=REGISTERED, keras_before="keras_before"),
        lazy=False,
    )
    assert found["keras_before"]  # not lazy: everything, Keras too, is imported
    assert found["class"] == "MemoryLM"
    assert found["layers"] == ["KNNAttention", "XLAttention"]
    assert found["missing"] == []


def test_import_all_after_a_lazy_import_registers_them_too():
    path = os.path.join(LEGACY, "block_recurrent.keras")
    imports = (
        "import keras_memory\nkeras_before = 'keras' in sys.modules\nkeras_memory.import_all()"
    )
    found = run_python(
        LOAD.format(imports=imports, path=path, registered=REGISTERED, keras_before="keras_before"),
        lazy=True,
    )
    assert not found["keras_before"]
    assert found["class"] == "MemoryLM"
    assert found["layers"] == ["BlockRecurrentAttention", "XLAttention"]
    assert found["missing"] == []


def test_the_kinds_and_presets_import_without_keras():
    found = run_python(
        f"""
        import json, sys
        from keras_memory.memories import MemoryKind, get_kind, kind_names
        from keras_memory.memories.memorizing.kind import MemorizingOptions
        from keras_memory.models import MEMORY_SIZES, PRESETS
        from keras_memory.ops import RETRIEVAL_METHODS

        assert isinstance(get_kind("memorizing"), MemoryKind) and PRESETS and MEMORY_SIZES
        # None: exact with the memory on the device, scann with it on the host.
        assert MemorizingOptions().retrieval is None
        assert MemorizingOptions().memory_placement == "device"
        assert "scann" in RETRIEVAL_METHODS
        print(json.dumps({{"kinds": list(kind_names()),
                          "heavy": [m for m in {HEAVY!r} if m in sys.modules]}}))
        """,
        lazy=True,
    )
    assert found["heavy"] == []
    assert "memorizing" in found["kinds"]


def lazy_packages():
    packages = [getattr(keras_memory, name) for name in keras_memory.__all__ if name[0] != "_"]
    packages = [p for p in packages if hasattr(p, "__path__")]
    memories = keras_memory.memories
    mechanisms = ("block_recurrent", "melodi", "memorizing", "transformer_xl", "lswt")
    return packages + [getattr(memories, name) for name in mechanisms]


@pytest.mark.parametrize("package", lazy_packages(), ids=lambda p: p.__name__)
def test_every_exported_name_resolves_and_is_listed(package):
    for name in package.__all__:
        assert getattr(package, name) is not None, name
        assert name in dir(package), name


def type_checking_imports(package):
    """`{name: module}` of the imports under `if TYPE_CHECKING:` in `package`'s `__init__`."""
    with open(package.__file__) as f:
        tree = ast.parse(f.read())
    found = {}
    for node in tree.body:
        if isinstance(node, ast.If) and getattr(node.test, "id", None) == "TYPE_CHECKING":
            for statement in node.body:
                found.update({alias.name: statement.module for alias in statement.names})
    return found


@pytest.mark.parametrize(
    "package",
    [p for p in lazy_packages() if hasattr(p, "_LAZY")],
    ids=lambda p: p.__name__,
)
def test_the_lazy_names_are_imported_for_type_checkers_and_the_docs_alike(package):
    # The API docs (griffe) see a lazy name through its `if TYPE_CHECKING:` import.
    assert type_checking_imports(package) == package._LAZY


def test_lazy_names_are_the_classes_themselves():
    from keras_memory.layers import XLAttention as from_layers
    from keras_memory.memories import XLAttention
    from keras_memory.memories.transformer_xl.xl_attention import XLAttention as home
    from keras_memory.models import MemoryLM
    from keras_memory.models.memory_lm import MemoryLM as model_home

    assert XLAttention is home is from_layers
    assert MemoryLM is model_home
    with pytest.raises(AttributeError, match="no attribute 'NoSuchLayer'"):
        keras_memory.memories.NoSuchLayer  # noqa: B018


@pytest.mark.parametrize(
    "argv,message",
    [
        (["--num-neighbors", "0"], "argument --num-neighbors: expected an int >= 1; got '0'"),
        (["--num-states", "many"], "argument --num-states: expected an int >= 1; got 'many'"),
        (["--summary-size", "2.5"], "argument --summary-size: expected an int >= 1; got '2.5'"),
        (
            ["--long-term-memory-size", "-1"],
            "argument --long-term-memory-size: expected an int >= 0; got '-1'",
        ),
        (
            ["--memory-dropout", "nan"],
            "argument --memory-dropout: expected a number >= 0.0 and <= 1.0 (finite); got 'nan'",
        ),
        (
            ["--memory-dropout", "1.5"],
            "argument --memory-dropout: expected a number >= 0.0 and <= 1.0; got '1.5'",
        ),
        (["--memory-scale", "0"], "argument --memory-scale: expected a number > 0; got '0'"),
        (
            ["--memory-gate-bias", "inf"],
            "argument --memory-gate-bias: expected a number (finite); got 'inf'",
        ),
    ],
)
def test_a_bad_kind_flag_is_refused_naming_the_flag(argv, message, capsys):
    with pytest.raises(SystemExit) as exit:
        build_parser().parse_args(["train", *argv])
    assert exit.value.code == 2
    assert message in capsys.readouterr().err


def test_good_kind_flags_parse_to_their_values():
    args = build_parser().parse_args(
        [
            "train",
            "--num-neighbors",
            "4",
            "--long-term-memory-size",
            "0",  # Melodi without long-term memory
            "--memory-dropout",
            "0.25",
            "--memory-size",
            "1024",
        ]
    )
    assert (args.num_neighbors, args.long_term_memory_size) == (4, 0)
    assert (args.memory_dropout, args.memory_size) == (0.25, 1024)
