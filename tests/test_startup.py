"""Start-up: commands import only what they use, and ``import matcher`` only defines names.

``matcher --version``, ``matcher --help`` and ``matcher index info`` must start quickly (well under
half a second on an idle machine): they must not import numba, imagehash, Dask or distributed, whose
imports alone take that long. Each check runs the command in a fresh interpreter and lists the
modules it imported (deterministic: no timing). The public names of ``matcher`` are imported on
first use, and ``from matcher import X`` still works for every advertised name.
"""

from __future__ import annotations

import json
import os
import pickle
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import matcher

ROOT = Path(__file__).resolve().parent.parent
#: Slow to import and never needed to print the version or read an index's counts.
HEAVY = ("numba", "imagehash", "dask", "distributed", "scipy", "pywt")

_RUN_CLI = """
import json, sys
from matcher.cli import main
try:
    code = main(json.loads(sys.argv[1]))
except SystemExit as exc:  # --version and --help exit through argparse
    code = exc.code
sys.stdout.flush()
print("\\nMODULES " + json.dumps(sorted(sys.modules)), file=sys.stderr)
sys.exit(code)
"""


def run_cli(argv: list[str]) -> tuple[int, str, set[str]]:
    """Run the command line in a fresh interpreter: exit code, standard output, modules imported."""
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    done = subprocess.run(
        [sys.executable, "-c", _RUN_CLI, json.dumps(argv)],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        cwd=ROOT,
    )
    marker = done.stderr.rindex("MODULES ")
    return done.returncode, done.stdout, set(json.loads(done.stderr[marker + len("MODULES ") :]))


def imported(modules: set[str], names: tuple[str, ...]) -> list[str]:
    return sorted(name for name in names if name in modules)


@pytest.fixture(scope="module")
def small_index(tmp_path_factory) -> Path:
    from matcher.hashes import Hash
    from matcher.index import KnownIndex
    from matcher.known import KnownRecord

    path = tmp_path_factory.mktemp("startup") / "index"
    rng = np.random.default_rng(0)
    with KnownIndex.create(path, ("pdq", "phash")) as index:
        records = [
            KnownRecord(hashes={"pdq": Hash("pdq", rng.bytes(32)), "phash": Hash("phash", rng.bytes(8))})
            for _ in range(50)
        ]
        index.add(records, "agency")
    return path


def test_version_imports_no_third_party_module():
    code, out, modules = run_cli(["--version"])
    assert code == 0 and out.strip() == f"matcher {matcher.__version__}"
    assert imported(modules, (*HEAVY, "numpy", "PIL", "faiss", "sqlite3")) == []


def test_help_imports_no_third_party_module():
    code, out, modules = run_cli(["--help"])
    assert code == 0 and "index" in out and "scan" in out
    assert imported(modules, (*HEAVY, "numpy", "PIL", "faiss")) == []


def test_index_info_imports_neither_numba_nor_imagehash_nor_dask(small_index):
    code, out, modules = run_cli(["index", "info", str(small_index), "--json"])
    assert code == 0
    info = json.loads(out)
    assert info["records"] == 50 and info["algorithms"]["pdq"]["count"] == 50
    assert imported(modules, HEAVY) == []
    assert "matcher.scan" not in modules and "matcher.cluster" not in modules and "matcher.pipeline" not in modules


def test_index_query_of_a_small_index_imports_no_hashing_or_dask(small_index):
    code, out, modules = run_cli(["index", "query", str(small_index), "00" * 32])
    assert code in (0, 1) and json.loads(out)["query"] == "00" * 32
    assert imported(modules, HEAVY) == []


def test_hash_help_lists_its_options_without_importing_numba():
    code, out, modules = run_cli(["hash", "--help"])
    assert code == 0
    assert "--algorithms" in out and "--max-pixels" in out and "phash" in out and "{csv,jsonl,vpdq}" in out
    assert imported(modules, ("numba", "imagehash", "dask", "distributed", "faiss")) == []


