"""Bench (CPU): what the compiler made of each kernel for sm_90 — registers, stack, spill
stores/loads, tensor-core instructions — read from the cubin with cuobjdump.

    pip install nvidia-cuda-cuobjdump nvidia-cuda-nvdisasm    # once: the disassembler, from PyPI
    python -m bench.kernels_sass [--root CHECKOUT] [--shape-index 1] [--option num_worker_warps=4]

Compiles ahead of time (no GPU needed) with the parameter assumptions a JIT launch with fresh
torch tensors gets (16-byte aligned base, unit last stride, row strides divisible by 16
elements), because without them cuTile cannot use TMA and the code differs from what runs.
`--root` reads the kernels of another checkout (e.g. a `git worktree` of an older commit), so
two versions are compared by the same command. Writes bench/results/kernels-sass.json.
"""
from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.common import RESULTS, record, table
from verifier.kernel_build import jit_like

PATTERNS = {"instructions": r"/\*[0-9a-f]{4,}\*/", "spill_stores": r"\bSTL\b", "spill_loads": r"\bLDL\b",
            "wgmma": r"\bHGMMA\b", "tma_loads": r"\bUTMALDG\b"}


def cuobjdump() -> str:
    found = shutil.which("cuobjdump")
    if found:
        return found
    try:
        import nvidia.cu13
        path = Path(nvidia.cu13.__path__[0]) / "bin" / "cuobjdump"
        if path.exists():
            return str(path)
    except ImportError:
        pass
    raise SystemExit("cuobjdump not found: pip install nvidia-cuda-cuobjdump nvidia-cuda-nvdisasm")


def inspect(cubin: bytes, tool: str) -> dict:
    with tempfile.NamedTemporaryFile(suffix=".cubin") as f:
        f.write(cubin)
        f.flush()
        usage = subprocess.run([tool, "--dump-resource-usage", f.name], capture_output=True, text=True).stdout
        # -sass runs nvdisasm, which the PyPI wheels put beside cuobjdump
        env = {**os.environ, "PATH": f"{Path(tool).parent}{os.pathsep}{os.environ.get('PATH', '')}"}
        sass = subprocess.run([tool, "-sass", f.name], capture_output=True, text=True, env=env)
    m = re.search(r"REG:(\d+) STACK:(\d+) SHARED:(\d+)", usage)
    if not m:
        raise RuntimeError(f"cuobjdump gave no resource usage: {usage[:300]}")
    row = {"registers": int(m[1]), "stack_bytes": int(m[2]), "shared_bytes": int(m[3]), "cubin_bytes": len(cubin)}
    if sass.returncode:   # nvdisasm 13.5 rejects some cubins ("undefined value ... TABLES_opex_1")
        row.update({k: None for k in PATTERNS}, sass_error=sass.stderr.strip()[:200])
    else:
        row.update({k: len(re.findall(v, sass.stdout)) for k, v in PATTERNS.items()})
    return row


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--root", type=Path, help="a checkout whose kernels to read (default: this one)")
    ap.add_argument("--shape-index", type=int, default=-1, help="which declared shape of each kernel (default: last)")
    ap.add_argument("--arch", default="sm_90")
    ap.add_argument("--option", action="append", default=[], metavar="NAME=VALUE",
                    help="compile every kernel with this cuTile option changed, e.g. num_worker_warps=4 "
                         "('none': the compiler's own choice)")
    ap.add_argument("--out", type=Path, default=RESULTS / "kernels-sass.json")
    args = ap.parse_args()
    options = {k: None if v.lower() == "none" else int(v) for k, v in (o.split("=", 1) for o in args.option)}
    tool = cuobjdump()
    # an empty cuTile cache, so compile_seconds are cold compiles (a warm cache answers in 0.02 s)
    os.environ["CUDA_TILE_CACHE_DIR"] = tempfile.mkdtemp(prefix="cutile-cache-")
    if args.root:
        sys.path.insert(0, str(args.root.resolve()))
        for name in [m for m in sys.modules if m == "kernels" or m.startswith("kernels.")]:
            del sys.modules[name]
    import importlib

    import dsl
    spec = dsl.load((args.root or Path(".")) / "dsl" / "specs" / "looplm_system.dsl")
    rows = []
    for k in spec.system.kernels:
        shape = k.shapes[args.shape_index]
        for kernel, params in importlib.import_module(k.module).aot_signatures(**shape):
            kernel = kernel.variant(**options)
            t0 = time.perf_counter()
            cubin = kernel.export(jit_like(params), args.arch, cache=False)
            row = {"kernel": kernel.body.__name__, "spec_kernel": k.name, "shape": shape,
                   "constants": [p for p in params if isinstance(p, (int, bool))],
                   "compile_seconds": round(time.perf_counter() - t0, 2), **inspect(cubin, tool)}
            rows.append(row)
            print({c: row[c] for c in ("kernel", "constants", "compile_seconds", "registers", "stack_bytes",
                                      "spill_stores")}, flush=True)
    table(f"kernels for {args.arch} (AOT, JIT-like parameters)",
          ["kernel", "constants", "registers", "stack B", "shared B", "spill st", "spill ld", "wgmma", "instr"],
          [[r["kernel"], str(r["constants"]), r["registers"], r["stack_bytes"], r["shared_bytes"], r["spill_stores"],
            r["spill_loads"], r["wgmma"], r["instructions"]] for r in rows])
    meta = {"arch": args.arch, "root": str(args.root or "."), "options": options}
    print(f"wrote {record('kernels-sass', {**meta, 'kernels': rows}, out=args.out)}")


if __name__ == "__main__":
    main()
