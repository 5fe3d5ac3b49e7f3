"""Symptom detectors: executable signatures of known bugs, run over what a run leaves behind.

Each detector takes the evidence gathered from a path (`Evidence`: training trace rows, eval
reports, thinking traces) and the symptom's params, and returns a Match with the numbers
that triggered it, or None. They are named by the spec's symptoms (`detector: loss_plateau`).
"""
from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Callable, Optional

DETECTORS: dict[str, Callable[..., Optional[str]]] = {}


@dataclass
class Evidence:
    trace: list[dict] = field(default_factory=list)        # trace.jsonl rows
    reports: list[dict] = field(default_factory=list)      # eval reports (accuracy_by_digits, ...)
    thinking: list[dict] = field(default_factory=list)     # looplm trace outputs (halt_step, entropy)
    sources: list[str] = field(default_factory=list)
    corrupt: list = field(default_factory=list)            # rca.store.CorruptLine: what could not be read


def detector(name: str):
    def register(fn):
        DETECTORS[name] = fn
        return fn
    return register


def answer_unigram_entropy(min_digits: int, max_digits: int, fmt: str = "reversed", n: int = 4000) -> float:
    """Entropy (nats) of the answer tokens' marginal: what a model that ignores its input scores.
    Estimated from n random a+b problems, operands of min..max digits each, the answer written as
    the training data writes it (reversed: the sum least significant digit first; normal: the sum
    zero-padded to one digit more than the longer operand) plus the end token."""
    import random
    rng = random.Random(0)
    counts: Counter = Counter()
    for _ in range(n):
        a, b = (rng.randint(0 if d == 1 else 10 ** (d - 1), 10 ** d - 1)
                for d in (rng.randint(min_digits, max_digits) for _ in range(2)))
        s = str(a + b)
        counts.update((s[::-1] if fmt == "reversed" else s.zfill(max(len(str(a)), len(str(b))) + 1)) + "$")
    total = sum(counts.values())
    return -sum(c / total * math.log(c / total) for c in counts.values())


@detector("loss_plateau")
def loss_plateau(ev: Evidence, window: int = 5, tolerance: float = 0.08, **_: Any) -> Optional[str]:
    """Train loss flat over the last `window` evals, at the answer tokens' unigram entropy."""
    rows = [r for r in ev.trace if "train_loss" in r]
    if len(rows) < window:
        return None
    last = [r["train_loss"] for r in rows[-window:]]
    if max(last) - min(last) > tolerance:
        return None
    d = _data_config(ev)
    h = answer_unigram_entropy(d.get("min_digits", 1), d.get("max_digits", 4), d.get("format", "reversed"))
    mean = sum(last) / len(last)
    if abs(mean - h) <= 3 * tolerance:
        return (f"train loss {mean:.3f} flat (spread {max(last) - min(last):.3f}) over the last {window} evals, "
                f"at the answer tokens' unigram entropy {h:.3f}: the model predicts digit frequencies, not sums")
    return None


def carry_free_probability(d: int) -> float:
    """P(no column of a d-digit + d-digit sum carries), leading digits 1-9, others 0-9."""
    if d == 1:
        return 55 / 100
    return (36 / 81) * (55 / 100) ** (d - 1)


@detector("carry_free_accuracy")
def carry_free_accuracy(ev: Evidence, tolerance: float = 0.02, **_: Any) -> Optional[str]:
    """Accuracy that is exactly the chance of a carry-free sum: right only when no carry exists."""
    for rep in ev.reports:
        by_c = rep.get("accuracy_by_carries") or {}
        n_c = rep.get("n_per_carries") or {}
        if "0" in by_c and len(by_c) >= 2:
            rest = [v for k, v in by_c.items() if k != "0" and n_c.get(k, 10) >= 5]
            if by_c["0"] >= 0.9 and rest and max(rest) <= 0.05:
                return (f"exact match {by_c['0']:.0%} on carry-free sums and <= {max(rest):.0%} whenever a carry "
                        f"occurs: the digits are read in the wrong order (format mismatch)")
        by_d, n_d = rep.get("accuracy_by_digits") or {}, rep.get("n_per_bucket") or {}
        close = []
        for k, acc in by_d.items():
            p, n = carry_free_probability(int(k)), max(1, n_d.get(k, 100))
            close.append(abs(acc - p) <= tolerance + 2 * math.sqrt(p * (1 - p) / n) and acc < 0.6)
        if len(close) >= 2 and all(close):
            shown = ", ".join(f"{k}: {v:.1%} vs {carry_free_probability(int(k)):.1%}" for k, v in by_d.items())
            return f"per-length accuracy equals P(carry-free sum) ({shown})"
    return None


