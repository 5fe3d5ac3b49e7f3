"""nanoloop as a system under test: the verifier's contract (verifier/contract.py) implemented
over nanoloop.py's own functions. Nothing here imports the verifier.

Its design differs from the bundled LoopLM on purpose, and says so in `design()`: packed rows,
an ignore index of -1, halting when the top probability passes a threshold, the loss on the
last loop only, a constant learning rate, its own checkpoint format and tokenizer.
"""
from __future__ import annotations

import dataclasses
import json
import random
import re
from pathlib import Path
from typing import Any, Mapping, Optional

import torch

import nanoloop as N

_PROMPT = re.compile(r"^(\d+)\+(\d+)=$")


class NanoLoopSystem:
    def __init__(self, config: Optional[Path] = None, overrides: Optional[Mapping[str, Any]] = None):
        values = json.loads(Path(config).read_text()) if config is not None else {}
        fields = {f.name for f in dataclasses.fields(N.NanoConfig)}
        unknown = sorted(set(values) - fields) + sorted(set(overrides or {}) - fields)
        if unknown:
            raise ValueError(f"nanoloop has no config field {', '.join(unknown)}")
        self.cfg = N.NanoConfig(**{**values, **dict(overrides or {})})
        # the checks' size: the configured architecture, a small batch
        self.check = dataclasses.replace(self.cfg, batch_size=8, n_embd=min(self.cfg.n_embd, 64))

    # ---- config and design ---------------------------------------------------------------
    def config_groups(self):
        return {"architecture": N.NanoConfig}

    def param_values(self):
        return dataclasses.asdict(self.cfg)

    def design(self) -> dict:
        return {"loops": self.check.n_loop, "supervision": "last",
                "halting": {"score": "max_prob", "halts_when": "above", "min_loops": 1},
                "layout": {"packed": True, "prompt_end": "=", "end": N.END, "pad": N.PAD, "ignore_index": N.IGNORE},
                "grad_clip": self.cfg.grad_clip, "schedule": {"kind": "constant", "lr": self.cfg.lr},
                "trained_format": self.cfg.fmt, "formats": ["plain", "reversed"],
                "check_size": f"width {self.check.n_embd}, batch {self.check.batch_size}"}

    # ---- model ---------------------------------------------------------------------------
    def build(self, seed: int = 0, extra_vocab: int = 0) -> N.NanoLoop:
        torch.manual_seed(seed)
        model = N.NanoLoop(self.check)
        if extra_vocab:     # the same architecture with a larger vocabulary (a new task)
            model.tok = torch.nn.Embedding(len(N.VOCAB) + extra_vocab, self.check.n_embd)
            model.head = torch.nn.Linear(self.check.n_embd, len(N.VOCAB) + extra_vocab, bias=False)
        return model

    def forward(self, model, idx, targets=None, *, loops=None, threshold=None, backend="reference"):
        if backend != "reference":
            raise NotImplementedError("not provided: kernels (nanoloop is PyTorch only)")
        logits, loss, info = model(idx, targets, n_loop=loops, halt_prob=threshold)
        return logits, loss, info["steps"]

    def loop_modules(self, model):
        return [model.block]

    def head_module(self, model):
        return model.head

    # ---- data and task -------------------------------------------------------------------
    def train_batches(self, batch_size: int, seed: int):
        cfg = dataclasses.replace(self.cfg, batch_size=batch_size, seed=seed)
        step = 0
        while True:
            yield N.get_batch(cfg, step)
            step += 1

    def decode(self, ids) -> str:
        return N.decode(ids)

    def encode(self, text: str) -> list[int]:
        return N.encode(text)

    def check_example(self, prompt: str, answer: str) -> bool:
        m = _PROMPT.match(prompt)
        if not m or not answer.isdigit():
            return False
        a, b = m.groups()
        if self.cfg.fmt == "reversed":
            a, b, answer = a[::-1], b[::-1], answer[::-1]
        return int(a) + int(b) == int(answer)

    # ---- training, run, checkpoint -------------------------------------------------------
    def optimizer(self, model):
        return N.make_optimizer(model)

    def train_step(self, model, opt, batch, step: int) -> float:
        x, y = batch
        return N.train_step(model, opt, x, y)

    def train_run(self, out_dir, *, small=False, steps=None, stop_after=None, resume=False, progress=None) -> dict:
        cfg = self.check if small else self.cfg
        cfg = dataclasses.replace(cfg, steps=steps or cfg.steps)
        Path(out_dir).mkdir(parents=True, exist_ok=True)
        return N.train(cfg, Path(out_dir) / "nanoloop.pt", resume=resume, stop_after=stop_after)

    def save(self, model, path) -> None:
        N.save(path, model)

    def load(self, path):
        return N.load(path)[0]

    def load_into(self, model, path) -> None:
        N.load_weights(model, torch.load(path, map_location="cpu", weights_only=True)["state"])

    # ---- eval ----------------------------------------------------------------------------
    def eval_problems(self, n: int, seed: int, model=None) -> list:
        rng = random.Random(seed)
        return [N.draw(rng, (model.cfg if model is not None else self.cfg).max_digits) for _ in range(n)]

    def render(self, problem, fmt: Optional[str] = None) -> tuple[str, str]:
        return N.example(*problem, fmt or self.cfg.fmt)

    def exact_match(self, model, problems: list, fmt: Optional[str] = None) -> list[bool]:
        return N.evaluate(model, problems, fmt)

    def model_format(self, model) -> str:
        return model.cfg.fmt

    def generate(self, model, prompts: list[str], max_new: int) -> list[str]:
        return [N.generate(model, p, max_new) for p in prompts]
