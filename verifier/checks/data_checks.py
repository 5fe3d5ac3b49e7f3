"""The data pipeline, read back the way a person would: decode the batches and look.

Rows are read through the system's declared layout (packed or one example per row, the
prompt's last token, the end token, the pad, the ignore index) and its task oracle, so a
correct pipeline of another design is no alarm.
"""
from __future__ import annotations

import hashlib
import inspect
import itertools
from pathlib import Path
from typing import Any, Iterator, Optional

import torch

from ..contract import Layout
from ..registry import Params, check
from ..result import failed, passed
from ..target import Target
from .common import tensors


class BatchParams(Params):
    batches: int = 4
    batch_size: int = 64


def layout(target: Target) -> Layout:
    lay = target.design.layout
    if lay is None:
        from ..contract import MissingCapability
        raise MissingCapability("design", target.system, "design() declares no layout")
    return lay


def row_tokens(sys: Any, lay: Layout, idx_row) -> str:
    """The row's text: its input tokens up to the padding, plus the end token that teacher
    forcing leaves out of the input when the last example ends the row."""
    text = sys.decode([int(t) for t in idx_row]).rstrip(lay.pad)
    last = text.rfind(lay.prompt_end)
    if last >= 0 and lay.end not in text[last:]:
        text += lay.end
    return text


def split_examples(text: str, lay: Layout) -> tuple[list[tuple[str, str]], str]:
    """(prompt, answer) of each whole example from the row's start, and what is left over."""
    out, rest = [], text
    while rest:
        end = rest.find(lay.end)
        cut = rest.find(lay.prompt_end)
        if end < 0 or cut < 0 or cut > end:
            break
        out.append((rest[:cut + 1], rest[cut + 1:end]))
        rest = rest[end + 1:]
    return out, rest


def rows(target: Target, p: BatchParams) -> Iterator[tuple[str, Any, Any]]:
    sys = target.need("data")
    for batch in itertools.islice(sys.train_batches(p.batch_size, target.seed), p.batches):
        idx, tgt = tensors(batch)
        for r, t in zip(idx, tgt):
            yield r, t


def _row_problem(sys: Any, lay: Layout, text: str) -> str | None:
    examples, rest = split_examples(text, lay)
    if not examples:
        return "no whole example starting at position 0"
    if not lay.packed and len(examples) > 1:
        return f"{len(examples)} examples in a row the layout declares unpacked"
    if rest.strip(lay.pad):
        return f"left over after the last whole example: {rest!r}"
    wrong = [f"{q}{a}" for q, a in examples if not sys.check_example(q, a)]
    return f"not a correct example: {wrong[0]!r}" if wrong else None


@check("data.aligned_batches", BatchParams)
def aligned_batches(target: Target, p: BatchParams):
    """Every training row starts at an example boundary and holds whole, correct examples."""
    sys, lay = target.need("task"), layout(target)
    texts = [row_tokens(sys, lay, r) for r, _ in rows(target, p)]
    bad = [(t, why) for t in texts if (why := _row_problem(sys, lay, t))]
    shown = "\n".join(f"  {t!r}" for t in texts[:4])
    if bad:
        return failed(f"{len(bad)}/{len(texts)} rows are not whole examples starting at position 0",
                      "first bad rows:\n" + "\n".join(f"  {t!r}: {why}" for t, why in bad[:4])
                      + "\ndecoded batch:\n" + shown, bad_rows=len(bad), rows=len(texts))
    layout_word = "packed" if lay.packed else "one example per row"
    return passed(f"{len(texts)} rows of whole, correct examples ({layout_word})", "decoded batch:\n" + shown,
                  rows=len(texts))


def expected_targets(sys: Any, lay: Layout, text: str, T: int) -> list[int]:
    """Answer-only next-token targets of a row: position t holds the token at t + 1 when that
    token is part of an answer (after prompt_end, up to and including end), else ignore."""
    want, in_answer = [lay.ignore_index] * T, False
    for t, ch in enumerate(text):
        if t >= 1 and in_answer and t - 1 < T:
            want[t - 1] = sys.encode(ch)[0]
        if ch == lay.prompt_end:
            in_answer = True
        elif ch == lay.end:
            in_answer = False
    return want


@check("data.answer_only_targets", BatchParams)
def answer_only_targets(target: Target, p: BatchParams):
    """Targets are the answer tokens and the end token; every other position is ignored."""
    sys, lay = target.need("data"), layout(target)
    bad, n, wasted = [], 0, 0
    for r, t in rows(target, p.model_copy(update={"batches": 1})):
        n += 1
        text = row_tokens(sys, lay, r)
        want, got = expected_targets(sys, lay, text, len(t)), [int(v) for v in t]
        wasted += sum(1 for g, w in zip(got, want) if g != lay.ignore_index and w == lay.ignore_index)
        if got != want:
            show = lambda ts: "".join("_" if v == lay.ignore_index else sys.decode([v]) for v in ts)  # noqa: E731
            bad.append(f"row {text!r}: targets {show(got)!r}, want {show(want)!r}")
    if bad:
        return failed(f"{len(bad)}/{n} rows target more (or less) than the answer", "\n".join(bad[:4]),
                      bad_rows=len(bad), prompt_targets=wasted)
    return passed(f"{n} rows: only answer tokens and {lay.end!r} are targets (prompt and padding ignored)", rows=n)