@pytest.mark.parametrize(
    "command",
    [
        ["hash"],
        ["index"],
        ["index", "create"],
        ["index", "add"],
        ["index", "remove"],
        ["index", "info"],
        ["index", "query"],
        ["index", "export"],
        ["index", "split"],
        ["scan"],
        ["cluster"],
        ["compare"],
    ],
)
def test_every_command_has_its_options(command, capsys):
    """A subcommand's arguments are added when it is used: its help lists them all."""
    from matcher.cli import main

    with pytest.raises(SystemExit) as exit_info:
        main([*command, "--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith(f"usage: matcher {' '.join(command)} [-h]")
    expected = {
        "hash": "--exif-orientation",
        "add": "--views",
        "query": "--nearest",
        "export": "--format",
        "split": "--shards",
        "scan": "--max-file-bytes",
        "cluster": "--min-size",
        "compare": "--json",
        "create": "--algorithms",
        "remove": "--id",
        "info": "--json",
        "index": "split",
    }
    assert expected[command[-1]] in out


def test_bad_usage_of_a_subcommand_still_exits_2(capsys):
    from matcher.cli import main

    with pytest.raises(SystemExit) as exit_info:
        main(["index", "query"])
    assert exit_info.value.code == 2
    assert "matcher index query: error: the following arguments are required: INDEX" in capsys.readouterr().err


_IMPORT_ONLY = """
import json, logging, sys, warnings
def handlers():
    loggers = [logging.getLogger()] + [logging.getLogger(name) for name in list(logging.root.manager.loggerDict)]
    return {logger.name: [type(h).__name__ for h in logger.handlers] for logger in loggers}
before_filters, before_handlers = list(warnings.filters), handlers()
before_modules = set(sys.modules)
import matcher
after = handlers()
added = {name: hs for name, hs in after.items() if hs != before_handlers.get(name, [])}
print(json.dumps({
    "filters_changed": warnings.filters != before_filters,
    "added_handlers": added,
    "new_modules": sorted(set(sys.modules) - before_modules),
    "root_level": logging.getLogger().level,
}))
"""


def test_import_matcher_only_defines_names():
    """No warnings filter, no handler (but the library's NullHandler), no third-party import."""
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    done = subprocess.run(
        [sys.executable, "-c", _IMPORT_ONLY], capture_output=True, text=True, env=env, timeout=120, cwd=ROOT, check=True
    )
    facts = json.loads(done.stdout)
    assert facts["filters_changed"] is False
    assert facts["added_handlers"] == {"matcher": ["NullHandler"]}
    assert facts["root_level"] == 30  # WARNING, untouched
    third_party = [m for m in facts["new_modules"] if m.split(".")[0] in (*HEAVY, "numpy", "PIL", "faiss")]
    assert third_party == []
    assert [m for m in facts["new_modules"] if m.startswith("matcher.")] == ["matcher.version"]  # a string


def test_every_public_name_imports_and_is_its_modules_object():
    names = [name for name in matcher.__all__ if name != "__version__"]
    namespace: dict[str, object] = {}
    exec(f"from matcher import {', '.join(names)}", namespace)  # noqa: S102 - the statement users write
    from matcher.hashes import Hash
    from matcher.index import KnownIndex
    from matcher.scan import run_scan

    assert namespace["Hash"] is Hash and namespace["KnownIndex"] is KnownIndex and namespace["run_scan"] is run_scan
    assert set(matcher.__all__) <= set(dir(matcher))
    assert isinstance(matcher.__version__, str) and matcher.__version__


def test_an_unknown_name_is_an_attribute_error():
    with pytest.raises(AttributeError, match="no attribute 'no_such_name'"):
        matcher.no_such_name  # noqa: B018
    with pytest.raises(ImportError):
        exec("from matcher import no_such_name", {})  # noqa: S102


def test_deferred_imports_still_hash_and_pickle():
    """The imagehash functions are named, not imported, at import time: they pickle (workers) and hash."""
    import imagehash
    from PIL import Image

    from matcher.algorithms.imagehash_family import PHASH, WHASH

    image = Image.fromarray(np.random.default_rng(3).integers(0, 256, (64, 48, 3), dtype=np.uint8))
    copy = pickle.loads(pickle.dumps(PHASH))
    assert copy == PHASH
    assert str(copy.hash_image(image)) == str(imagehash.phash(image))
    assert str(WHASH.hash_image(image)) == str(imagehash.whash(image))


def test_a_missing_lazy_module_fails_at_first_use_with_import_error():
    from matcher.lazy import lazy_function, lazy_module

    stand_in = lazy_module("matcher_no_such_module_for_the_test")
    with pytest.raises(ModuleNotFoundError):
        stand_in.anything  # noqa: B018
    with pytest.raises(ModuleNotFoundError):
        lazy_function("matcher_no_such_module_for_the_test", "f")()


def test_search_builds_the_multi_index_from_the_size_mih_chooses():
    """The table size at which search builds the multi-index is MIH's own threshold."""
    from matcher.index import mih, search

    assert search.MIH_MIN_CODES == mih.MIN_CODES
