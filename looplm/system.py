"""The bundled LoopLM as a system under test: the reference implementation of the verifier's
contract (verifier/contract.py, which spells out every method). The bundled spec binds to it:

    implementation: "looplm.system:LoopLMSystem"

It imports nothing from the verifier: declarations are plain dicts, results plain tuples.
Every method calls the code the project itself runs (the training step the training loop takes,
the evaluation `looplm eval` runs, the checkpoint loader); the checks see what a run would do.
"""
from __future__ import annotations

import itertools
import re
from pathlib import Path
from typing import Any, Callable, Mapping, Optional

import torch

from kernels import dispatch

from . import checkpoint, data, evaluate, kernel_inputs, train
from .config import GROUPS, Config, HaltingConfig
from .distributed import World
from .model import LoopLM
from .reference import reference_block
from .tokens import END, EQUALS, PAD, Vocab

_PROBLEM = re.compile(r"^(\d+)\+(\d+)=$")
# train_run(small=True): the check-size model on a small batch, evaluating every 10 steps
SMALL_RUN = {"batch_size": 16, "eval_interval": 10, "eval_problems": 16, "device": "cpu"}  # early stop kept
# a character corpus's last tenth is its validation text (data.CharCorpus)
CORPUS_HELD_OUT = 0.1
# the split's declared share of the problem space (data.held_out's rule is measured against it)
HELD_OUT_SHARE = 1 / 16
SUPERVISED = {"last": "last", "half": "half", "all": "all", "weighted": "weighted"}


