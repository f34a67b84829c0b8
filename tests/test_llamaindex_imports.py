"""The installed llama-index-latecore distribution merges into LlamaIndex's namespace packages."""

from __future__ import annotations

import doctest
import importlib
import json
import os
import subprocess
import sys
from importlib.metadata import distribution
from pathlib import Path

import pytest
from packaging.requirements import Requirement

SCRIPT = """
import json, sys
import llama_index
import llama_index.core
from llama_index.postprocessor.latecore import LateInteractionRerank
from llama_index.retrievers.latecore import LateInteractionRetriever, LateInteractionHybridRetriever
from llama_index.core.postprocessor.types import BaseNodePostprocessor
from llama_index.core.base.base_retriever import BaseRetriever
import llama_index.postprocessor.latecore as post, llama_index.retrievers.latecore as ret
print(json.dumps({
    "cwd_on_path": any(p in ("", ".") for p in sys.path),
    "subclasses": [
        issubclass(LateInteractionRerank, BaseNodePostprocessor),
        issubclass(LateInteractionRetriever, BaseRetriever),
        issubclass(LateInteractionHybridRetriever, BaseRetriever),
    ],
    "core": llama_index.core.__file__,
    "files": [post.__file__, ret.__file__],
}))
"""


def test_both_import_paths_work_outside_the_repository(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    completed = subprocess.run(
        [sys.executable, "-I", "-c", SCRIPT],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr
    report = json.loads(completed.stdout.strip().splitlines()[-1])
    assert report["subclasses"] == [True, True, True]
    assert not report["cwd_on_path"]
    assert "site-packages" in report["core"]
    assert all(f.endswith("latecore/__init__.py") for f in report["files"])


def test_distribution_metadata() -> None:
    requires = {
        r.name: r.specifier
        for r in map(Requirement, distribution("llama-index-latecore").requires or [])
        if r.marker is None
    }
    assert set(requires) == {"latecore", "llama-index-core"}
    core = requires["llama-index-core"]
    assert core.contains("0.12.0") and core.contains("0.14.25") and not core.contains("0.15.0")


@pytest.mark.parametrize(
    "module_name",
    [
        "llama_index.postprocessor.latecore.base",
        "llama_index.postprocessor.latecore._shared",
        "llama_index.postprocessor.latecore._pages",
        "llama_index.retrievers.latecore.base",
        "llama_index.retrievers.latecore.hybrid",
    ],
)
def test_docstring_examples_run(module_name: str) -> None:
    # The package lives outside the root testpaths, so its doctests run from here.
    result = doctest.testmod(importlib.import_module(module_name), optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0 and result.failed == 0
