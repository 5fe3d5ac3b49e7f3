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


def _report_step(monkeypatch=None, **patch):
    from looplm import evaluate
    for name, fn in patch.items():
        monkeypatch.setattr(evaluate, name, fn)
    return run(load_target(dsl.BUNDLED), only=["generation_parity", "eval_report"]).steps


def test_the_taught_model_answers_some_problems_and_not_others():
    from verifier.checks.taught import taught
    target = load_target(dsl.BUNDLED)
    t = taught(target)
    right = target.system.exact_match(t.model, t.problems)
    known = [r for r, k in zip(right, t.known) if k]
    assert sum(known) >= 0.9 * len(known) and sum(right) < len(right), (sum(known), sum(right))
    assert taught(target) is t                               # built once per run


def test_the_eval_report_passes_with_part_right_groups():
    steps = _report_step()
    assert [s.status for s in steps] == ["pass", "pass"], [s.message for s in steps]
    assert "part right, part wrong" in steps[1].message and "0 group" not in steps[1].message


def test_a_report_that_floors_its_means_fails(monkeypatch):
    from looplm import evaluate
    steps = _report_step(monkeypatch, _mean=lambda xs: sum(xs) // len(xs) if xs else 0.0)
    assert steps[0].status == "pass" and steps[1].status == "fail" and "the figure is not what was measured" \
        in steps[1].message, steps[1].message
    assert evaluate._mean([1, 0]) == 0

