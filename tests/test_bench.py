"""The GPU benches' bookkeeping, on a CPU (their timings need the GPU)."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from bench.gpu_tests import junit_rows
from bench.kernels_gpu import halting_modes, kept_rows
from bench.tiled_waves import live_tiles


def test_merge_keeps_every_earlier_row_not_run_again():
    rows = [{"digits": d, "L": L, "halting": h, "ms": {"cutile": i}} for i, (d, L, h) in
            enumerate((d, L, h) for d in (100, 1000) for h in (False, True) for L in (12, 24, 64))]
    run = [(1000, 64, True), (100, 12, False)]
    kept = kept_rows(rows, run)
    assert len(kept) == len(rows) - 2 and all((r["digits"], r["L"], r["halting"]) not in run for r in kept)
    assert kept == [r for r in rows if r in kept]            # their order stays
    assert kept_rows(rows, []) == rows


def test_halting_modes_are_off_and_on_only():
    assert halting_modes("off,on") == {False, True} and halting_modes(" on ") == {True} and halting_modes("") == set()
    with pytest.raises(SystemExit, match="halting modes are"):
        halting_modes("off,onn")


def test_live_tiles_count_the_tiles_with_a_token_still_running():
    """A tile is live in loop l while any real token of it ran more than l loops; padding and the
    rows past T never keep a tile live."""
    steps = torch.tensor([[1, 1, 3, 3, 2, 9], [2, 2, 2, 2, 0, 0]], dtype=torch.int32)   # B = 2, T = 6, tiles of 4
    real = torch.tensor([[1, 1, 1, 1, 1, 0], [1, 1, 1, 1, 0, 0]], dtype=torch.bool)
    # tiles: (0, 0) ran 3, (0, 1) ran 2 (the 9 is padding), (1, 0) ran 2, (1, 1) none
    assert live_tiles(steps, real, 4, 4) == [3, 3, 1, 0]


def test_a_failed_gpu_test_keeps_its_reason(tmp_path):
    """The cold run's record says why a test failed (a session lost a device call to learn it)."""
    xml = tmp_path / "0.xml"
    xml.write_text('<testsuites><testsuite name="pytest">'
                   '<testcase classname="tests.test_kernels_gpu" name="test_a" time="1.5"/>'
                   '<testcase classname="tests.test_kernels_gpu" name="test_b" time="2">'
                   '<failure message="AssertionError: CompilerExecutionError: Return code 5">trace</failure></testcase>'
                   '<testcase classname="tests.test_kernels_gpu" name="test_c" time="0"><skipped message="no GPU"/>'
                   '</testcase></testsuite></testsuites>')
    rows = junit_rows(xml)
    assert [r["status"] for r in rows] == ["passed", "failed", "skipped"]
    assert rows[1]["message"] == "AssertionError: CompilerExecutionError: Return code 5"
    assert "message" not in rows[0] and "message" not in rows[2]
    assert junit_rows(tmp_path / "missing.xml") == []


PRECOMPILE_MAIN = """\
import json
import torch                      # like bench.kernels_gpu: the main module itself imports torch
from torch._dynamo.utils import counters
from bench import kernels_gpu as K
from bench.precompile import cache_on, precompile

if __name__ == "__main__":
    shapes = [(8, 1, False), (8, 2, True)]
    cold = precompile(None, shapes, jobs=2, device="cpu")
    cache_on()
    model = K.inference_model(None, "cpu")
    idx = K.workload_batches(model, 8, n=1, device="cpu")[0]
    K._call(model, 2, K.halting_policy(True), "reference")(idx)       # eager first, as a row does
    counters.clear()
    K._compiled(model, 2, K.halting_policy(True))(idx)
    print(json.dumps({"cold": [[list(s), v] for s, v in cold.items()], "inductor": dict(counters["inductor"])}))
"""


def test_precompiled_shapes_are_what_the_timed_compile_loads(tmp_path):
    """bench.precompile's workers (fresh processes) fill Inductor's disk cache, and the bench's own
    compile of the same shape then hits it: the timed code is the workers' code, compiled once.
    Run from a main module that imports torch, as `python -m bench.kernels_gpu` is: a spawned
    worker re-imports it as '__mp_main__', and without the pool's initializer every cache key
    named torch's memory formats through it, so none was ever hit (H200, session 38). (On a CPU,
    tiny depths: the cache's keys do not depend on the device kind.)"""
    script = tmp_path / "main_importing_torch.py"
    script.write_text(PRECOMPILE_MAIN)
    root = Path(__file__).resolve().parents[1]
    env = {**os.environ, "TORCHINDUCTOR_CACHE_DIR": str(tmp_path / "inductor"),
           "PYTHONPATH": os.pathsep.join(filter(None, [str(root), os.environ.get("PYTHONPATH")]))}
    done = subprocess.run([sys.executable, str(script)], env=env, cwd=tmp_path, capture_output=True, text=True,
                          timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    out = json.loads(done.stdout.strip().splitlines()[-1])
    assert all(isinstance(s, float) and s > 0 for _, s in out["cold"]), out["cold"]
    assert out["inductor"].get("fxgraph_cache_hit", 0) >= 1 and out["inductor"].get("fxgraph_cache_miss", 0) == 0, \
        out["inductor"]


def test_a_test_that_never_ends_is_killed_and_recorded_where_it_sat(tmp_path):
    """A GPU launch that never returns blocks its test forever (session 37: two device calls spent
    on one). The runner kills a test process still running at its limit, records the test as
    'hung' with the frames pytest's faulthandler dumped, keeps the others' results, exits 124."""
    from bench.gpu_tests import run
    f = tmp_path / "test_hangs.py"
    f.write_text("import time\nimport pytest\n\n\n@pytest.mark.gpu\ndef test_ends():\n    pass\n\n\n"
                 "@pytest.mark.gpu\ndef test_never_ends():\n    time.sleep(120)\n")
    code, wall, tests, _ = run([f"{f}::test_ends", f"{f}::test_never_ends"], jobs=2, warm=True, seconds={}, limit=12)
    by = {t["test"].rsplit("::", 1)[1]: t for t in tests}
    assert code == 124 and wall < 60, (code, wall)
    assert by["test_ends"]["status"] == "passed" and by["test_never_ends"]["status"] == "hung", tests
    assert "killed after 12 s" in by["test_never_ends"]["message"] and "test_never_ends" in by["test_never_ends"]["message"]


def test_a_hung_tests_frames_are_its_own_threads():
    """faulthandler lists every thread; the record names the test's (session 37's dump: an
    Inductor worker thread first, then the test sitting in the parity check's sync)."""
    from bench.gpu_tests import dumped_frames
    dump = ["old output", "File \"x.py\", line 1 in earlier", "tests/t.py::test_p Timeout (0:02:50)!",
            "Thread 0x7f3b (most recent call first):", "  File \"pool.py\", line 9 in worker",
            "Thread 0x7f3f (most recent call first):",
            "  File \"verifier/checks/kernel_checks.py\", line 296 in _kernel_vs_reference",
            "  File \"verifier/checks/kernel_checks.py\", line 365 in _parity_rounds",
            "  File \"_pytest/python.py\", line 167 in pytest_pyfunc_call", "  File \"pytest/__main__.py\", line 9"]
    frames = dumped_frames(dump)
    assert frames[0].endswith("in _kernel_vs_reference") and len(frames) == 4
    assert dumped_frames(["no dump here"]) == []
