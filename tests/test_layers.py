"""The architecture's layers, checked on the import graph (import-linter, on pyproject.toml's
contracts): app -> verifier -> knowledge_base -> looplm -> kernels -> dsl | rca, imports only
pointing down; the verifier and the knowledge base never import the system under test; kernels
import neither the model nor the spec language. And, from the same graph (grimp), no import
circle between two top-level packages."""
import itertools
from pathlib import Path

import grimp
from importlinter.cli import lint_imports

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("app", "verifier", "knowledge_base", "looplm", "kernels", "dsl", "rca")


def test_import_linter_contracts_are_kept():
    assert lint_imports(config_filename=str(ROOT / "pyproject.toml")) == 0


def test_no_import_circle_between_packages():
    graph = grimp.build_graph(*PACKAGES)
    circles = [(a, b) for a, b in itertools.combinations(PACKAGES, 2)
               if graph.chain_exists(a, b, as_packages=True) and graph.chain_exists(b, a, as_packages=True)]
    assert not circles, circles
