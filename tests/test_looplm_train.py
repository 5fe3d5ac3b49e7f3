"""Training: the trace, the checkpoint, the schedule, depth policies, resume."""
import json
import random

from looplm import checkpoint
from looplm.config import Config
from looplm.train import loops_at, lr_at, train


def test_tiny_run_reaches_99_and_writes_trace_and_checkpoint(tiny_run):
    summary, out = tiny_run
    rows = [json.loads(l) for l in (out / "trace.jsonl").read_text().splitlines()]
    assert rows and {"step", "train_loss", "val_loss", "val_accuracy", "lr", "time_s", "tokens_per_s"} <= set(rows[0])
    assert rows[-1]["val_accuracy"] >= 0.99 and summary["reached_target_at_step"] == rows[-1]["step"]
    assert rows[-1]["train_loss"] < rows[0]["train_loss"]
    ld = checkpoint.load(out / "ckpt.pt")
    assert ld.meta["step"] == summary["steps"] and ld.optimizer is not None


def test_schedule_warmup_then_cosine():
    t = Config().train
    assert lr_at(0, t) < lr_at(t.warmup_iters - 1, t) == t.lr
    assert abs(lr_at(t.max_iters, t) - t.lr * t.min_lr_ratio) < 1e-9


def test_depth_policies():
    rng = random.Random(0)
    cur = Config().override(train={"depth": "curriculum", "curriculum": (2, 4, 8), "max_iters": 300})
    assert [loops_at(s, cur, rng) for s in (0, 99, 100, 299)] == [2, 2, 4, 8]
    rnd = Config().override(train={"depth": "random", "random_min_loops": 3, "random_max_loops": 5})
    assert {loops_at(s, rnd, rng) for s in range(200)} == {3, 4, 5}


def test_resume_continues_from_the_checkpoint(tmp_path):
    cfg = Config().override(model={"n_embd": 32, "n_loops": 2}, train={"max_iters": 20, "eval_interval": 10,
                                                                        "eval_problems": 16, "batch_size": 16})
    train(cfg, tmp_path)
    summary = train(cfg.override(train={"max_iters": 30}), tmp_path, resume=True)
    steps = [json.loads(l)["step"] for l in (tmp_path / "trace.jsonl").read_text().splitlines()]
    assert steps == [10, 20, 30] and summary["steps"] == 30


def test_char_corpus_run(tmp_path):
    text = tmp_path / "t.txt"
    text.write_text("To be, or not to be, that is the question.\n" * 40)
    cfg = Config().override(model={"position": "learned", "n_embd": 32, "n_loops": 2},
                            data={"task": "chars", "text_path": str(text), "block_size": 32},
                            train={"max_iters": 40, "eval_interval": 20, "batch_size": 16})
    summary = train(cfg, tmp_path / "run")
    assert summary["val_loss"] < 3.0
    assert checkpoint.load(tmp_path / "run" / "ckpt.pt").vocab.chars.startswith("\n ,.T")
