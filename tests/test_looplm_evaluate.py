"""Evaluation: teacher-forced exact match equals greedy decoding; format mismatch refused."""
import pytest

from looplm import checkpoint
from looplm.config import HaltingConfig
from looplm.data import problems
from looplm.evaluate import FormatMismatch, evaluate, greedy_correct, score


def test_teacher_forced_exact_match_equals_greedy_decoding(tiny_run):
    model = checkpoint.load(tiny_run[1] / "ckpt.pt").model
    probs = problems(60, 1, 4, seed=11)                  # 3-4 digits are beyond it: some wrong
    tf = [r["correct"] for r in score(model, probs)[0]]
    assert tf == greedy_correct(model, probs)
    assert 0 < sum(tf) < len(tf)
    halt = HaltingConfig(mode="entropy", threshold=0.3)
    assert [r["correct"] for r in score(model, probs, halting=halt)[0]] == greedy_correct(model, probs, halting=halt)


def test_report_fields_and_trained_range(tiny_run):
    model = checkpoint.load(tiny_run[1] / "ckpt.pt").model
    r = evaluate(model, [1, 2], 100)
    assert set(r["accuracy_by_digits"]) == {"1", "2"} and r["n_per_bucket"] == {"1": 100, "2": 100}
    assert min(r["accuracy_by_digits"].values()) >= 0.99
    assert r["avg_steps_answer"] == 4 and r["data_format"] == "reversed"
    assert "0" in r["accuracy_by_carries"] and r["config"]["model"]["n_loops"] == 4


def test_format_mismatch_is_refused(tiny_run):
    model = checkpoint.load(tiny_run[1] / "ckpt.pt").model
    with pytest.raises(FormatMismatch, match="refusing to evaluate normal-order data"):
        evaluate(model, [2], 10, fmt="normal")


def test_halting_saves_applications(tiny_run):
    model = checkpoint.load(tiny_run[1] / "ckpt.pt").model
    fixed = evaluate(model, [2], 50)
    halted = evaluate(model, [2], 50, halting=HaltingConfig(mode="entropy", threshold=0.5))
    assert fixed["applications_saved"] == 0
    assert 0 < halted["applications_saved"] < 1 and halted["avg_steps_prompt"] < 4