class FreshParams(Params):
    batches: int = 16
    batch_size: int = 16


def _digests(sys: Any, p: FreshParams, seed: int) -> list[tuple[tuple, str]]:
    """(shape, sha1 of the token ids) of the first batches the pipeline yields at `seed`."""
    return [_digest(tensors(b)[0]) for b in itertools.islice(sys.train_batches(p.batch_size, seed), p.batches)]


def _digest(idx: torch.Tensor) -> tuple[tuple, str]:
    """(shape, sha1 of the token ids) of one batch."""
    return tuple(idx.shape), hashlib.sha1(idx.detach().cpu().contiguous().numpy().tobytes()).hexdigest()


def shard_problem(sys: Any, p: FreshParams, seed: int, steps: int = 4) -> Optional[str]:
    """Why the two ranks of two data-parallel ranks do not each get a full batch at every step,
    all of the first `steps` steps' (rank, step) batches different (None: they do, or the
    pipeline takes no rank/world and shards nothing). A rank repeating the other's batch of
    another step trains twice on it as surely as two ranks sharing one step's batch."""
    params = inspect.signature(sys.train_batches).parameters
    if not {"rank", "world"} <= params.keys():
        return None
    seen: dict = {}
    for r in (0, 1):
        for step, b in enumerate(itertools.islice(sys.train_batches(p.batch_size, seed, rank=r, world=2), steps)):
            idx = tensors(b)[0]
            if len(idx) != p.batch_size:
                return (f"with 2 data-parallel ranks, step {step} gives rank {r} {len(idx)} rows, not {p.batch_size}: "
                        f"a rank trains on a cut batch")
            d = _digest(idx)
            if d in seen:
                r0, s0 = seen[d]
                return (f"with 2 data-parallel ranks, rank {r}'s batch of step {step} is rank {r0}'s of step {s0}: "
                        f"{'the rank is ignored' if s0 == step else 'the ranks draw overlapping streams'}")
            seen[d] = (r, step)
    return None


def corpus_problem(sys: Any, corpus, seed: int, batches: int = 2, batch_size: int = 16) -> Optional[str]:
    """Why training rows are not windows of the declared corpus's training share (None: they
    are): each row decodes to a substring of the text before the held-out cut."""
    try:
        text = Path(corpus.path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        return f"the declared corpus {corpus.path} cannot be read: {type(e).__name__}: {e}"
    train = text[: int(len(text) * (1 - corpus.held_out))]
    for b in itertools.islice(sys.train_batches(batch_size, seed), batches):
        for row in tensors(b)[0]:
            s = sys.decode(row.tolist())
            if s not in train:
                where = "the held-out share" if s in text else "no part"
                return (f"a training row ({s[:30]!r}...) is from {where} of the declared corpus {corpus.path}, not "
                        f"its training share (the first {1 - corpus.held_out:.0%})")
    return None


@check("data.fresh_batches", FreshParams)
def fresh_batches(target: Target, p: FreshParams):
    """The training stream is a function of its seed that does not repeat itself: the first
    batches at one seed are pairwise different, the same seed yields them again and another
    seed others; rows are as long as the design declares (`row_tokens`), where it does."""
    sys = target.need("data")
    first, again, other = (_digests(sys, p, target.seed + s) for s in (0, 0, 1))
    seen: dict = {}
    for i, d in enumerate(first):
        if d in seen:
            return failed(f"training batch {i} repeats batch {seen[d]} (of the first {p.batches} at one seed): "
                          f"the stream's position or seed is not what draws it", repeated=[seen[d], i])
        seen[d] = i
    if again != first:
        return failed(f"two streams at seed {target.seed} differ: the training batches are not a function of the "
                      f"seed (a resumed or distributed run trains on other data)")
    if other == first:
        return failed(f"seeds {target.seed} and {target.seed + 1} yield the same training batches: the seed is ignored")
    rows = sorted({shape[0] for shape, _ in first} - {p.batch_size})
    if rows:
        return failed(f"training batches of {rows} rows, asked for {p.batch_size}: the batch size is not honoured",
                      rows=rows)
    problem = shard_problem(sys, p, target.seed)
    if problem:
        return failed(problem)
    want = target.design.row_tokens
    short = sorted({shape[1] for shape, _ in first} - {want}) if want is not None else []
    if short:
        return failed(f"training rows of {short} tokens, the design declares {want}: the window is cut",
                      row_tokens=short)
    problem = corpus_problem(sys, target.design.corpus, target.seed) if target.design.corpus else None
    if problem:
        return failed(problem)
    return passed(f"{p.batches} training batches of {p.batch_size} rows, all different; the same seed repeats them, "
                  f"another draws others" + (f"; rows of {want} tokens as declared" if want is not None else "")
                  + ("; rows are windows of the corpus's training share" if target.design.corpus else ""),
                  batches=p.batches)
