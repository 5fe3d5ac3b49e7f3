"""Checkpoints and evaluation plumbing: exact, strict loads; the format travels and is enforced."""
from __future__ import annotations

import tempfile
from pathlib import Path

import torch

from looplm import checkpoint as CK
from looplm import evaluate as EV
from looplm import model as M
from looplm.data import problems
from looplm.tokens import Vocab

from ..registry import Params, check
from ..result import failed, passed, skipped
from ..target import Target


def _model(target: Target, **model):
    torch.manual_seed(target.seed)
    return M.LoopLM(target.small(**model), target.vocab)


@check("checkpoint.strict_load")
def strict_load(target: Target, params):
    """A checkpoint round-trips exactly; a vocab or shape mismatch is refused, never half-loaded."""
    model = _model(target)
    with tempfile.TemporaryDirectory() as tmp:
        path = CK.save(Path(tmp) / "c.pt", model, step=1)
        loaded = CK.load(path)
        same = all(torch.equal(v, loaded.model.state_dict()[k]) for k, v in model.state_dict().items())
        if not same or loaded.config != model.config:
            return failed("a saved and reloaded checkpoint differs from the model it came from")
        # a model with another vocabulary (a new task): its head must not be silently random
        other_vocab = Vocab(target.vocab.chars + "xyz")
        other = M.LoopLM(model.config.override(model={"vocab_size": len(other_vocab)}), other_vocab)
        try:
            CK.load_strict(other, torch.load(path, weights_only=True)["model"], where=str(path))
        except CK.CheckpointError as e:
            refused = str(e)
        else:
            return failed("loading a checkpoint into a model with a different vocabulary succeeded: "
                          "lm_head (and the embedding) would be left random (strict=False)")
        try:
            CK.load(path, expect_vocab=other_vocab)
            return failed("a checkpoint loaded although its vocabulary differs from the expected one")
        except CK.CheckpointError:
            pass
    return passed("exact round trip; vocabulary/shape mismatches refused", refused=refused[:200])


class ParityParams(Params):
    min_accuracy: float = 0.99
    problems: int = 200


@check("eval.format_parity", ParityParams)
def format_parity(target: Target, p: ParityParams):
    """The checkpoint's format equals the eval's; evaluating another format is refused; and the
    trained digit range scores >= min_accuracy before any OOD number is believed."""
    model = _model(target, n_loops=2)
    fmt = model.config.data.format
    other = "normal" if fmt == "reversed" else "reversed"
    with tempfile.TemporaryDirectory() as tmp:
        loaded = CK.load(CK.save(Path(tmp) / "c.pt", model))
        if loaded.config.data.format != fmt:
            return failed(f"a {fmt}-order model's checkpoint reloads as {loaded.config.data.format}: "
                          f"the format does not travel with the checkpoint")
    try:
        EV.evaluate(loaded.model, [2], 4, fmt=other)
        return failed(f"evaluating {other}-order data on a {fmt}-order model was not refused "
                      f"(only carry-free sums would match: the 9.1% illusion)")
    except EV.FormatMismatch:
        pass
    if target.checkpoint is None:
        return skipped("format plumbing verified; no trained checkpoint given (--ckpt) to measure the trained range")
    ck = CK.load(target.checkpoint)
    d = ck.config.data
    rows, _ = EV.score(ck.model, problems(p.problems, d.min_digits, d.max_digits, seed=target.seed + 17, split="val"))
    acc = sum(r["correct"] for r in rows) / len(rows)
    measured = {"accuracy": acc, "digits": f"{d.min_digits}-{d.max_digits}", "format": d.format}
    if acc < p.min_accuracy:
        return failed(f"{acc:.1%} on the trained {d.min_digits}-{d.max_digits} digit range (< {p.min_accuracy:.0%}): "
                      f"do not believe any OOD number from this checkpoint", **measured)
    return passed(f"{acc:.1%} on the trained {d.min_digits}-{d.max_digits} digit range in {d.format} order", **measured)
