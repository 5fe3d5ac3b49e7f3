"""Addition problems as whole, aligned, padded batches; a char-level corpus for LM runs.

Every batch row is one whole problem starting at position 0 (never a slice of a token
stream: bug 1), and only the answer digits and the end token are targets; every other
position holds the ignore index (bug 2). The format travels with the data (`Batch.format`)
and with every checkpoint, so an eval can refuse a mismatch (bug 3).

Formats, for 123 + 456 = 579:
    reversed  "321+654=975$"   operands and sum least-significant digit first ("double reverse")
    normal    "123+456=0579$"  most-significant first; the sum left-padded to max(len)+1 digits
"""
from __future__ import annotations

import random
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import torch

from .tokens import ADDITION, END, EQUALS, PLUS, Vocab, char_vocab

IGNORE = -100
Format = Literal["reversed", "normal"]
Kind = Literal["random", "carry_chain", "decoy", "unequal"]


@dataclass(frozen=True)
class Problem:
    a: int
    b: int

    @property
    def digits(self) -> int:
        """The problem's size: the longer operand's digit count."""
        return max(len(str(self.a)), len(str(self.b)))

    @property
    def carries(self) -> int:
        """How many columns produce a carry."""
        n, carry, a, b = 0, 0, self.a, self.b
        while a or b:
            carry = (a % 10 + b % 10 + carry) // 10
            n += carry
            a, b = a // 10, b // 10
        return n


def render(p: Problem, fmt: Format) -> tuple[str, str]:
    """(prompt, answer): the prompt ends with '=', the answer with the end token."""
    a, b, s = str(p.a), str(p.b), str(p.a + p.b)
    if fmt == "reversed":
        return a[::-1] + PLUS + b[::-1] + EQUALS, s[::-1] + END
    return a + PLUS + b + EQUALS, s.zfill(max(len(a), len(b)) + 1) + END


def parse_answer(answer: str, fmt: Format) -> int | None:
    """The integer a generated answer spells, or None if it is not a number."""
    digits = answer.split(END)[0]
    if not digits.isdigit():
        return None
    return int(digits[::-1] if fmt == "reversed" else digits)


def held_out(a: int, b: int) -> bool:
    """1 in 16 problems belong to the validation split; training never samples them."""
    h = ((a * 0x9E3779B1) ^ (b * 0x85EBCA6B) ^ (a >> 7)) & 0xFFFFFFFF
    return h % 16 == 0


def _number(digits: int, rng: random.Random) -> int:
    return rng.randint(0 if digits == 1 else 10 ** (digits - 1), 10 ** digits - 1)


def sample(rng: random.Random, min_digits: int, max_digits: int, split: Literal["train", "val", "any"],
           kind: Kind = "random") -> Problem:
    """One problem whose operands have min..max digits (each drawn independently), from the
    training split, the held-out one, or either ('any': the whole space)."""
    while True:
        if kind == "random":
            p = Problem(_number(rng.randint(min_digits, max_digits), rng),
                        _number(rng.randint(min_digits, max_digits), rng))
        else:
            p = _adversarial(rng, rng.randint(min_digits, max_digits), kind)
        if split == "any" or held_out(p.a, p.b) == (split == "val"):
            return p


