"""Bench (GPU): `looplm eval`'s own evaluation with the kernels on and off, side by side.

    python -m bench.eval_gpu [--ckpt PATH] [--digits 100,1000] [--n 500] [--repeats 2] [--tf32-scores]

For each digit count, alternating backends (reference, cutile, reference, cutile, ...), times
`looplm.evaluate.evaluate` - the function `looplm eval` calls - on the same n problems, after one
untimed call per backend (cuTile's JIT and the allocator's first growth are not the eval's
cost). Records the median seconds per backend, their ratio, and both backends' exact-match
accuracy on the same problems (they must agree). `cutile` runs the default scores
(`dispatch.scores("auto")`: fp16 on the tiled kernel). `--tf32-scores` adds a third path, the
kernels with TF32 scores at every length (`dispatch.scores("tf32")`), beside the other two.
Writes bench/results/eval-<device>.json.
"""
from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import torch

from bench.common import HEADLINE, device_kind, record, table
from kernels import dispatch
from looplm import checkpoint
from looplm.data import make_batch, problems
from looplm.evaluate import evaluate, score



# path name -> (kernel backend, score precision)
PATHS = {"reference": ("reference", "matrix"), "cutile": ("cutile", "auto"), "cutile_tf32": ("cutile", "tf32")}


def timed(model, digits: int, n: int, path: str) -> tuple[float, dict]:
    backend, scores = PATHS[path]
    torch.cuda.synchronize()
    t0 = time.perf_counter()
    with dispatch.use(backend), dispatch.scores(scores):
        report = evaluate(model, [digits], n, seed=0, device="cuda", token_budget=64_000_000)
    torch.cuda.synchronize()
    return time.perf_counter() - t0, report


def disagreements(model, digits: int, n: int) -> list[dict]:
    """The problems the two backends score differently (the eval's own draw, seed 0): for each,
    the first answer position where their argmax differs and each path's top-2 logit margin
    there (a margin near 0 is a near-tie that rounding may flip; a large one is a wrong kernel)."""
    probs = problems(n, digits, digits, seed=digits, split="val")     # evaluate(seed=0) draws these
    right = {}
    for b in ("reference", "cutile"):
        with dispatch.use(b):
            right[b] = [r["correct"] for r in score(model, probs, device="cuda", token_budget=64_000_000)[0]]
    out = []
    for i in [i for i in range(n) if right["reference"][i] != right["cutile"][i]][:8]:
        batch = make_batch([probs[i]], model.config.data.format, model.vocab).to("cuda")
        logits = {}
        for b in ("reference", "cutile"):
            with dispatch.use(b), torch.no_grad():
                logits[b] = model(batch.idx).logits[0].float()
        answer = (batch.targets[0] != -100).nonzero().flatten()
        pred = {b: v.argmax(-1) for b, v in logits.items()}
        pos = next((int(t) for t in answer if pred["reference"][t] != pred["cutile"][t]), None)
        row = {"index": i, "a_digits": len(str(probs[i].a)), "reference_correct": right["reference"][i],
               "first_differing_position": pos}
        if pos is not None:
            for b, v in logits.items():
                top = v[pos].topk(2).values
                row[f"{b}_margin"] = float(top[0] - top[1])
        out.append(row)
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--ckpt", type=Path, default=HEADLINE)
    ap.add_argument("--digits", default="100,1000")
    ap.add_argument("--n", type=int, default=500)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--out", type=Path)
    ap.add_argument("--diff-only", action="store_true", help="only list the problems the backends disagree on")
    ap.add_argument("--tf32-scores", action="store_true", help="also time and score the kernels with TF32 attention scores")
    args = ap.parse_args()
    if device_kind() == "cpu":
        raise SystemExit("bench.eval_gpu: no CUDA GPU here")
    model = checkpoint.load(args.ckpt, map_location="cuda").model.cuda().eval()
    if args.diff_only:
        found = {d: disagreements(model, int(d), args.n) for d in args.digits.split(",")}
        print(found)
        print("wrote", record(f"eval-diff-{device_kind()}", {"checkpoint": str(args.ckpt), "n": args.n,
                                                             "disagreements": found}, args.out))
        return
    rows = []
    for d in (int(x) for x in args.digits.split(",")):
        secs: dict[str, list[float]] = {p: [] for p in PATHS if p != "cutile_tf32" or args.tf32_scores}
        acc = {}
        for b in secs:                                   # untimed: JIT, allocator growth
            acc[b] = timed(model, d, args.n, b)[1]["accuracy_by_digits"][str(d)]
        for _ in range(args.repeats):
            for b in secs:
                s, rep = timed(model, d, args.n, b)
                secs[b].append(s)
                if rep["accuracy_by_digits"][str(d)] != acc[b]:
                    raise SystemExit(f"{b} at {d} digits: accuracy changed between calls")
        med = {b: statistics.median(v) for b, v in secs.items()}
        row = {"digits": d, "n": args.n, "seconds": med, "all_seconds": secs, "accuracy": acc,
               "kernels_speedup": med["reference"] / med["cutile"], "same_accuracy": acc["reference"] == acc["cutile"]}
        if "cutile_tf32" in med:
            row.update(tf32_speedup=med["reference"] / med["cutile_tf32"], tf32_same_accuracy=acc["reference"] == acc["cutile_tf32"])
        rows.append(row)
        print(rows[-1], flush=True)
    paths = list(rows[0]["seconds"]) if rows else []
    table("looplm eval, kernels on vs off (s, median; accuracy)", ["digits", "n", *paths, *[f"acc {p}" for p in paths]],
          [[r["digits"], r["n"], *[r["seconds"][p] for p in paths], *[r["accuracy"][p] for p in paths]] for r in rows])
    print("wrote", record(f"eval-{device_kind()}", {"checkpoint": str(args.ckpt), "rows": rows}, args.out))


if __name__ == "__main__":
    main()
