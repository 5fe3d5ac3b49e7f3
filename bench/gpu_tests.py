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
    with tempfile.TemporaryDirectory() as tmp:
        junit = Path(tmp) / "gpu.xml"
        t0 = time.perf_counter()
        proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-m", "gpu", "-p", "no:cacheprovider",
                               f"--junitxml={junit}", "tests/test_kernels_gpu.py"], capture_output=True, text=True)
        wall = time.perf_counter() - t0
        print(proc.stdout[-12000:], proc.stderr[-3000:])
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
