"""Bench: `looplm train` defaults on this CPU — time to 99% held-out exact match on 1-4 digit
operands, peak memory, and a fresh held-out evaluation.   python -m bench.train_cpu"""
from __future__ import annotations

import json
import tempfile
from pathlib import Path

import torch

from bench.common import record, table
from looplm import checkpoint
from looplm.config import Config
from looplm.data import problems
from looplm.evaluate import evaluate, score
from looplm.train import train


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp)
        summary = train(Config(), out)
        rows = [json.loads(l) for l in (out / "trace.jsonl").read_text().splitlines()]
        first99 = next((r for r in rows if r["val_accuracy"] >= 0.99), None)
        model = checkpoint.load(out / "ckpt.pt").model
        fresh = problems(2000, 1, 4, seed=424242, split="val")     # operands of 1-4 digits, held out
        rows_fresh, _ = score(model, fresh)
        held_out_acc = sum(r["correct"] for r in rows_fresh) / len(rows_fresh)
        ood = evaluate(model, [5, 8, 12, 16, 32], 200, seed=5)["accuracy_by_digits"]
    data = {"threads": torch.get_num_threads(), "config": Config().model_dump(mode="json"),
            "time_to_99_s": first99["time_s"] if first99 else None,
            "step_to_99": first99["step"] if first99 else None,
            "train_summary": summary, "held_out_accuracy_1_4_digits": held_out_acc,
            "held_out_problems": len(fresh), "ood_accuracy_by_digits": ood}
    table("looplm train (defaults) on the CPU",
          ["time to 99% (s)", "steps", "stopped at (s)", "held-out 1-4 digits (n=2000)", "peak MB", "tokens/s"],
          [[data["time_to_99_s"], data["step_to_99"], summary["time_s"], f"{held_out_acc:.2%}",
            summary["peak_memory_mb"], summary["tokens_per_s"]]])
    table("same model, longer numbers (200 each)", list(ood), [[f"{v:.1%}" for v in ood.values()]])
    print(f"wrote {record('train_cpu', data)}")


if __name__ == "__main__":
    main()
