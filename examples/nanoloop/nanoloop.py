"""nanoloop: a looped transformer for addition in one file, written apart from LoopLM.

One pre-LN block applied `n_loop` times with the input re-injected each loop; packed rows
(several whole examples per row, an explicit block-diagonal causal mask, positions counted
inside each example); halting by the top probability (a token stops once it is sure enough);
the loss on the last loop only; its own tokenizer, training loop and checkpoint format.

    python nanoloop.py                      # train the default on the CPU, then evaluate

PyTorch only. The verifier reaches it through system.py (the contract's adapter).
"""
from __future__ import annotations

import math
import random
from dataclasses import asdict, dataclass
from typing import Literal

import torch
import torch.nn as nn
import torch.nn.functional as F

VOCAB = "0123456789+=;_"          # ';' ends an example, '_' pads the end of a packed row
END, PAD, IGNORE = ";", "_", -1   # targets of positions without a loss are -1 (not -100)
stoi = {c: i for i, c in enumerate(VOCAB)}


def encode(s: str) -> list[int]:
    return [stoi[c] for c in s]


def decode(ids) -> str:
    return "".join(VOCAB[int(i)] for i in ids)


@dataclass
class NanoConfig:
    n_embd: int = 64
    n_head: int = 4
    n_loop: int = 6                # block applications per forward
    block_size: int = 48           # tokens per packed row
    max_digits: int = 3            # operands of 1..max_digits digits
    fmt: Literal["plain", "reversed"] = "reversed"   # reversed: operands and sum written backwards
    batch_size: int = 16
    lr: float = 3e-3
    steps: int = 1500
    grad_clip: float = 1.0
    halt_prob: float = 0.95        # inference: a token halts once its top probability passes this
    seed: int = 7


# ---- data: whole examples packed into rows --------------------------------------------------
def example(a: int, b: int, fmt: str) -> tuple[str, str]:
    """(prompt ending in '=', answer ending in ';')."""
    if fmt == "reversed":
        return f"{str(a)[::-1]}+{str(b)[::-1]}=", f"{str(a + b)[::-1]};"
    return f"{a}+{b}=", f"{a + b};"


def draw(rng: random.Random, max_digits: int) -> tuple[int, int]:
    return tuple(rng.randint(0, 10 ** rng.randint(1, max_digits) - 1) for _ in range(2))


