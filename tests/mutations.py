"""Mutations of a valid spec for robustness fuzzing (shared by the test and the bench).

Each mutation is what a hurried editor or a broken file does to a spec: delete, insert,
swap or duplicate tokens, cut the file, splice random bytes (not always UTF-8), make a very
long line, or nest brackets very deep.
"""
from __future__ import annotations

import random
import re

TOKEN = re.compile(r'\s+|[A-Za-z_]\w*|-?\d+(\.\d+)?([eE][-+]?\d+)?|"([^"\\\n]|\\.)*"|//[^\n]*|\.\.|[=!<>]=|.', re.S)
JUNK = ["{", "}", "[", "]", "(", ")", ":", ",", "..", "==", "!=", "in", "not", "and", "or", "step",
        "param", "system", "kernel", "protocol", '"x"', '"', "1e-4", "-7", "2026-11-24", "---", "/*",
        "*/", "//", "true", "false", "\n", "\t", "\x00", "\u2028", "é", "💥", "\\", "'", ";", "=",
        "enum", "int", "in [", "..2", "tiles: {A: 3}", "needs: [nope]", "check:", "}\n}"]


def mutate(text: str, rng: random.Random) -> str | bytes:
    """1-3 random edits of `text`; the result may be bytes that are not valid UTF-8."""
    out: str | bytes = text
    for _ in range(rng.randint(1, 3)):
        out = _one(out if isinstance(out, str) else out.decode("utf-8", "replace"), rng)
    return out


def _one(text: str, rng: random.Random) -> str | bytes:
    toks = [m.group() for m in TOKEN.finditer(text)]
    if not toks:
        return rng.choice(JUNK)
    i, j = sorted(rng.randrange(len(toks)) for _ in range(2))
    kind = rng.randrange(10)
    if kind == 0:    # delete a token
        del toks[i]
    elif kind == 1:  # insert junk
        toks.insert(i, rng.choice(JUNK))
    elif kind == 2:  # swap two tokens
        toks[i], toks[j] = toks[j], toks[i]
    elif kind == 3:  # duplicate a span
        toks[i:i] = toks[i:min(j, i + 20)]
    elif kind == 4:  # delete a span
        del toks[i:min(j, i + 50)]
    elif kind == 5:  # truncate
        toks = toks[:i]
    elif kind == 6:  # random bytes, often not UTF-8
        raw = "".join(toks).encode()
        k = rng.randrange(len(raw) + 1)
        return raw[:k] + bytes(rng.randrange(256) for _ in range(rng.randint(1, 8))) + raw[k:]
    elif kind == 7:  # a very long line
        toks.insert(i, rng.choice(['"' + "x" * 100_000 + '"', "a" * 50_000, " " * 100_000, "1" * 5000]))
    elif kind == 8:  # very deep nesting
        d = rng.choice([10, 60, 1000, 20_000])
        toks.insert(i, rng.choice(["[" * d + "]" * d, "(" * d + "1" + ")" * d, "{a: " * d + "1" + "}" * d,
                                   "not " * d + "x", "[" * d]))
    else:            # replace a token with junk
        toks[i] = rng.choice(JUNK)
    return "".join(toks)
