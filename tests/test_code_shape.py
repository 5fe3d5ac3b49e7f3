"""Functions short enough to read at once: none over 50 lines in the packages, the examples and
the benchmarks, except kernel bodies (one @tile_kernel is one GPU program)."""
import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FOLDERS = ("app", "verifier", "knowledge_base", "looplm", "kernels", "dsl", "rca", "examples", "bench")
MAX_LINES = 50


def _is_kernel(node) -> bool:
    return any(isinstance(d, ast.Call) and getattr(d.func, "id", "") == "tile_kernel" for d in node.decorator_list)


def test_no_function_over_50_lines_outside_kernel_bodies():
    long = []
    for folder in FOLDERS:
        for path in (ROOT / folder).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text())):
                if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and not _is_kernel(node):
                    n = node.end_lineno - node.lineno + 1
                    if n > MAX_LINES:
                        long.append(f"{path.relative_to(ROOT)}:{node.lineno} {node.name} ({n} lines)")
    assert not long, long
