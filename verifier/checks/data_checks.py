"""The data pipeline, read back the way a person would: decode the batches and look."""
from __future__ import annotations

import itertools
import re

from looplm import data as D
from looplm.tokens import END, EQUALS, PLUS

from ..registry import Params, check
from ..result import failed, passed
from ..target import Target

_PROBLEM = re.compile(r"^(\d+)\+(\d+)=(\d+)$")


class BatchParams(Params):
    batches: int = 4
    batch_size: int = 64


def _decode_rows(target: Target, p: BatchParams):
    d, t = target.config.data, target.config.train
    stream = D.train_batches(p.batch_size, d.min_digits, d.max_digits, d.format, seed=t.seed)
    for batch in itertools.islice(stream, p.batches):
        for row, tgt in zip(batch.idx, batch.targets):
            yield target.vocab.decode(row).rstrip(target.vocab.pad), tgt


def _sum_ok(text: str, fmt: str) -> bool:
    """Does this row hold exactly one whole problem a+b=c with the correct sum?"""
    m = _PROBLEM.match(text)
    if not m:
        return False
    a, b, c = m.groups()
    if fmt == "reversed":
        return int(a[::-1]) + int(b[::-1]) == int(c[::-1])
    return int(a) + int(b) == int(c)


@check("data.aligned_batches", BatchParams)
def aligned_batches(target: Target, p: BatchParams):
    """Every training row starts at a problem boundary and holds one whole, correct problem."""
    fmt = target.config.data.format
    rows = [text for text, _ in _decode_rows(target, p)]
    # the row is fed without its final end token (teacher forcing): it ends mid-answer by design
    bad = [text for text in rows if not _sum_ok(text, fmt)]
    shown = "\n".join(f"  {r!r}" for r in rows[:4])
    if bad:
        return failed(f"{len(bad)}/{len(rows)} rows are not one whole problem starting at position 0",
                      "first bad rows:\n" + "\n".join(f"  {r!r}" for r in bad[:4]) + "\ndecoded batch:\n" + shown,
                      bad_rows=len(bad), rows=len(rows))
    return passed(f"{len(rows)} rows, each one whole {fmt}-order problem", "decoded batch:\n" + shown, rows=len(rows))


@check("data.answer_only_targets", BatchParams)
def answer_only_targets(target: Target, p: BatchParams):
    """Targets are the answer digits and the end token; everything else is ignored."""
    vocab = target.vocab
    bad, n, wasted = [], 0, 0
    for text, tgt in _decode_rows(target, p.model_copy(update={"batches": 1})):
        n += 1
        m = _PROBLEM.match(text)
        if not m:
            bad.append(f"undecodable row {text!r}")
            continue
        prompt_len = text.index(EQUALS) + 1
        answer = m.group(3) + END
        want = [-100] * (prompt_len - 1) + vocab.encode(answer)
        got = tgt.tolist()
        have = got[: len(want)]
        wasted += sum(1 for i, v in enumerate(got) if v != D.IGNORE and i < prompt_len - 1)
        if have != want or any(v != D.IGNORE for v in got[len(want):]):
            shown = "".join("_" if v == D.IGNORE else vocab.chars[v] for v in got)
            bad.append(f"row {text!r}: targets {shown!r}, want {'_' * (prompt_len - 1) + answer!r}")
    if bad:
        return failed(f"{len(bad)}/{n} rows target more (or less) than the answer", "\n".join(bad[:4]),
                      bad_rows=len(bad), prompt_targets=wasted)
    return passed(f"{n} rows: only answer digits and '{END}' are targets (prompt, '{PLUS}', padding ignored)", rows=n)
