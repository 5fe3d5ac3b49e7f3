"""Training: the trace, the checkpoint, the schedule, depth policies, exact resume, Ctrl-C."""
import json

import pytest
import torch

from looplm import checkpoint
from looplm import train as T
from looplm.config import Config
from looplm.train import TrainingError, TrainingInterrupted, loops_at, lr_at, train


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
    cur = Config().override(train={"depth": "curriculum", "curriculum": (2, 4, 8), "max_iters": 300})
    assert [loops_at(s, cur) for s in (0, 99, 100, 299)] == [2, 2, 4, 8]
    rnd = Config().override(train={"depth": "random", "random_min_loops": 3, "random_max_loops": 5})
    assert {loops_at(s, rnd) for s in range(200)} == {3, 4, 5}
    assert [loops_at(s, rnd) for s in range(20)] == [loops_at(s, rnd) for s in range(20)]   # a function of the step


SMALL = Config().override(model={"n_embd": 32, "n_loops": 2, "position": "abacus"},     # abacus: draws RNG in training
                          train={"max_iters": 20, "eval_interval": 10, "eval_problems": 16, "batch_size": 16})


def test_progressive_split_covers_every_start_and_stays_within_the_depth():
    c = Config().override(train={"seed": 3})
    splits = [T.progressive_split(step, c, 6) for step in range(400)]
    assert {n for n, _ in splits} == set(range(6))
    assert all(1 <= k <= 6 - n for n, k in splits)
    assert splits == [T.progressive_split(step, c, 6) for step in range(400)]     # resumable: (seed, step)


def test_progressive_step_mixes_the_full_loss_with_a_resumed_pass():
    """The step's loss is (1 - a) * the forward's loss + a * the loss of k loops from the no-gradient
    state after n; with a = 0 it is the forward's loss alone."""
    from looplm.data import make_batch, problems
    from looplm.model import LoopLM
    from looplm.tokens import ADDITION
    c = Config().override(model={"n_embd": 32, "n_head": 4, "n_loops": 6}, train={"progressive": 0.25, "lr": 1e-9,
                                                                              "warmup_iters": 0, "grad_clip": 0.0})
    b = make_batch(problems(8, 1, 3, seed=5), "reversed")
    torch.manual_seed(0)
    trained = LoopLM(c, ADDITION).train()
    warm = c.override(train={"progressive": 0.0, "lr": 1e-2})
    opt = T.optimizer(trained, warm.train)
    for step in range(30):       # past the initial plateau, where the loss hardly depends on the loops
        T.train_step(trained, opt, b.idx, b.targets, 100, warm)
    seen = 0
    for step in range(6):
        model = LoopLM(c, ADDITION).train()
        model.load_state_dict(trained.state_dict())
        n, k = T.progressive_split(step, c, 6)
        with torch.no_grad():
            full = float(model(b.idx, b.targets, loops=6).loss)
            start = (model.loop_state(b.idx, n), n) if n else None
            prog = float(model(b.idx, b.targets, loops=k, start=start).loss)
        got = T.train_step(model, T.optimizer(model, c.train), b.idx, b.targets, step, c)
        assert got == pytest.approx(0.75 * full + 0.25 * prog, rel=1e-6)
        if n + k < 6:     # a shallower pass: its loss differs, far above rel (a step without it fails)
            assert abs(prog - full) > 1e-3 * full
            seen += 1
    assert seen


def test_progressive_needs_a_shared_block():
    with pytest.raises(ValueError, match="tied weights"):
        Config().override(model={"tied": False}, train={"progressive": 0.5})


def test_resume_continues_exactly_where_an_uninterrupted_run_would_be(tmp_path):
    train(SMALL, tmp_path / "straight")
    train(SMALL, tmp_path / "resumed", stop_after=7)                   # stops between two evals
    summary = train(SMALL, tmp_path / "resumed", resume=True)
    a, b = (checkpoint.load(tmp_path / d / "ckpt.pt") for d in ("straight", "resumed"))
    assert summary["steps"] == 20 and a.meta["step"] == b.meta["step"] == 20
    for k, v in a.model.state_dict().items():
        assert torch.equal(v, b.model.state_dict()[k]), k
    steps = [json.loads(l)["step"] for l in (tmp_path / "resumed" / "trace.jsonl").read_text().splitlines()]
    assert steps == [10, 20]


def test_resume_refuses_what_it_cannot_continue(tmp_path):
    with pytest.raises(TrainingError, match="nothing to resume"):
        train(SMALL, tmp_path / "typo", resume=True)
    train(SMALL, tmp_path / "done")
    with pytest.raises(TrainingError, match="already finished"):
        train(SMALL, tmp_path / "done", resume=True)


def test_ctrl_c_saves_the_last_finished_step(tmp_path, monkeypatch):
    real_step = T.train_step

    def interrupted(*args, **kw):
        if args[4] == 13:
            raise KeyboardInterrupt
        return real_step(*args, **kw)
    monkeypatch.setattr(T, "train_step", interrupted)
    with pytest.raises(TrainingInterrupted, match="step 13") as e:
        train(SMALL, tmp_path)
    assert checkpoint.load(e.value.path).meta["step"] == 13
    monkeypatch.setattr(T, "train_step", real_step)
    assert train(SMALL, tmp_path, resume=True)["steps"] == 20


def test_char_corpus_run(tmp_path):
    text = tmp_path / "t.txt"
    text.write_text("To be, or not to be, that is the question.\n" * 40)
    cfg = Config().override(model={"position": "learned", "n_embd": 32, "n_loops": 2},
                            data={"task": "chars", "text_path": str(text), "block_size": 32},
                            train={"max_iters": 40, "eval_interval": 20, "batch_size": 16})
    summary = train(cfg, tmp_path / "run")
    assert summary["val_loss"] < 3.0
    assert checkpoint.load(tmp_path / "run" / "ckpt.pt").vocab.chars.startswith("\n ,.T")
