"""Bench (CPU): where in the answer a normal-order model's length generalization breaks.

    python -m bench.answer_positions --ckpt results/checkpoints/normal_optop_iso_s1.pt [--digits 4,5,6,8,12]

Exact match says only that an answer is wrong. This scores every answer position on its own
(teacher-forced argmax, the same forward `looplm eval` scores) and records, per position counted
from the answer's first token, the accuracy and the model's most frequent prediction. The pattern
tells a broken rule from a shortcut: a model that counts its place in the answer instead of reading
its column's significance predicts the end token at the position where every training answer
ended (index 5 after 1-4 digit operands), whatever the operands' length. `--loops 1,2,4,16` scores
each position after each of those loop counts instead of digits + 4: whether a place, once right,
stays right as the loop runs on. `--kinds` and `--out` as named.
Writes bench/results/answer-positions.json (or --out).
"""
from __future__ import annotations

import argparse
import random
from collections import Counter

import torch

from bench.common import record, table
from looplm import checkpoint, data


@torch.no_grad()
def positions(model, digits: int, n: int, loops: int, kind: str, seed: int) -> list[dict]:
    """Per answer position (0 = the token after '='): accuracy and the commonest prediction."""
    rng = random.Random(seed)
    probs = [data.sample(rng, digits, digits, "any", kind) for _ in range(n)]
    b = data.make_batch(probs, model.config.data.format, model.vocab)
    pred = model.eval()(b.idx, loops=loops).logits.argmax(-1)
    where = [(b.targets[r] != data.IGNORE).nonzero().flatten() for r in range(n)]
    out = []
    for k in range(min(len(w) for w in where)):
        cols = [(r, int(w[k])) for r, w in enumerate(where)]
        ok = sum(bool(pred[r, i] == b.targets[r, i]) for r, i in cols) / n
        common, count = Counter(model.vocab.decode([int(pred[r, i])]) for r, i in cols).most_common(1)[0]
        out.append({"index": k, "accuracy": ok, "top_prediction": common, "top_share": count / n})
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--ckpt", action="append", required=True)
    ap.add_argument("--digits", default="4,5,6,8,12")
    ap.add_argument("--n", type=int, default=300)
    ap.add_argument("--extra-loops", type=int, default=4, help="loops = digits + this")
    ap.add_argument("--loops", help="comma-separated loop counts to score at (instead of digits + extra)")
    ap.add_argument("--kinds", default="random,carry_chain")
    ap.add_argument("--out", default="answer-positions", help="name of the JSON under bench/results/")
    args = ap.parse_args()
    rows = []
    for path in args.ckpt:
        model = checkpoint.load(path).model.float()
        for d in (int(x) for x in args.digits.split(",")):
            for kind in args.kinds.split(","):
                for loops in ([int(x) for x in args.loops.split(",")] if args.loops else [d + args.extra_loops]):
                    pos = positions(model, d, args.n, loops, kind, seed=d)
                    rows.append({"checkpoint": path, "digits": d, "kind": kind, "loops": loops, "positions": pos})
                    table(f"{path}: {d} digits, {kind}, loops {loops}", [str(p["index"]) for p in pos],
                          [[f"{p['accuracy']:.2f}" for p in pos],
                           [f"{p['top_prediction']} {p['top_share']:.2f}" for p in pos]])
    print(f"wrote {record(args.out, {'n': args.n, 'rows': rows})}")


if __name__ == "__main__":
    main()
