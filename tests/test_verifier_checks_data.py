"""The training stream: a function of its seed that does not repeat itself, with rows as long
as the design declares; a stream that ignores its step or cuts its window fails."""
from pathlib import Path

import dsl
from looplm import data, train
from verifier import load_target, run

CHARS = Path(__file__).resolve().parents[1] / "examples" / "configs" / "coverage_chars.json"


def _step(config=None):
    return run(load_target(dsl.BUNDLED, config=config), only=["fresh_batches"]).steps[0]


def test_the_bundled_streams_pass_addition_and_a_character_corpus():
    assert _step().status == "pass"
    step = _step(CHARS)
    assert step.status == "pass" and "rows of 32 tokens as declared" in step.message, step.message


def test_a_stream_that_ignores_its_step_fails(monkeypatch):
    real = data.train_batch
    monkeypatch.setattr(train, "train_batch", lambda step, *a, **k: real(step // 2, *a, **k))
    step = _step()
    assert step.status == "fail" and "repeats batch" in step.message, step.message


def test_data_parallel_ranks_that_share_or_cut_a_batch_fail(monkeypatch):
    real = data.train_batch
    monkeypatch.setattr(train, "train_batch", lambda step, b, lo, hi, fmt, seed, rank=0, world=1, **kw:
                        real(step, b, lo, hi, fmt, seed, **kw))                 # every rank: rank 0's batch
    step = _step()
    assert step.status == "fail" and "the rank is ignored" in step.message, step.message
    monkeypatch.setattr(train, "train_batch", lambda step, b, lo, hi, fmt, seed, rank=0, world=1, **kw:
                        real(step, b - rank, lo, hi, fmt, seed, rank, world, **kw))   # rank 1: a row short
    step = _step()
    assert step.status == "fail" and "gives rank 1 15 rows, not 16" in step.message, step.message


def test_a_corpus_window_cut_short_fails(monkeypatch):
    real = data.CharCorpus.batch
    monkeypatch.setattr(data.CharCorpus, "batch", lambda self, split, b, block, gen: real(self, split, b, 8, gen))
    step = _step(CHARS)
    assert step.status == "fail" and "the window is cut" in step.message, step.message


def test_ranks_drawing_overlapping_streams_fail():
    """Rank 1's batch of step s is rank 0's of step s + 1 (seeded by step + rank): each step's two
    batches differ, yet every batch is trained on twice."""
    import torch

    from verifier.checks.data_checks import FreshParams, shard_problem

    class Shifted:
        def train_batches(self, batch_size, seed, rank=0, world=1):
            step = 0
            while True:
                g = torch.Generator().manual_seed(seed * 1000 + step + rank)
                yield torch.randint(0, 10, (batch_size, 8), generator=g), None
                step += 1

    problem = shard_problem(Shifted(), FreshParams(), 0)
    assert problem is not None and "rank 1's batch of step 0 is rank 0's of step 1" in problem


def test_a_corpus_run_training_on_its_validation_text_fails(monkeypatch):
    from pathlib import Path

    import dsl
    from looplm import data
    from verifier import load_target, run
    real = data.CharCorpus.batch
    monkeypatch.setattr(data.CharCorpus, "batch", lambda self, split, *a: real(self, "val", *a))
    config = Path(__file__).resolve().parents[1] / "examples" / "configs" / "coverage_chars.json"
    step = run(load_target(dsl.BUNDLED, config=config), only=["fresh_batches"]).steps[0]
    assert step.status == "fail" and "held-out share of the declared corpus" in step.message, step.message
