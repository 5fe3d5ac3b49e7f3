"""Bench (GPU): the GPU test suite's outcome and time per test, as committed evidence.

    python -m bench.gpu_tests        # runs `pytest -m gpu`, writes bench/results/gpu-tests-<device>.json
"""
from __future__ import annotations

import subprocess
import sys
import tempfile
import time
from pathlib import Path
from xml.etree import ElementTree as ET

from bench.common import device_kind, record, table


def main() -> None:
    if device_kind() == "cpu":
        sys.exit("bench.gpu_tests: no CUDA GPU here; every test would skip and the record would say nothing")
    with tempfile.TemporaryDirectory() as tmp:
        junit = Path(tmp) / "gpu.xml"
        t0 = time.perf_counter()
        # -v, streamed: a run cut short by the device's time limit still shows which tests ended and when
        proc = subprocess.Popen([sys.executable, "-u", "-m", "pytest", "-v", "-m", "gpu", "-p", "no:cacheprovider",
                                 f"--junitxml={junit}", "tests/test_kernels_gpu.py"], stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, text=True)
        for line in proc.stdout:
            print(f"[{time.perf_counter() - t0:6.1f} s] {line}", end="", flush=True)
        proc.wait()
        wall = time.perf_counter() - t0
        cases = ET.parse(junit).getroot().iter("testcase") if junit.exists() else []
        tests = [{"test": f"{c.get('classname')}::{c.get('name')}", "seconds": float(c.get("time", 0)),
                  "status": "failed" if c.find("failure") is not None or c.find("error") is not None
                  else "skipped" if c.find("skipped") is not None else "passed"} for c in cases]
    table(f"GPU tests ({wall:.0f} s wall, exit {proc.returncode})", ("test", "status", "s"),
          [(t["test"], t["status"], t["seconds"]) for t in tests])
    print(f"wrote {record('gpu-tests-' + device_kind(), {'wall_seconds': round(wall, 1), 'exit_code': proc.returncode, 'tests': tests})}")
    sys.exit(proc.returncode)


if __name__ == "__main__":
    main()
