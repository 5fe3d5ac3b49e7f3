"""Checkpoints and generation: a mismatched checkpoint is refused the same way whichever side is
larger; the eval's exact match agrees with generation on a model that answers some problems."""
import dsl
from verifier import load_target, run


def test_an_exact_match_that_marks_everything_wrong_fails_generation_parity(monkeypatch):
    from looplm import evaluate
    real = evaluate.score
    monkeypatch.setattr(evaluate, "score", lambda *a, **k: ([{**r, "correct": False} for r in real(*a, **k)[0]],
                                                           real(*a, **k)[1]))
    steps = run(load_target(dsl.BUNDLED), only=["generation_parity"]).steps
    assert steps[0].status == "fail" and "exact match says False" in steps[0].message, steps[0].message


def test_a_refusal_that_depends_on_which_side_is_larger_fails(monkeypatch):
    # the project's own refusal only for larger checkpoints; torch's RuntimeError for smaller ones
    from looplm import checkpoint
    real = checkpoint.load_strict

    def lopsided(model, state, where="state"):
        own = model.state_dict()
        if any(k in own and state[k].shape < own[k].shape for k in state):
            return model.load_state_dict(state, strict=True)
        return real(model, state, where)
    monkeypatch.setattr(checkpoint, "load_strict", lopsided)
    step = run(load_target(dsl.BUNDLED), only=["strict_checkpoint_load"]).steps[0]
    assert step.status == "fail" and "two ways of refusing it" in step.message, step.message


def test_a_generator_that_returns_nothing_fails(monkeypatch):
    # zip() over an empty generation compared nothing and passed
    import dsl
    from looplm import evaluate
    from verifier import load_target, run
    monkeypatch.setattr(evaluate, "generate", lambda model, prompts, max_new, **kw: [])
    step = run(load_target(dsl.BUNDLED), only=["generation_parity"]).steps[-1]
    assert step.status == "fail" and "returned 0 continuations" in step.message, step.message