def _adversarial(rng: random.Random, n: int, kind: Kind) -> Problem:
    """Hard problems with n-digit operands:
    carry_chain  the lowest column sums to 10 and every other column to 9, so one carry
                 ripples through all n columns (a + b = 10**n);
    decoy        the same chain, but one middle column sums to 8: the carry stops there;
    unequal      one operand has at most a third of the other's digits."""
    if kind == "unequal":
        a, b = _number(n, rng), _number(rng.randint(1, max(1, n // 3)), rng)
        return Problem(a, b) if rng.random() < 0.5 else Problem(b, a)
    a_d = [rng.randint(1, 9)] + [rng.randint(0, 9) for _ in range(n - 1)]   # least significant first
    if n > 1:
        a_d[-1] = rng.randint(1, 8)  # no leading zero in a, nor in b (its top digit is 9 - a's)
    b_d = [10 - a_d[0]] + [9 - x for x in a_d[1:]]
    if kind == "decoy" and n >= 3:
        m = rng.randint(1, n - 2)
        a_d[m] = rng.randint(0, 8)
        b_d[m] = 8 - a_d[m]
    if b_d[0] == 10:  # unreachable (a_d[0] >= 1), kept as a guard for the column rule
        raise AssertionError("column sum out of range")
    return Problem(int("".join(map(str, reversed(a_d)))), int("".join(map(str, reversed(b_d)))))


@dataclass
class Batch:
    idx: torch.Tensor        # (B, T) token ids, padded with the pad id
    targets: torch.Tensor    # (B, T) next-token ids on answer positions, IGNORE elsewhere
    prompt_len: torch.Tensor  # (B,) tokens up to and including '='
    problems: list[Problem]
    format: Format

    def to(self, device: torch.device | str) -> "Batch":
        return Batch(self.idx.to(device, non_blocking=True), self.targets.to(device, non_blocking=True),
                     self.prompt_len.to(device), self.problems, self.format)


def make_batch(problems: list[Problem], fmt: Format, vocab: Vocab = ADDITION) -> Batch:
    """Whole problems, left-aligned at position 0 and right-padded; targets on the answer."""
    seqs, plens = [], []
    for p in problems:
        prompt, answer = render(p, fmt)
        seqs.append(vocab.encode(prompt + answer))
        plens.append(len(prompt))
    T = max(len(s) for s in seqs) - 1
    idx = torch.full((len(seqs), T), vocab.pad_id, dtype=torch.long)
    targets = torch.full((len(seqs), T), IGNORE, dtype=torch.long)
    for i, (s, pl) in enumerate(zip(seqs, plens)):
        row = torch.tensor(s)
        idx[i, : len(s) - 1] = row[:-1]
        # position t predicts token t+1: answer tokens sit at t+1 >= prompt length
        targets[i, pl - 1: len(s) - 1] = row[pl:]
    return Batch(idx, targets, torch.tensor(plens), problems, fmt)


def problems(n: int, min_digits: int, max_digits: int, seed: int, split: Literal["train", "val", "any"] = "val",
             kind: Kind = "random") -> list[Problem]:
    rng = random.Random(seed)
    return [sample(rng, min_digits, max_digits, split, kind) for _ in range(n)]


def train_batch(step: int, batch_size: int, min_digits: int, max_digits: int, fmt: Format, seed: int,
                rank: int = 0, world: int = 1, chain_share: float = 0.0) -> Batch:
    """The training batch of `step`: fresh problems from a generator seeded by (seed, step), so a
    resumed run sees exactly the batches an uninterrupted one would. With `world` data-parallel
    ranks, one global draw of batch_size * world problems is made per step and rank r takes its
    own contiguous slice: ranks never share a problem by construction, and a single process with
    the global batch size sees exactly the same problems (so a DDP run can be compared with one).
    `chain_share` of the problems are carry chains and decoys (half each) of the same lengths: in
    random decimal problems a carry that ripples through k columns has probability ~10^-(k-1),
    so without them a 1-4 digit run almost never sees the propagation it must learn."""
    rng = random.Random(seed * 1_000_003 + step)
    kinds: tuple[Kind, ...] = ("carry_chain", "decoy")
    drawn = [sample(rng, min_digits, max_digits, "train",
                    kinds[rng.random() < 0.5] if chain_share and rng.random() < chain_share else "random")
             for _ in range(batch_size * world)]
    return make_batch(drawn[rank * batch_size:(rank + 1) * batch_size], fmt)


class CharCorpus:
    """A local UTF-8 text as a char-level LM corpus (the seeds' Shakespeare baseline).

    Rows are windows of the text; for text, a cut mid-sentence is fine (this is the one
    place where stream slicing is right, and the reason addition must not use it)."""

    def __init__(self, path: str | Path, val_fraction: float = 0.1):
        text = Path(path).read_text(encoding="utf-8")
        if len(text) < 100:
            raise ValueError(f"{path}: too little text for a corpus ({len(text)} characters)")
        self.vocab = char_vocab(text)
        data = torch.tensor(self.vocab.encode(text), dtype=torch.long)
        cut = int(len(data) * (1 - val_fraction))
        self.train, self.val = data[:cut], data[cut:]

    def batch(self, split: str, batch_size: int, block_size: int, gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        data = self.train if split == "train" else self.val
        block_size = min(block_size, len(data) - 1)
        ix = torch.randint(len(data) - block_size, (batch_size,), generator=gen)
        x = torch.stack([data[i: i + block_size] for i in ix])
        y = torch.stack([data[i + 1: i + 1 + block_size] for i in ix])
        return x, y
