"""Checkpoints and evaluation: exact, strict loads; the data format travels with the checkpoint
and the eval refuses another; the eval's exact-match shortcut agrees with real generation."""
from __future__ import annotations

import tempfile
from pathlib import Path

import torch

from ..contract import MissingCapability
from ..registry import Params, check
from ..result import Margins, failed, passed, skipped
from ..target import Target
from .taught import taught


def _same_weights(a, b) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return set(sa) == set(sb) and all(torch.equal(sa[k], sb[k]) for k in sa)


def _refusal(sys, into, path: Path, differ: list[str]):
    """(the exception loading `path` into `into` raised, or None, problem or None)."""
    try:
        sys.load_into(into, path)
    except Exception as e:
        if differ and not any(k in str(e) for k in differ):
            return e, (f"the refusal does not name a parameter that differs ({', '.join(differ[:3])}): "
                       f"{type(e).__name__}: {str(e)[:200]}: a user cannot tell what is wrong with the checkpoint")
        return e, None
    return None, ("loading a checkpoint into a model whose vocabulary differs by 3 tokens succeeded: the head "
                  "(and the embedding) would be left random (strict=False)")


@check("checkpoint.strict_load")
def strict_load(target: Target, params):
    """A checkpoint round-trips exactly; loading it into a model of another vocabulary, larger or
    smaller, is refused (never a partial load that leaves a random head), naming a parameter
    whose shape differs, and the same way both ways (one exception type: a caller that handles
    one must not crash on the other); a given --ckpt loads."""
    sys = target.need("checkpoint")
    target.need("model")
    model = sys.build(target.seed)
    other = sys.build(target.seed, extra_vocab=3)
    own, theirs = model.state_dict(), other.state_dict()
    differ = sorted(k for k in own if k in theirs and own[k].shape != theirs[k].shape)
    with tempfile.TemporaryDirectory() as tmp:
        small, large = Path(tmp) / "c.pt", Path(tmp) / "large.pt"
        sys.save(model, small)
        if not _same_weights(model, sys.load(small)):
            return failed("a saved and reloaded checkpoint differs from the model it came from")
        sys.save(other, large)
        up, problem = _refusal(sys, other, small, differ)
        down, problem2 = _refusal(sys, model, large, differ)      # model is not used after this
    if problem or problem2:
        return failed(problem or problem2)
    if type(up) is not type(down):
        return failed(f"a smaller checkpoint is refused with {type(up).__name__}, a larger one with "
                      f"{type(down).__name__}: one mismatch, two ways of refusing it")
    refused = f"{type(up).__name__}: {str(up)[:200]}"
    if target.checkpoint is not None:
        try:
            sys.load(target.checkpoint)
        except Exception as e:
            return failed(f"the checkpoint {target.checkpoint} does not load: {type(e).__name__}: {str(e)[:300]}")
    return passed("exact round trip; a vocabulary mismatch is refused both ways, alike" +
                  (f"; {target.checkpoint} loads strictly" if target.checkpoint else ""), refused=refused)


class ParityParams(Params):
    min_accuracy: float = 0.99
    problems: int = 200


def _other_format(target: Target, fmt: str) -> str | None:
    formats = target.design.formats
    return next((f for f in formats if f != fmt), None)


