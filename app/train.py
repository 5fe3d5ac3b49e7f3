"""The torchrun entry point: one data-parallel replica of `looplm train`.

    torchrun --nproc_per_node N -m app.train --spec SPEC [--config FILE] [--out DIR] [--max-iters N]
             [--device cpu|cuda] [--resume] [--no-gate --reason TEXT] [--rca FILE]

`looplm train --nproc N` execs exactly this. The gate runs on rank 0 and every rank obeys its
verdict (app/pipeline.py); each rank then trains its replica (looplm/distributed.py).
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Optional

import dsl
from looplm.distributed import World

from . import pipeline


def parse_args(argv: Optional[list[str]] = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(prog="python -m app.train", description=__doc__.split("\n\n")[0])
    ap.add_argument("--spec", type=Path, default=dsl.BUNDLED, help="spec whose gate runs first (rank 0; all obey)")
    ap.add_argument("--config", type=Path, help="JSON overrides: {\"model\": {...}, \"train\": {...}}")
    ap.add_argument("--out", type=Path, default=Path("runs/default"))
    ap.add_argument("--max-iters", type=int)
    ap.add_argument("--device", choices=["auto", "cpu", "cuda"])
    ap.add_argument("--resume", action="store_true")
    ap.add_argument("--no-gate", action="store_true", help="skip the gate (needs --reason; recorded)")
    ap.add_argument("--reason", help="why the gate is bypassed")
    ap.add_argument("--rca", type=Path, help="RCA store for gate drafts and bypasses")
    return ap.parse_args(argv)


def main(argv: Optional[list[str]] = None) -> int:
    args = parse_args(argv)
    if args.no_gate and not args.reason:
        print("error: --no-gate needs --reason TEXT", file=sys.stderr)
        return 2
    world = World.from_env(args.device or "auto")
    try:
        trained = pipeline.gated_train(
            args.spec, args.out, config=args.config, resume=args.resume, rca=args.rca,
            values=pipeline.overrides(max_iters=args.max_iters, device=args.device),
            bypass=args.reason if args.no_gate else None, world=world,
            command="python -m app.train " + " ".join(sys.argv[1:]),
            log=lambda m: print(m, file=sys.stderr) if world.is_main else None)
    except pipeline.GateRefused as e:
        print(f"[rank {world.rank}] {e}", file=sys.stderr)
        return 1
    finally:
        world.close()
    if world.is_main:
        print(json.dumps(trained.summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
