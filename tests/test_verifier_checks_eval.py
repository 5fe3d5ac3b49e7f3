"""The eval sets research figures report on: each is what it is named for, seeded, correct and
disjoint from training; a generator that breaks its set fails, naming it."""
import dsl
from looplm import data
from verifier import load_target, run


def _step():
    return run(load_target(dsl.BUNDLED), only=["eval_sets"]).steps[0]


def test_the_bundled_sets_pass():
    step = _step()
    assert step.status == "pass" and "carry_chain" in step.message and "held-out" in step.message


def test_a_generator_that_no_longer_makes_its_set_fails_naming_it(monkeypatch):
    monkeypatch.setattr(data, "_adversarial", lambda rng, n, kind: data.Problem(data._number(n, rng), 1))
    step = _step()
    assert step.status == "fail" and "eval set 'carry_chain'" in step.message


def test_a_leaking_split_fails(monkeypatch):
    # validation problems drawn without the held-out filter: the plain set meets training
    real = data.sample
    monkeypatch.setattr(data, "sample", lambda rng, lo, hi, split, kind="random":
                        real(rng, lo, hi, "train", kind))
    step = _step()
    assert step.status == "fail" and "appear in the training batches" in step.message
