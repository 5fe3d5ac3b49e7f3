"""Data: whole aligned problems, answer-only targets, formats, significance, adversarial sets."""
import random

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from looplm.data import (IGNORE, Problem, held_out, make_batch, parse_answer, problems, render, sample,
                         train_batch)
from looplm.positions import significance
from looplm.tokens import ADDITION, END, EQUALS, PLUS


@settings(max_examples=200)
@given(st.integers(0, 10**40), st.integers(0, 10**40), st.sampled_from(["reversed", "normal"]))
def test_formats_round_trip_numbers(a, b, fmt):
    prompt, answer = render(Problem(a, b), fmt)
    assert prompt.endswith(EQUALS) and answer.endswith(END)
    assert parse_answer(answer, fmt) == a + b
    x, y = prompt[:-1].split(PLUS)
    assert (int(x[::-1]), int(y[::-1])) == (a, b) if fmt == "reversed" else (int(x), int(y)) == (a, b)


def test_reversed_is_double_reverse():
    assert render(Problem(123, 456), "reversed") == ("321+654=", "975$")
    assert render(Problem(123, 456), "normal") == ("123+456=", "0579$")


def test_every_row_is_one_whole_problem_at_position_zero():
    batch = train_batch(0, 64, 1, 4, "reversed", seed=3)
    for row, tgt, p in zip(batch.idx, batch.targets, batch.problems):
        text = ADDITION.decode(row).rstrip(ADDITION.pad)
        prompt, answer = render(p, "reversed")
        assert (text + END) == prompt + answer        # starts at 0, holds exactly one problem
        assert text[0].isdigit()
        targeted = ADDITION.decode(tgt[tgt != IGNORE])
        assert targeted == answer                     # only the answer (and the end token)
        first = int((tgt != IGNORE).nonzero()[0])
        assert first == len(prompt) - 1              # the '=' position predicts the first digit


def test_held_out_split_is_disjoint():
    rng = random.Random(0)
    train = [sample(rng, 1, 4, "train") for _ in range(2000)]
    val = problems(500, 1, 4, seed=1, split="val")
    assert not any(held_out(p.a, p.b) for p in train)
    assert all(held_out(p.a, p.b) for p in val)


def test_carry_counts():
    assert Problem(123, 456).carries == 0
    assert Problem(999, 1).carries == 3
    assert Problem(15, 25).carries == 1


@pytest.mark.parametrize("kind", ["carry_chain", "decoy", "unequal"])
def test_adversarial_sets(kind):
    for p in problems(50, 6, 12, seed=2, kind=kind):
        n = max(len(str(p.a)), len(str(p.b)))
        if kind == "carry_chain":
            assert p.a + p.b == 10 ** n and p.carries == n
        if kind in ("carry_chain", "decoy"):     # both operands n digits (b's top digit is 9 - a's)
            assert len(str(p.a)) == len(str(p.b)) == n
        elif kind == "decoy":
            assert 0 < p.carries < n
        else:
            assert min(len(str(p.a)), len(str(p.b))) <= max(1, n // 3)


def test_significance_reversed_and_normal():
    idx = torch.tensor([ADDITION.encode("321+65=975")])
    assert significance(idx, ADDITION, "reversed").tolist() == [[0, 1, 2, -1, 0, 1, -1, 0, 1, 2]]
    idx = torch.tensor([ADDITION.encode("123+56=057")])
    # answer digits count down from max(3, 2) = 3: the padded answer has 4 digits
    assert significance(idx, ADDITION, "normal").tolist() == [[2, 1, 0, -1, 1, 0, -1, 3, 2, 1]]
    # a partial answer (as in generation) gets the same significances as the full one
    part = torch.tensor([ADDITION.encode("123+56=0")])
    assert significance(part, ADDITION, "normal").tolist()[0] == [2, 1, 0, -1, 1, 0, -1, 3]


def test_batch_padding_never_targeted():
    batch = make_batch([Problem(1, 2), Problem(12345, 67890)], "reversed")
    pad = batch.idx == ADDITION.pad_id
    assert pad.any() and (batch.targets[pad] == IGNORE).all()


def test_operators_top_puts_plus_and_equals_in_the_carry_out_column():
    idx = torch.tensor([ADDITION.encode("123+56=057")])
    # '+' and '=' take max(3, 2) = 3, the answer's top significance; nothing else moves
    assert significance(idx, ADDITION, "normal", operators_top=True).tolist() == [[2, 1, 0, 3, 1, 0, 3, 3, 2, 1]]
    assert significance(idx, ADDITION, "normal").tolist() == [[2, 1, 0, -1, 1, 0, -1, 3, 2, 1]]


def test_chain_share_mixes_chains_into_training_and_zero_leaves_the_stream_alone():
    plain = train_batch(3, 64, 1, 4, "normal", seed=1)
    assert train_batch(3, 64, 1, 4, "normal", seed=1, chain_share=0.0).problems == plain.problems
    mixed = train_batch(3, 400, 1, 4, "normal", seed=1, chain_share=0.5).problems
    full_chain = sum(p.carries == p.digits and p.digits > 1 for p in mixed)   # a + b = 10**n
    assert 60 < full_chain < 160                     # ~ a quarter are carry chains (decoys: another quarter)
    assert max(p.digits for p in mixed) <= 4 and not any(held_out(p.a, p.b) for p in mixed)