@check("eval.format_parity", ParityParams)
def format_parity(target: Target, p: ParityParams):
    """The checkpoint carries the model's data format; the eval refuses to feed another; and a
    trained checkpoint (--ckpt) scores >= min_accuracy on its trained range before any
    out-of-distribution number is believed."""
    sys = target.need("eval")
    target.need("checkpoint")
    model = sys.build(target.seed).eval()
    fmt = sys.model_format(model)
    with tempfile.TemporaryDirectory() as tmp:
        sys.save(model, Path(tmp) / "c.pt")
        loaded = sys.load(Path(tmp) / "c.pt").eval()
    if sys.model_format(loaded) != fmt:
        return failed(f"a {fmt}-format model's checkpoint reloads as {sys.model_format(loaded)}: "
                      f"the format does not travel with the checkpoint")
    other = _other_format(target, fmt)
    if other is not None:
        try:
            sys.exact_match(loaded, sys.eval_problems(4, target.seed), fmt=other)
            return failed(f"evaluating {other}-format data on a {fmt}-format model was not refused "
                          f"(only examples that read the same both ways would match: the 9.1% illusion)")
        except MissingCapability:
            raise
        except Exception:
            pass
    if target.checkpoint is None:
        return skipped("format plumbing verified; no trained checkpoint given (--ckpt) to measure the trained range")
    ck = sys.load(target.checkpoint).eval()
    right = sys.exact_match(ck, sys.eval_problems(p.problems, target.seed + 17, model=ck))
    acc = sum(right) / max(1, len(right))
    m = Margins()
    ok = m.upper("error_rate", 1 - acc, 1 - p.min_accuracy)
    measured = {"accuracy": acc, "format": sys.model_format(ck), "problems": len(right)}
    if not ok:
        return failed(f"{acc:.1%} on the trained range (< {p.min_accuracy:.0%}): do not believe any OOD number "
                      f"from this checkpoint", margins=m, **measured)
    return passed(f"{acc:.1%} on the trained range in {measured['format']} format", margins=m, **measured)


class GenerationParams(Params):
    problems: int = 12


@check("eval.generation_parity", GenerationParams)
def generation_parity(target: Target, p: GenerationParams):
    """The eval's teacher-forced exact match agrees with real greedy generation on every sampled
    problem, and a forward pass over prompt + generated text predicts every generated token
    (generation and evaluation compute the same function). On the --ckpt model, else on a model
    taught half of the sampled problems (an untrained model gets all of them wrong both ways)."""
    sys = target.need("generate")
    target.need("eval")
    if target.checkpoint:
        model = sys.load(target.checkpoint).eval()
        probs = sys.eval_problems(p.problems, target.seed + 3, model=model)
    else:
        t = taught(target)
        model, probs = t.model, t.problems[:p.problems]
    fmt = sys.model_format(model)
    pairs = [sys.render(q, fmt) for q in probs]
    forced = sys.exact_match(model, probs)
    gen = sys.generate(model, [q for q, _ in pairs], max(len(a) for _, a in pairs) + 2)
    if len(gen) != len(probs) or len(forced) != len(probs):     # zip() below would compare a prefix
        return failed(f"for {len(probs)} problems generate() returned {len(gen)} continuations and exact_match() "
                      f"{len(forced)} verdicts: one per problem each")
    greedy = [g == a for g, (_, a) in zip(gen, pairs)]
    differ = [i for i, (f, g) in enumerate(zip(forced, greedy)) if f != g]
    if differ:
        i = differ[0]
        return failed(f"{len(differ)}/{len(probs)} problems: exact match says {forced[i]}, greedy generation "
                      f"{'matches' if greedy[i] else 'gives'} {gen[i]!r} for {pairs[i][0]!r}")
    halting = target.design.halting
    if halting is not None and halting.by_default:     # generation halts: a fixed-depth pass is another function
        return passed(f"{len(probs)} problems: exact match = greedy generation ({sum(greedy)} correct); generation "
                      f"halts by default, so the fixed-depth teacher-forced pass was not compared", correct=sum(greedy))
    inconsistent = _self_consistency(sys, model, pairs, gen)
    if inconsistent:
        return failed(f"teacher forcing over prompt + generated text does not predict the generated tokens: {inconsistent}")
    return passed(f"{len(probs)} problems: exact match = greedy generation ({sum(greedy)} correct); teacher "
                  f"forcing reproduces every generated token", correct=sum(greedy))


def _self_consistency(sys, model, pairs, gen) -> str | None:
    for (prompt, _), out in zip(pairs, gen):
        if not out:
            continue
        ids = torch.tensor([sys.encode(prompt + out[:-1])])
        with torch.no_grad():
            logits = sys.forward(model, ids)[0][0]
        want = sys.encode(out)
        got = logits[len(prompt) - 1: len(prompt) - 1 + len(want)].argmax(-1).tolist()
        if got != want:
            return f"{prompt!r}: generated {out!r}, teacher-forced argmax {sys.decode(got)!r}"
    return None
