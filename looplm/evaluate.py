"""Exact-match evaluation by digit count and carry count, with loop steps per token.

Exact match is computed from one teacher-forced forward pass: greedy decoding reproduces the
true answer exactly when the argmax at every answer position equals the true next token
(each position's computation depends only on its prefix, halting included), and differs
otherwise. `generate` does real greedy decoding; a test checks that both agree.
"""
from __future__ import annotations

from collections import defaultdict
from typing import Callable, Optional

import torch

from .config import HaltingConfig
from .data import IGNORE, Kind, Problem, make_batch, problems, render
from .model import LoopLM
from .tokens import END


class FormatMismatch(Exception):
    """Evaluating data in a format other than the checkpoint's (bug 3: the 9.1% illusion)."""


def check_format(model: LoopLM, fmt: Optional[str]) -> str:
    own = model.config.data.format
    if fmt is not None and fmt != own:
        raise FormatMismatch(f"the model was trained on {own}-order problems; refusing to evaluate "
                             f"{fmt}-order data (only carry-free sums would match: bug 3)")
    return own


def _rows_per_batch(T: int, batch_size: int, token_budget: int) -> int:
    """Rows per forward: attention is (T x T) per row, so long problems go in small batches."""
    return max(1, min(batch_size, token_budget // max(1, T * T)))


@torch.no_grad()
def score(model: LoopLM, probs: list[Problem], *, loops: Optional[int] = None,
          halting: Optional[HaltingConfig] = None, batch_size: int = 512,
          token_budget: int = 4_000_000, device: str | torch.device = "cpu",
          progress: Optional[Callable[[int], None]] = None) -> tuple[list[dict], float]:
    """Per problem: correct, digits, carries, mean loop steps on answer and prompt positions;
    and the mean answer loss over all problems."""
    model.eval()
    fmt = model.config.data.format
    out: list[dict] = []
    loss_sum, loss_n = 0.0, 0
    T = len("".join(render(probs[0], fmt))) if probs else 0
    step = _rows_per_batch(T, batch_size, token_budget)
    for i in range(0, len(probs), step):
        batch = make_batch(probs[i:i + step], fmt, model.vocab).to(device)
        res = model(batch.idx, batch.targets, loops=loops, halting=halting)
        pred = res.logits.argmax(dim=-1)
        is_answer = batch.targets != IGNORE
        loss_sum += float(res.loss) * int(is_answer.sum())
        loss_n += int(is_answer.sum())
        correct = ((pred == batch.targets) | ~is_answer).all(dim=1)
        real = batch.idx != model.vocab.pad_id
        is_prompt = real & ~is_answer
        steps = res.halting.steps.float()
        ans_steps = (steps * is_answer).sum(1) / is_answer.sum(1).clamp_min(1)
        prm_steps = (steps * is_prompt).sum(1) / is_prompt.sum(1).clamp_min(1)
        for j, p in enumerate(batch.problems):
            out.append({"correct": bool(correct[j]), "digits": p.digits, "carries": p.carries,
                        "steps_answer": float(ans_steps[j]), "steps_prompt": float(prm_steps[j]),
                        "applications": float(steps[j][real[j]].sum()), "tokens": int(real[j].sum())})
        if progress:
            progress(len(out))
    return out, loss_sum / max(1, loss_n)


def _mean(xs: list[float]) -> float:
    return sum(xs) / len(xs) if xs else 0.0


def evaluate(model: LoopLM, digits: list[int], n: int, *, seed: int = 0, loops: Optional[int] = None,
             halting: Optional[HaltingConfig] = None, fmt: Optional[str] = None, kind: Kind = "random",
             batch_size: int = 512, token_budget: int = 4_000_000,
             device: str | torch.device = "cpu", progress: Optional[Callable[[int, int], None]] = None) -> dict:
    """The eval report (JSON-ready) for n held-out problems of each digit count; `progress(done,
    total)` is called as problems are scored (long evals take minutes)."""
    fmt = check_format(model, fmt)
    rows: list[dict] = []
    loss: dict[str, float] = {}          # mean answer-token loss of each digit count's problems
    for d in digits:
        probs = problems(n, d, d, seed=seed * 7919 + d, split="val", kind=kind)
        scored, loss[str(d)] = score(model, probs, loops=loops, halting=halting, batch_size=batch_size,
                                     token_budget=token_budget, device=device,
                                     progress=progress and (lambda k: progress(len(rows) + k, n * len(digits))))
        rows += scored
    by_d, by_c = defaultdict(list), defaultdict(list)
    for r in rows:
        by_d[r["digits"]].append(r)
        by_c[r["carries"]].append(r)
    L = loops or model.config.model.n_loops
    used = sum(r["applications"] for r in rows)
    full = sum(r["tokens"] for r in rows) * L
    return {
        "accuracy_by_digits": {str(d): _mean([r["correct"] for r in by_d[d]]) for d in sorted(by_d)},
        "accuracy_by_carries": {str(c): _mean([r["correct"] for r in by_c[c]]) for c in sorted(by_c)},
        "avg_steps_answer": _mean([r["steps_answer"] for r in rows]),
        "avg_steps_prompt": _mean([r["steps_prompt"] for r in rows]),
        "answer_loss_by_digits": loss,
        "avg_steps_answer_by_digits": {str(d): _mean([r["steps_answer"] for r in by_d[d]]) for d in sorted(by_d)},
        "n_per_bucket": {str(d): len(by_d[d]) for d in sorted(by_d)},
        "n_per_carries": {str(c): len(by_c[c]) for c in sorted(by_c)},
        "loops": L, "halting": (halting or model.config.halting).model_dump(), "kind": kind,
        "block_token_applications": used, "fixed_depth_applications": full,
        "applications_saved": 1 - used / full if full else 0.0,
        "data_format": fmt, "config": model.config.model_dump(mode="json"),
    }


@torch.no_grad()
def generate(model: LoopLM, prompts: list[str], max_new: int, *, loops: Optional[int] = None,
             halting: Optional[HaltingConfig] = None, device: str | torch.device = "cpu") -> list[str]:
    """Greedy decoding, one token at a time (full recompute: simple, and exact)."""
    model.eval()
    outs = []
    for prompt in prompts:
        ids = torch.tensor([model.vocab.encode(prompt)], device=device)
        for _ in range(max_new):
            nxt = model(ids, loops=loops, halting=halting).logits[0, -1].argmax()
            ids = torch.cat([ids, nxt.view(1, 1)], dim=1)
            if model.vocab.chars[int(nxt)] == END:
                break
        outs.append(model.vocab.decode(ids[0, len(prompt):].tolist()))
    return outs


def greedy_correct(model: LoopLM, probs: list[Problem], **kw) -> list[bool]:
    fmt = model.config.data.format
    prompts = [render(p, fmt)[0] for p in probs]
    answers = generate(model, prompts, max_new=max(len(render(p, fmt)[1]) for p in probs) + 2, **kw)
    return [a == render(p, fmt)[1] for a, p in zip(answers, probs)]