def check_size(cfg: Config) -> Config:
    """The configured architecture at a size the checks can afford on a CPU in seconds: every
    design choice kept (position scheme, re-injection, halting, supervision), width <= 64,
    L <= 8, no dropout (so that two forwards of one model agree)."""
    m = cfg.model
    width = min(m.n_embd, 64)
    heads = next(h for h in range(min(m.n_head, width), 0, -1) if width % h == 0 and (width // h) % 2 == 0)
    return cfg.override(model={"n_embd": width, "n_head": heads, "n_loops": min(m.n_loops, 8), "dropout": 0.0})


class LoopLMSystem:
    """LoopLM with the config at `config` (JSON overrides of the defaults) and `overrides`
    (field values by spec param name) applied: what `looplm train` would train. On a character
    corpus (data.task 'chars') the batches are the training loop's own corpus windows, there is
    no layout of prompts and answers, and the capabilities that score problems are not provided."""

    def __init__(self, config: Optional[Path] = None, overrides: Optional[Mapping[str, Any]] = None):
        base = Config.load(config) if config is not None else Config()
        self.config, self.vocab, self.corpus = train.vocab_for(base.with_params(dict(overrides or {})))
        self.check = check_size(self.config)

    def _scores_problems(self, capability: str) -> None:
        if self.corpus is not None:
            raise NotImplementedError(f"not provided: {capability} (a character corpus has no problems to score)")

    # ---- config --------------------------------------------------------------------------
    def config_groups(self) -> dict[str, type]:
        return dict(GROUPS)

    def param_values(self) -> dict[str, Any]:
        return self.config.values()

    # ---- design --------------------------------------------------------------------------
    def design(self) -> dict:
        c, m, t = self.check, self.config.model, self.config.train
        gate, text = c.halting.mode == "gate", self.corpus is not None
        return {
            "loops": c.model.n_loops,
            "supervision": "all" if gate else SUPERVISED[t.supervision],
            "ponder": {"beta": c.halting.gate_beta, "prior": c.halting.gate_prior} if gate else None,
            "tbptt": t.tbptt,
            "progressive": {"weight": t.progressive} if t.progressive else None,
            "halting": {"score": "learned" if gate else "entropy", "halts_when": "above" if gate else "below",
                        "min_loops": c.halting.min_loops, "by_default": c.halting.mode != "fixed"},
            "row_tokens": self.config.data.block_size if text else None,
            # stated from the config, not from the corpus the system loaded: a run that never loads it shows
            "corpus": {"path": str(Path(self.config.data.text_path).resolve()), "held_out": CORPUS_HELD_OUT}
            if self.config.data.task == "chars" else None,
            "layout": None if text else {"packed": False, "prompt_end": EQUALS, "end": END, "pad": PAD, "ignore_index": data.IGNORE,
                       # a normal-order prompt digit's significance counts the digits after it
                       "bidirectional_prompt": m.prefix_bidirectional or self.config.data.format == "normal"},
            "grad_clip": t.grad_clip or None,
            # the checks train on the CPU, where 'auto' means float32 (bf16 autocast is for GPUs)
            "compute_dtype": "bfloat16" if t.dtype == "bfloat16" else "float32",
            "schedule": {"kind": "warmup_cosine", "lr": t.lr, "warmup": t.warmup_iters, "total": t.max_iters,
                         "min_lr": t.lr * t.min_lr_ratio},
            "depth": {"kind": t.depth, "loops": c.model.n_loops, "stages": list(t.curriculum), "total": t.max_iters,
                      "low": t.random_min_loops, "high": t.random_max_loops},
            # corpus runs never stop early (their eval is a loss, not an accuracy)
            "stop_accuracy": None if text else t.target_accuracy,
            "trained_format": None if text else self.config.data.format,
            "formats": [] if text else ["reversed", "normal"],
            "eval_every": SMALL_RUN["eval_interval"],
            "check_size": (f"width {c.model.n_embd} (configured {m.n_embd}), {c.model.n_head} heads, "
                           f"L={c.model.n_loops} (configured {m.n_loops}), no dropout: the checks run on a CPU "
                           f"in seconds; position scheme, re-injection, halting and supervision are kept"),
        }

    # ---- model ---------------------------------------------------------------------------
    def build(self, seed: int = 0, extra_vocab: int = 0) -> LoopLM:
        torch.manual_seed(seed)
        if not extra_vocab:
            return LoopLM(self.check, self.vocab)
        other = Vocab(self.vocab.chars + "".join(c for c in "xyzuvw\u2460\u2461\u2462\u2463\u2464\u2465"
                                                 if c not in self.vocab.chars)[:extra_vocab], self.vocab.pad)
        return LoopLM(self.check.override(model={"vocab_size": len(other)}), other)

    def forward(self, model: LoopLM, idx, targets=None, *, loops=None, threshold=None, backend="reference"):
        policy = self._policy(model, threshold)
        if backend == "kernel":
            with dispatch.use("cutile" if idx.is_cuda else "emulator"), torch.no_grad():
                out = model(idx, targets, loops=loops, halting=policy)
        else:
            with dispatch.use("reference"):
                out = model(idx, targets, loops=loops, halting=policy)
        return out.logits, out.loss, out.halting.steps

    def _policy(self, model: LoopLM, threshold: Optional[float]) -> Optional[HaltingConfig]:
        """Training keeps the configured policy (the learned gate's loss needs it); inference
        runs fixed depth, or the declared halting at `threshold`."""
        if model.training:
            return None
        h = model.config.halting
        if threshold is None:
            return h.model_copy(update={"mode": "fixed"})
        if h.mode == "gate":
            return h.model_copy(update={"gate_threshold": threshold})
        return h.model_copy(update={"mode": "entropy", "threshold": threshold})

    def loop_modules(self, model: LoopLM) -> list:
        return list(model.blocks)

    def head_module(self, model: LoopLM):
        return model.lm_head

    def gate_module(self, model: LoopLM):
        if model.halt_head is None:
            raise NotImplementedError("not provided: gate (halting.mode is not 'gate')")
        return model.halt_head

    # ---- data and task -------------------------------------------------------------------
    def train_batches(self, batch_size: int, seed: int, rank: int = 0, world: int = 1):
        """The training loop's own (idx, targets) of steps 0, 1, ... on `rank` of `world`
        data-parallel ranks (Run.batch: a function of seed, step and rank): the checks read the
        stream training trains on, not a second generator that could drift from it."""
        cfg = self.check.override(train={"batch_size": batch_size, "seed": seed, "device": "cpu"})
        run = train.setup(cfg, None, False, World(rank, world, rank, torch.device("cpu"), False))
        return (run.batch(step) for step in itertools.count())

    def decode(self, ids) -> str:
        return self.vocab.decode(ids)

    def encode(self, text: str) -> list[int]:
        return self.vocab.encode(text)

    def check_example(self, prompt: str, answer: str) -> bool:
        self._scores_problems("task")
        m = _PROBLEM.match(prompt)
        if not m or not answer.isdigit():
            return False
        a, b = m.groups()
        if self.config.data.format == "reversed":
            return int(a[::-1]) + int(b[::-1]) == int(answer[::-1])
        return int(a) + int(b) == int(answer) and len(answer) == max(len(a), len(b)) + 1

    def held_out(self, prompt: str) -> bool:
        """data.held_out on the operands as written (data.parse_answer reads a number in the format)."""
        self._scores_problems("task")
        a, b = _PROBLEM.match(prompt).groups()
        fmt = self.config.data.format
        return data.held_out(data.parse_answer(a, fmt), data.parse_answer(b, fmt))

    # ---- training ------------------------------------------------------------------------
    def optimizer(self, model: LoopLM):
        return train.optimizer(model, self.check.train)

    def train_step(self, model: LoopLM, opt, batch, step: int) -> float:
        idx, targets = (batch.idx, batch.targets) if hasattr(batch, "idx") else batch
        return train.train_step(model, opt, idx, targets, step, model.config)

    def train_run(self, out_dir, *, small=False, steps=None, stop_after=None, resume=False,
                  progress: Optional[Callable[..., None]] = None, dist=None) -> dict:
        cfg = self.check.override(train=SMALL_RUN) if small else self.config
        if steps is not None:
            cfg = cfg.with_params({"max_iters": steps})
        on_step = (lambda s, loss, tps: progress(step=s, total=cfg.train.max_iters, loss=loss, tokens_per_s=tps)) \
            if progress else None
        on_eval = (lambda row: progress(step=row["step"], total=cfg.train.max_iters, accuracy=row["val_accuracy"])) \
            if progress else None
        summary = train.train(cfg, Path(out_dir), resume=resume, stop_after=stop_after, on_step=on_step,
                              on_eval=on_eval, dist=dist)
        return {**summary, "log": str(Path(out_dir) / "trace.jsonl")}     # train() appends a row per evaluation

    # ---- checkpoint ----------------------------------------------------------------------
    def save(self, model: LoopLM, path) -> None:
        checkpoint.save(path, model)

    def load(self, path) -> LoopLM:
        return checkpoint.load(path, expect_vocab=None).model

    def load_into(self, model: LoopLM, path) -> None:
        payload = torch.load(path, map_location="cpu", weights_only=True)
        checkpoint.load_strict(model, payload["model"], where=str(path))

    # ---- eval ----------------------------------------------------------------------------
    def eval_problems(self, n: int, seed: int, model: Optional[LoopLM] = None) -> list:
        self._scores_problems("eval")
        d = (model.config if model is not None else self.config).data
        return data.problems(n, d.min_digits, d.max_digits, seed=seed, split="val")

    def eval_sets(self) -> dict:
        """The plain held-out set of the trained range and the adversarial sets `looplm eval
        --kind` reports (at up to 9 digits, where decoys and 'unequal' operands exist)."""
        self._scores_problems("eval_sets")
        d = self.config.data
        draw = lambda kind, hi: lambda n, seed: data.problems(n, d.min_digits, hi, seed, "val", kind)  # noqa: E731
        hi = max(d.max_digits, 9)
        lengths = spread_lengths(d.min_digits, d.max_digits)
        population = lambda n, seed: data.problems(n, d.min_digits, d.max_digits, seed, "any")  # noqa: E731
        return {"random": {"draw": draw("random", d.max_digits), "claim": claim_carries, "spread": lengths,
                           "share": HELD_OUT_SHARE, "population": population},
                "carry_chain": {"draw": draw("carry_chain", hi), "claim": claim_chain, "spread": spread_chain},
                "decoy": {"draw": draw("decoy", hi), "claim": claim_decoy, "spread": spread_chain},
                "unequal": {"draw": draw("unequal", hi), "claim": claim_unequal, "spread": spread_order}}

    def render(self, problem, fmt: Optional[str] = None) -> tuple[str, str]:
        self._scores_problems("eval")
        return data.render(problem, fmt or self.config.data.format)

    def exact_match(self, model: LoopLM, problems: list, fmt: Optional[str] = None) -> list[bool]:
        self._scores_problems("eval")
        evaluate.check_format(model, fmt)
        with dispatch.use("reference"):
            rows, _ = evaluate.score(model, problems)
        return [r["correct"] for r in rows]

    def eval_report(self, model: LoopLM, n: int, seed: int) -> dict:
        """`looplm eval`'s report by digit count over the model's trained range, and the problems
        it scored: evaluate() draws problems(n, d, d, seed * 7919 + d, 'val') for each count d."""
        self._scores_problems("report")
        d, policy = model.config.data, model.config.halting
        digits = list(range(d.min_digits, d.max_digits + 1))
        probs = {str(k): data.problems(n, k, k, seed=seed * 7919 + k, split="val") for k in digits}
        with dispatch.use("reference"):
            report = evaluate.evaluate(model, digits, n, seed=seed)
        out = {"accuracy": report["accuracy_by_digits"], "problems": probs, "counts": report["n_per_bucket"],
               "claim": claim_digits, "loops": report["loops"], "loss": report["answer_loss_by_digits"],
               "steps_answer": report["avg_steps_answer_by_digits"],
               "steps_prompt": report["avg_steps_prompt"], "applications_saved": report["applications_saved"]}
        # the policy in forward()'s terms; wait-to-think's second threshold has none (figures unchecked)
        stated = {"fixed": None, "entropy": policy.threshold, "gate": policy.gate_threshold}
        return {**out, "threshold": stated[policy.mode]} if policy.mode in stated else out

    def model_format(self, model: LoopLM) -> str:
        self._scores_problems("eval")
        return model.config.data.format

    def generate(self, model: LoopLM, prompts: list[str], max_new: int) -> list[str]:
        self._scores_problems("generate")
        with dispatch.use("reference"):
            return evaluate.generate(model, prompts, max_new)

    # ---- kernels -------------------------------------------------------------------------
    def kernel_cases(self) -> dict:
        runs = lambda name: lambda model, idx, thr: name in self.kernels_run(model, idx, thr)  # noqa: E731
        return {
            "halting_update": {"dims": kernel_inputs.HALTING_DIMS, "make": kernel_inputs.make_halting,
                               "compare": compare_halting, "runs": runs("halting_update")},
            "loop_attention": {"dims": kernel_inputs.ATTENTION_DIMS, "make": kernel_inputs.make_attention,
                               "runs": runs("loop_attention")},
            "looped_block": {"dims": kernel_inputs.LOOPED_DIMS, "make": kernel_inputs.make_looped,
                             "scaled": True, "runs": runs("looped_block")},
            "looped_tiled": {"dims": kernel_inputs.TILED_DIMS, "make": kernel_inputs.make_tiled,
                             "scaled": True, "runs": runs("looped_tiled")},
            # built inside the persistent block, once per forward: exact (a mask has no rounding)
            "packed_mask": {"dims": kernel_inputs.MASK_DIMS, "make": kernel_inputs.make_mask, "compare": compare_exact,
                            "runs": runs("looped_block")},
        }

    def kernels_run(self, model: LoopLM, idx, threshold: Optional[float]) -> set[str]:
        """The declared kernels the kernel inference path launches for this model and input,
        stated from each kernel's declared domain (spec `limits`, README 'Kernels'), not by
        asking the dispatcher: inference parity counts the launches against this statement.
        One persistent launch where the model and shape fit it (T <= 128), the tiled looped block
        (a launch per loop) for longer rows of such a model at least 64 wide; else per loop, attention for head
        sizes a tile row holds and the halting update where entropy halting is on; none for an
        answer-isolated model or a downward window."""
        m = model.config.model
        if m.answer_isolated or m.downward_window:
            return set()                      # no kernel takes these masks: the reference runs
        policy = self._policy(model, threshold) or model.config.halting
        T, hd = idx.shape[1], m.n_embd // m.n_head
        pow2 = lambda n: n & (n - 1) == 0  # noqa: E731
        heads = pow2(hd) and 16 <= hd <= 128
        if (m.tied and m.reinject != "adapter" and m.position != "rope" and policy.mode != "gate" and heads
                and m.n_embd <= 128 and pow2(m.n_embd)):
            if T <= 128:
                return {"looped_block"}
            if m.vocab_size <= 128 and m.n_embd >= 64:     # the tiled kernel's narrowest width
                return {"looped_tiled"}
        halting = policy.mode == "entropy" and m.vocab_size <= 8192
        return {name for name, on in (("loop_attention", heads), ("halting_update", halting)) if on}

    # ---- parity --------------------------------------------------------------------------
    def block_pair(self, model: LoopLM, idx):
        if model.config.model.position == "rope":
            raise NotImplementedError("not provided: parity (no hand-written reference for rotary attention; "
                                      "temporal parity covers it)")
        sig = model.significance(idx)
        ctx = model.context(idx, sig)
        x = model.embed(idx, sig)
        return model.blocks[0](x, ctx), reference_block(model, ctx, x)

    def unrolled_pair(self, seed: int, loops: int):
        cfg = self.check.override(model={"n_loops": loops, "reinject": "none", "step_embedding": False,
                                         "tied": True}, train={"depth": "fixed", "progressive": 0.0})
        torch.manual_seed(seed)
        loop = LoopLM(cfg, self.vocab)
        gpt = LoopLM(cfg.override(model={"tied": False}), self.vocab)
        shared = loop.state_dict()
        gpt.load_state_dict({k: shared["blocks.0." + k.split(".", 2)[2]] if k.startswith("blocks.") else shared[k]
                             for k in gpt.state_dict()})
        return loop, gpt


def compare_halting(got, want, args) -> Optional[str]:
    """The halt decision may differ where the entropy sits within rounding of the threshold;
    everything else must match: states and steps exactly (they follow the incoming mask), the
    entropy within fp32 tolerance."""
    thr = args[5].float().cpu()
    names = ("state", "active", "steps", "entropy")
    for name, g, w in zip(names, got, want):
        g, w = g.cpu(), w.cpu()
        if name == "active":
            near = (want[3].cpu() - thr).abs() <= 1e-4
            if ((g != w) & ~near).any():
                return f"active differs for {int(((g != w) & ~near).sum())} tokens away from the threshold"
        elif name == "entropy":
            problem = _not_close(name, g, w, atol=1e-4)
            if problem:
                return problem
        elif not torch.equal(g, w):
            return f"{name} differs in {int((g != w).sum())} elements"
    return None


def compare_exact(got, want, args) -> Optional[str]:
    """Element for element the same (a mask selects and copies; it computes nothing to round)."""
    if got.shape != want.shape:
        return f"shape {tuple(got.shape)}, the reference's {tuple(want.shape)}"
    same = (got == want) | (got.isnan() & want.isnan())
    return None if bool(same.all()) else f"{int((~same).sum())} of {want.numel()} elements differ"


def _not_close(name: str, got, want, atol: float) -> Optional[str]:
    if torch.isnan(got).any():
        return f"{name}: {int(torch.isnan(got).sum())} NaN element(s)"
    try:
        torch.testing.assert_close(got.double(), want.double(), rtol=1e-4, atol=atol)
    except AssertionError as e:
        return f"{name}: {str(e).splitlines()[0][:200]}"
    return None


# ---- what each eval set is, from its definition (data._adversarial is the generator) --------
def claim_carries(p) -> Optional[str]:
    """The carry count the eval reports by: columns i whose sum, with the carry from below,
    reaches 10, i.e. (a mod 10^(i+1)) + (b mod 10^(i+1)) >= 10^(i+1)."""
    n = len(str(max(p.a, p.b)))
    want = sum((p.a % 10 ** (i + 1)) + (p.b % 10 ** (i + 1)) >= 10 ** (i + 1) for i in range(n))
    return None if p.carries == want else f"reports {p.carries} carries, long addition makes {want}"


def claim_digits(group: str, p) -> Optional[str]:
    """The eval's group d: both operands have exactly d digits."""
    lens = (len(str(p.a)), len(str(p.b)))
    return None if lens == (int(group),) * 2 else f"operands of {lens[0]} and {lens[1]} digits"


def _columns(p) -> list[int]:
    """Digit sums per column, least significant first."""
    n = len(str(max(p.a, p.b)))
    return [p.a // 10 ** i % 10 + p.b // 10 ** i % 10 for i in range(n)]


def claim_chain(p) -> Optional[str]:
    """Two n-digit operands; one carry ripples through all n columns: a + b = 10^n, n carries."""
    n = len(_columns(p))
    if p.a + p.b != 10 ** n:
        return f"a + b = {p.a + p.b}, not 10^{n}"
    if len(str(p.a)) != n or len(str(p.b)) != n:       # an 'n-digit' figure is measured on n-digit operands
        return f"operands of {len(str(p.a))} and {len(str(p.b))} digits, not {n} each"
    return claim_carries(p) or (None if p.carries == n else f"{p.carries} carries, not {n}")


def claim_decoy(p) -> Optional[str]:
    """The chain, but (from 3 columns on) one middle column sums to 8, so the carry stops there."""
    cols = _columns(p)
    if len(cols) < 3:
        return claim_chain(p)
    shape = cols[0] == 10 and cols[-1] == 9 and sorted(cols[1:-1]).count(8) == 1 \
        and all(c in (8, 9) for c in cols[1:-1])
    return claim_carries(p) if shape else f"column sums {cols[::-1]}: not a chain broken once in the middle"


def spread_lengths(lo: int, hi: int) -> Callable[[list], Optional[str]]:
    """The plain set: each operand takes every length of the trained range (of a range wider
    than 20 lengths, at least 80% of the distinct lengths uniform draws would give)."""
    width = hi - lo + 1

    def spread(probs: list) -> Optional[str]:
        want = width if width <= 20 else 0.8 * width * (1 - (1 - 1 / width) ** len(probs))
        for name, lens in (("a", {len(str(p.a)) for p in probs}), ("b", {len(str(p.b)) for p in probs})):
            if len(lens & set(range(lo, hi + 1))) < want:
                return f"operand {name} has {len(lens)} distinct lengths of {lo}..{hi}: {sorted(lens)[:12]}"
        return None
    return spread


def spread_chain(probs: list) -> Optional[str]:
    """Chains: a's lowest digit takes every value 1..9 (b's is 10 minus it)."""
    low = {p.a % 10 for p in probs}
    return None if low == set(range(1, 10)) else f"a's lowest digit takes only {sorted(low)}, not 1..9"


def spread_order(probs: list) -> Optional[str]:
    """Unequal operands: the longer one comes first in some problems and second in others."""
    first = {len(str(p.a)) > len(str(p.b)) for p in probs if len(str(p.a)) != len(str(p.b))}
    return None if first == {True, False} else "the longer operand is always on the same side"


def claim_unequal(p) -> Optional[str]:
    """One operand has at most a third of the other's digits (at least one)."""
    short, long_ = sorted((len(str(p.a)), len(str(p.b))))
    return claim_carries(p) if short <= max(1, long_ // 3) else f"operands of {short} and {long_} digits"
