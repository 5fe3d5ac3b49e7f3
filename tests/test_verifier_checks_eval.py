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


def test_a_swapped_split_fails_though_train_and_eval_stay_disjoint(monkeypatch):
    real = data.sample
    swap = {"train": "val", "val": "train"}
    monkeypatch.setattr(data, "sample", lambda rng, lo, hi, split, kind="random": real(rng, lo, hi, swap[split], kind))
    step = _step()
    assert step.status == "fail" and "not held out by the system's own rule" in step.message, step.message


def test_a_set_narrower_than_its_name_fails(monkeypatch):
    real = data._adversarial
    def long_second(rng, n, kind):                          # 'unequal', but the long operand always second
        p = real(rng, n, kind)
        return data.Problem(*sorted((p.a, p.b), key=lambda x: len(str(x)))) if kind == "unequal" else p
    monkeypatch.setattr(data, "_adversarial", long_second)
    step = _step()
    assert step.status == "fail" and "eval set 'unequal' is narrower" in step.message, step.message


def test_the_plain_sets_spread_is_no_alarm_on_a_wide_range():
    from looplm.system import spread_lengths
    probs = data.problems(400, 1, 300, seed=4)                # 300 lengths, 400 draws: many lengths unseen
    assert spread_lengths(1, 300)(probs) is None
    assert "distinct lengths" in spread_lengths(1, 4)([data.Problem(12, 34)] * 400)


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



def test_the_reports_other_figures_are_recomputed_from_forward():
    step = _report_step()[1]
    assert "recomputed from forward(): claim, counts, loss, steps_answer, steps_prompt, applications_saved" \
        in step.message, step.message


def test_a_summed_loss_a_miscounted_mean_and_a_stray_problem_each_fail(monkeypatch):
    from looplm import evaluate
    real = evaluate.score

    def summed(*a, **k):                     # the answer loss summed over tokens, not averaged
        rows, loss = real(*a, **k)
        return rows, loss * sum(r["tokens"] for r in rows)
    steps = _report_step(monkeypatch, score=summed)
    assert steps[1].status == "fail" and "answer loss" in steps[1].message, steps[1].message
    monkeypatch.setattr(evaluate, "score", real)
    # the loop-count means halved (a mean over the wrong positions): no longer what forward ran
    monkeypatch.setattr(evaluate, "_mean", lambda xs: sum(xs) / len(xs) * (0.5 if xs and isinstance(xs[0], float)
                                                                           and xs[0] > 1 else 1) if xs else 0.0)
    steps = _report_step()
    assert steps[1].status == "fail" and "loops per" in steps[1].message, steps[1].message
    monkeypatch.undo()
    # a d-digit group drawn from 0..10^d - 1: a few of its problems are shorter than d digits
    monkeypatch.setattr(data, "_number", lambda digits, rng: rng.randint(0, 10 ** digits - 1))
    steps = _report_step()
    assert steps[1].status == "fail" and "not what the group is named for" in steps[1].message, steps[1].message


def test_a_split_holding_out_another_share_fails(monkeypatch):
    # half the space held out: sampler and rule agree, both sides stay disjoint and where the
    # rule puts them, and training sees half the problems it should
    monkeypatch.setattr(data, "held_out", lambda a, b: (a * 7 + b) % 2 == 0)
    step = _step()
    assert step.status == "fail" and "held-out rule holds out" in step.message and "declares a share" in step.message
