"""The training stream: a function of its seed that does not repeat itself, with rows as long
as the design declares; a stream that ignores its step or cuts its window fails."""
from pathlib import Path

import dsl
from looplm import data
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
    monkeypatch.setattr(data, "train_batch", lambda step, *a, **k: real(step // 2, *a, **k))
    step = _step()
    assert step.status == "fail" and "repeats batch" in step.message, step.message


def test_a_corpus_window_cut_short_fails(monkeypatch):
    real = data.CharCorpus.batch
    monkeypatch.setattr(data.CharCorpus, "batch", lambda self, split, b, block, gen: real(self, split, b, 8, gen))
    step = _step(CHARS)
    assert step.status == "fail" and "the window is cut" in step.message, step.message
