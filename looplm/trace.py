"""Thinking traces: per token, the prediction entropy after every loop and the loop it halted at."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Optional

import torch

from .config import HaltingConfig
from .data import Problem, render
from .evaluate import generate
from .model import LoopLM


@torch.no_grad()
def thinking_trace(model: LoopLM, problem: Problem, *, loops: Optional[int] = None,
                   halting: Optional[HaltingConfig] = None) -> dict:
    """Generate the answer greedily, then record entropy[loop][token] and halt steps for the
    whole sequence (prompt + generated answer)."""
    model.eval()
    fmt = model.config.data.format
    prompt, truth = render(problem, fmt)
    answer = generate(model, [prompt], max_new=len(truth) + 2, loops=loops, halting=halting)[0]
    text = prompt + answer
    idx = torch.tensor([model.vocab.encode(text[:-1] if len(text) > 1 else text)])
    out = model(idx, loops=loops, halting=halting, trace=True)
    return {"problem": {"a": problem.a, "b": problem.b}, "format": fmt, "prompt": prompt,
            "answer": answer, "correct": answer == truth, "tokens": list(model.vocab.decode(idx[0])),
            "predicts": list(text[1:]), "entropy": out.halting.entropy[:, 0].tolist(),
            "halt_step": out.halting.steps[0].tolist(), "loops": loops or model.config.model.n_loops,
            "halting": (halting or model.config.halting).model_dump()}


def heatmap(trace: dict, path: str | Path) -> Path:
    """A PNG: loops down, tokens across, entropy as colour, the halt step marked per token."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    ent = trace["entropy"]
    fig, ax = plt.subplots(figsize=(max(4, 0.35 * len(trace["tokens"]) + 2), 0.3 * len(ent) + 1.5))
    im = ax.imshow(ent, aspect="auto", cmap="magma_r", interpolation="nearest")
    ax.set_xticks(range(len(trace["tokens"])), [f"{t}\u2192{p}" for t, p in zip(trace["tokens"], trace["predicts"])],
                  fontsize=7, rotation=90)
    ax.set_ylabel("loop")
    ax.plot(range(len(trace["halt_step"])), [s - 1 for s in trace["halt_step"]], "c.", label="halted")
    ax.set_title(f"{trace['prompt']}{trace['answer']}  ({'correct' if trace['correct'] else 'wrong'})", fontsize=9)
    fig.colorbar(im, ax=ax, label="entropy (nats)")
    ax.legend(loc="upper right", fontsize=7)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        fig.savefig(tmp, dpi=120, format="png")    # whole or not at all: a temporary file, then a rename
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
        plt.close(fig)
    return path