@detector("halt_at_step_zero")
def halt_at_step_zero(ev: Evidence, fraction: float = 0.95, **_: Any) -> Optional[str]:
    """Nearly every token stops after its first loop."""
    for tr in ev.thinking:
        steps = tr.get("halt_step") or []
        if steps and sum(s <= 1 for s in steps) / len(steps) >= fraction and tr.get("loops", 2) > 1:
            return f"{sum(s <= 1 for s in steps)}/{len(steps)} tokens halted at their first loop (of {tr.get('loops')})"
    for rep in ev.reports:
        mode = (rep.get("halting") or {}).get("mode", "fixed")
        if mode != "fixed" and rep.get("loops", 1) > 1 and rep.get("avg_steps_answer", 9) <= 1.0 + (1 - fraction) \
                and rep.get("avg_steps_prompt", 9) <= 1.0 + (1 - fraction):
            return f"average loop steps {rep['avg_steps_answer']:.2f} (answer) with {mode} halting of {rep['loops']} loops"
    return None


def _runs_of_zeros(values: list[float], min_period: int) -> Optional[str]:
    mask = [abs(v) > 0 for v in values]
    n = len(mask)
    if n < 2 * min_period or sum(mask) == 0 or sum(mask) > 0.6 * n:
        return None
    for period in range(min_period, n // 2 + 1):
        agree = sum(mask[i] == mask[i - period] for i in range(period, n)) / (n - period)
        on = sum(mask[:period])
        if agree >= 0.95 and 0 < on < period:
            return f"{on} values then {period - on} zeros, repeating every {period} (agreement {agree:.0%})"
    return None


@detector("periodic_zeros")
def periodic_zeros(ev: Evidence, min_period: int = 4, **_: Any) -> Optional[str]:
    """A trace whose non-zero values come in runs followed by zeros, periodically."""
    for tr in ev.thinking:
        for key in ("halt_step", "values"):
            found = _runs_of_zeros(tr.get(key) or [], min_period)
            if found:
                return f"{key}: {found}"
    return None


@detector("memorization")
def memorization(ev: Evidence, train_loss: float = 0.05, ood_accuracy: float = 0.05, **_: Any) -> Optional[str]:
    """Train loss near zero while accuracy beyond the trained lengths is near zero."""
    losses = [r["train_loss"] for r in ev.trace if "train_loss" in r]
    if not losses or losses[-1] > train_loss:
        return None
    trained = _data_config(ev).get("max_digits", 4)
    ood = [acc for rep in ev.reports for k, acc in (rep.get("accuracy_by_digits") or {}).items() if int(k) > trained]
    if ood and max(ood) <= ood_accuracy:
        return (f"train loss {losses[-1]:.3f} but at most {max(ood):.1%} exact match beyond "
                f"{trained} digits: memorized, not learned")
    return None


@detector("loops_do_not_help")
def loops_do_not_help(ev: Evidence, tolerance: float = 0.01, **_: Any) -> Optional[str]:
    """Accuracy does not change between one loop and many."""
    for rep in ev.reports:
        curve = rep.get("accuracy_by_loops") or {}
        if len(curve) >= 2:
            keys = sorted(curve, key=int)
            lo, hi = curve[keys[0]], curve[keys[-1]]
            if abs(hi - lo) <= tolerance and hi < 0.9:
                return f"accuracy {lo:.1%} with {keys[0]} loop(s) and {hi:.1%} with {keys[-1]}: the loop adds nothing"
    return None


def _data_config(ev: Evidence) -> dict:
    for rep in ev.reports:
        cfg = rep.get("config") or {}
        if "data" in cfg:
            return cfg["data"]
    for row in ev.trace:
        if "config" in row:
            return row["config"].get("data", {})
    return {}