def pack(examples: list[tuple[str, str]], block_size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Rows of whole examples back to back, padded at the end: x (B, T) and y (B, T), where
    y[t] is token t+1 when that token belongs to an answer, else IGNORE."""
    rows, row = [], []
    for prompt, answer in examples:
        ids = [(t, False) for t in encode(prompt)] + [(t, True) for t in encode(answer)]
        if len(row) + len(ids) > block_size + 1:
            rows.append(row)
            row = []
        row += ids
    rows.append(row)
    x = torch.full((len(rows), block_size), stoi[PAD])
    y = torch.full((len(rows), block_size), IGNORE)
    for i, r in enumerate(rows):
        toks = torch.tensor([t for t, _ in r])
        x[i, :len(r) - 1] = toks[:-1]
        y[i, :len(r) - 1] = torch.where(torch.tensor([a for _, a in r[1:]]), toks[1:], IGNORE)
    return x, y


def get_batch(cfg: NanoConfig, step: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The packed batch of training step `step` (the same for every run with this seed): draw
    examples until they fill batch_size rows (counting lengths the way `pack` fills rows)."""
    rng = random.Random(cfg.seed * 100_003 + step)
    got, rows, used = [], 1, 0
    while rows <= cfg.batch_size:
        ex = example(*draw(rng, cfg.max_digits), cfg.fmt)
        n = len(ex[0]) + len(ex[1])
        if used + n > cfg.block_size + 1:
            rows, used = rows + 1, 0
        used += n
        got.append(ex)
    x, y = pack(got, cfg.block_size)
    return x[:cfg.batch_size], y[:cfg.batch_size]


# ---- the model -------------------------------------------------------------------------------
def segments(idx: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(example id, position inside the example) per token: an example ends after its ';'."""
    ends = (idx == stoi[END]).long()
    seg = torch.cumsum(ends, dim=1) - ends                     # the ';' belongs to its example
    start = torch.zeros_like(idx)
    start[:, 1:] = (seg[:, 1:] != seg[:, :-1]).long()
    pos = torch.arange(idx.shape[1], device=idx.device).expand_as(idx)
    first = torch.cummax(torch.where(start.bool() | (pos == 0), pos, torch.zeros_like(pos)), dim=1).values
    return seg, pos - first


class Block(nn.Module):
    def __init__(self, cfg: NanoConfig):
        super().__init__()
        self.ln1, self.ln2 = nn.LayerNorm(cfg.n_embd), nn.LayerNorm(cfg.n_embd)
        self.qkv = nn.Linear(cfg.n_embd, 3 * cfg.n_embd)
        self.out = nn.Linear(cfg.n_embd, cfg.n_embd)
        self.mlp = nn.Sequential(nn.Linear(cfg.n_embd, 4 * cfg.n_embd), nn.GELU(), nn.Linear(4 * cfg.n_embd, cfg.n_embd))
        self.n_head = cfg.n_head

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        B, T, C = x.shape
        q, k, v = self.qkv(self.ln1(x)).split(C, dim=2)
        q, k, v = (t.view(B, T, self.n_head, C // self.n_head).transpose(1, 2) for t in (q, k, v))  # (B, H, T, hd)
        att = (q @ k.transpose(-2, -1)) / math.sqrt(k.shape[-1])
        y = att.masked_fill(~mask, float("-inf")).softmax(-1) @ v
        x = x + self.out(y.transpose(1, 2).reshape(B, T, C))
        return x + self.mlp(self.ln2(x))


class NanoLoop(nn.Module):
    def __init__(self, cfg: NanoConfig):
        super().__init__()
        self.cfg = cfg
        self.tok = nn.Embedding(len(VOCAB), cfg.n_embd)
        self.pos = nn.Embedding(cfg.block_size + 1, cfg.n_embd)
        self.block = Block(cfg)
        self.ln_f = nn.LayerNorm(cfg.n_embd)
        self.head = nn.Linear(cfg.n_embd, len(VOCAB), bias=False)

    def forward(self, idx, targets=None, n_loop=None, halt_prob=None):
        """idx (B, T) -> (logits (B, T, V), loss or None, info {"steps": (B, T)}). halt_prob:
        at inference, freeze a token once its top probability exceeds it."""
        seg, pos = segments(idx)
        T = idx.shape[1]
        causal = torch.ones(T, T, dtype=torch.bool, device=idx.device).tril()
        mask = (causal & (seg[:, :, None] == seg[:, None, :]))[:, None]          # (B, 1, T, T)
        x0 = self.tok(idx) + self.pos(pos.clamp_max(self.cfg.block_size))
        real = idx != stoi[PAD]
        h, active = torch.zeros_like(x0), real.clone()
        steps = torch.zeros(idx.shape, dtype=torch.long, device=idx.device)
        trajectory = []
        for _ in range(n_loop or self.cfg.n_loop):
            new = self.block(h + x0, mask)
            h = torch.where(active[..., None], new, h)
            steps = steps + active.long()
            trajectory.append(h)
            if halt_prob is not None and not self.training:
                active = active & ~(self.head(self.ln_f(h)).softmax(-1).amax(-1) > halt_prob)
        logits = self.head(self.ln_f(trajectory[-1]))
        loss = None
        if targets is not None:
            loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1), ignore_index=IGNORE)
        return logits, loss, {"steps": steps}


# ---- training, checkpoints, evaluation -------------------------------------------------------
def make_optimizer(model: NanoLoop) -> torch.optim.Optimizer:
    return torch.optim.AdamW(model.parameters(), lr=model.cfg.lr, weight_decay=0.0)


def train_step(model: NanoLoop, opt: torch.optim.Optimizer, x, y) -> float:
    logits, loss, info = model(x, y)
    opt.zero_grad(set_to_none=True)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), model.cfg.grad_clip)
    opt.step()
    return loss.item()


def save(path, model: NanoLoop, opt=None, step: int = 0) -> None:
    torch.save({"cfg": asdict(model.cfg), "state": model.state_dict(), "format": model.cfg.fmt, "vocab": VOCAB,
                "step": step, "opt": opt.state_dict() if opt else None, "rng": torch.get_rng_state()}, path)


def load_weights(model: NanoLoop, state: dict) -> None:
    """All of the weights or none: a key or shape that differs is an error, never a random head."""
    model.load_state_dict(state, strict=True)


def load(path) -> tuple[NanoLoop, dict]:
    ck = torch.load(path, map_location="cpu", weights_only=True)
    if ck["vocab"] != VOCAB:
        raise ValueError(f"{path}: vocabulary {ck['vocab']!r} is not {VOCAB!r}")
    model = NanoLoop(NanoConfig(**ck["cfg"]))
    load_weights(model, ck["state"])
    return model, ck


def train(cfg: NanoConfig, ckpt_path, resume: bool = False, stop_after: int | None = None) -> dict:
    torch.manual_seed(cfg.seed)
    model = NanoLoop(cfg)
    opt = make_optimizer(model)
    start = 0
    if resume:
        model, ck = load(ckpt_path)
        opt = make_optimizer(model)
        opt.load_state_dict(ck["opt"])
        torch.set_rng_state(ck["rng"])
        start = ck["step"]
        if start >= cfg.steps:
            raise ValueError(f"{ckpt_path}: the run already finished ({start} of {cfg.steps} steps)")
    end = cfg.steps if stop_after is None else min(cfg.steps, start + stop_after)
    loss = float("nan")
    for step in range(start, end):
        x, y = get_batch(cfg, step)
        loss = train_step(model, opt, x, y)
    save(ckpt_path, model, opt, end)
    return {"steps": end, "loss": loss, "checkpoint": str(ckpt_path)}


def evaluate(model: NanoLoop, problems, fmt: str | None = None) -> list[bool]:
    """Exact match per problem (a, b), teacher-forced, fed in `fmt` (default: the model's own)."""
    fmt = fmt or model.cfg.fmt
    if fmt != model.cfg.fmt:
        raise ValueError(f"model trained on {model.cfg.fmt!r} examples; refusing {fmt!r} ones")
    model.eval()
    x, y = pack([example(a, b, fmt) for a, b in problems], model.cfg.block_size)
    with torch.no_grad():
        pred = model(x)[0].argmax(-1)
    seg, _ = segments(x)
    ok = (pred == y) | (y == IGNORE)
    right = []
    for r in range(x.shape[0]):
        for s in torch.unique(seg[r][y[r] != IGNORE]).tolist():
            right.append(bool(ok[r][(seg[r] == s) & (y[r] != IGNORE)].all()))
    return right


@torch.no_grad()
def generate(model: NanoLoop, prompt: str, max_new: int) -> str:
    model.eval()
    ids = encode(prompt)
    for _ in range(max_new):
        nxt = int(model(torch.tensor([ids]))[0][0, -1].argmax())
        ids.append(nxt)
        if VOCAB[nxt] == END:
            break
    return decode(ids[len(prompt):])


if __name__ == "__main__":
    cfg = NanoConfig()
    print(train(cfg, "nanoloop.pt"))
    model, _ = load("nanoloop.pt")
    rng = random.Random(1)
    print("exact match:", sum(evaluate(model, [draw(rng, cfg.max_digits) for _ in range(200)])) / 200)
