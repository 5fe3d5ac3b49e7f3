"""The run's accounting, as resume equivalence reads it from `progress`: every step once, in
order, against the schedule's length, and a call that ends the schedule evaluates its weights."""
from verifier.checks.train_checks import _Progress, depth_problems, run_accounting
from verifier.contract import Design


def _reported(steps, evals=(), total=12, accuracy=0.5):
    got = _Progress()
    for s in steps:
        got(step=s, total=total, loss=1.0)
    for s in evals:
        got(step=s, total=total, accuracy=accuracy)
    return got


def test_a_run_that_keeps_its_accounting_passes():
    assert run_accounting("straight", _reported(range(1, 13), [10, 12]), range(1, 13), 12, True) is None
    assert run_accounting("first", _reported(range(1, 7)), range(1, 7), 12, False) is None


def test_each_broken_account_is_named():
    assert "reported training steps" in run_accounting("s", _reported(range(0, 12), [12]), range(1, 13), 12, True)
    assert "reported training steps" in run_accounting("s", _reported([1, 2, 2, 3]), range(1, 4), 12, False)
    assert "schedule of [6]" in run_accounting("s", _reported(range(1, 7), total=6), range(1, 7), 12, False)
    assert "without evaluating" in run_accounting("s", _reported(range(1, 13), [10]), range(1, 13), 12, True)
    assert "without evaluating" in run_accounting("s", _reported(range(1, 13)), range(1, 13), 12, True)


def test_truncated_bptt_is_read_at_its_cut_with_and_without_reinjection():
    import dsl
    from verifier import load_target, run
    for reinject in ("add", "none"):
        report = run(load_target(dsl.BUNDLED, overrides={"tbptt": 3, "reinject": reinject}),
                     only=["autograd_connectivity"])
        step = report.steps[0]
        assert step.status == "pass" and "the 5 before it none" in step.message, step.message


def test_a_declared_eval_interval_is_held_to_exactly():
    every = 10
    assert run_accounting("s", _reported(range(1, 13), [10, 12]), range(1, 13), 12, True, every) is None
    assert run_accounting("r", _reported(range(7, 13), [10, 12]), range(7, 13), 12, True, every) is None
    assert run_accounting("f", _reported(range(1, 7)), range(1, 7), 12, False, every) is None
    assert "not [10, 12]" in run_accounting("s", _reported(range(1, 13), [12]), range(1, 13), 12, True, every)
    assert "not [10, 12]" in run_accounting("s", _reported(range(1, 13), [5, 10, 12]), range(1, 13), 12, True, every)


def test_the_log_must_record_the_evaluations_reported(tmp_path):
    import json

    from verifier.checks.train_checks import log_problem
    from verifier.contract import Design
    d = Design(loops=4)
    log = tmp_path / "trace.jsonl"
    assert log_problem("s", {"checkpoint": "c"}, [10, 12], d, 12) is None          # a system that keeps no log
    assert "never wrote" in log_problem("s", {"log": str(log)}, [10, 12], d, 12)
    log.write_text("".join(json.dumps({"step": s, "accuracy": 0.5}) + "\n" for s in (10, 12)))
    assert log_problem("s", {"log": str(log)}, [10, 12], d, 12) is None
    assert "steps [10, 12], it reported [12]" in log_problem("s", {"log": str(log)}, [12], d, 12)
    log.write_text("".join(json.dumps({"step": s, "time_s": t}) + "\n" for s, t in ((10, 0.5), (12, 0.7))))
    assert log_problem("s", {"log": str(log)}, [10, 12], d, 12, wall=0.8) is None
    log.write_text("".join(json.dumps({"step": s, "time_s": t}) + "\n" for s, t in ((10, 40.0), (12, 48.0))))
    assert "not the elapsed time" in log_problem("s", {"log": str(log)}, [10, 12], d, 12, wall=2.0)  # a 2 s call


def test_the_summary_must_state_what_the_call_measured():
    from verifier.checks.train_checks import summary_problem
    assert summary_problem("s", {"time_s": 1.2, "peak_memory_mb": 300.0}, wall=1.5) is None
    assert summary_problem("s", {"checkpoint": "c"}, wall=1.5) is None            # states nothing
    assert "for a call that lasted" in summary_problem("s", {"time_s": 1e9}, wall=1.5)
    assert "peak memory of 0" in summary_problem("s", {"time_s": 1.0, "peak_memory_mb": 0}, wall=1.5)


def test_the_logged_rate_and_loops_must_be_those_of_the_step_before_the_evaluation():
    from verifier.checks.train_checks import declared_lr, logged_schedule_problem
    from verifier.contract import Depth, Design, Schedule
    sched = Schedule(kind="warmup_cosine", lr=1e-3, warmup=5, total=100, min_lr=1e-4)
    d = Design(loops=4, schedule=sched, depth=Depth(kind="curriculum", stages=[2, 4], total=100))
    at = lambda s: declared_lr(sched.model_copy(update={"total": 12}), s)  # noqa: E731
    good = [{"step": 6, "lr": at(5), "loops": 2}, {"step": 12, "lr": at(11), "loops": 4}]
    assert logged_schedule_problem("s", good, d, 12) is None
    assert "lr" in logged_schedule_problem("s", [{"step": 6, "lr": at(6), "loops": 2}], d, 12)     # one step late
    assert "loops" in logged_schedule_problem("s", [{"step": 6, "lr": at(5), "loops": 4}], d, 12)  # next stage's


def test_resuming_a_finished_run_must_be_refused(tmp_path):
    from verifier.checks.train_checks import _refuses_finished

    class Quiet:                      # trains nothing and says nothing: a silent success
        def train_run(self, out_dir, **kw):
            return {"checkpoint": str(out_dir / "c.pt")}

    class Refuses:
        def train_run(self, out_dir, **kw):
            raise RuntimeError("the run already finished")
    assert "returned instead of refusing" in _refuses_finished(Quiet(), tmp_path, 12)
    assert _refuses_finished(Refuses(), tmp_path, 12) is None


def test_a_run_stops_early_only_where_its_declared_accuracy_was_reached():
    stop = 0.99
    assert run_accounting("s", _reported(range(1, 11), [10], accuracy=1.0), range(1, 13), 12, True, 10, stop) is None
    why = run_accounting("s", _reported(range(1, 11), [10], accuracy=0.5), range(1, 13), 12, True, 10, stop)
    assert "did not reach the declared stop accuracy 0.99" in why, why
    assert "reported training steps" in run_accounting("s", _reported(range(1, 13), [10, 12], accuracy=1.0),
                                                       range(1, 13), 12, True, 10, stop)


def test_the_depth_each_step_ran_is_held_to_the_declared_policy():
    curriculum = Design(loops=8, depth={"kind": "curriculum", "stages": [2, 4, 8], "total": 300})
    steps = [0, 99, 100, 150, 200, 299]
    assert depth_problems(curriculum, steps, [2, 2, 4, 4, 8, 8]) == []
    stuck = depth_problems(curriculum, steps, [2, 2, 2, 2, 2, 2])
    assert len(stuck) == 4 and "step 100: the training step ran the loop 2 times" in stuck[0], stuck
    random = Design(loops=8, depth={"kind": "random", "low": 2, "high": 8, "total": 300})
    assert depth_problems(random, steps, [3, 8, 2, 5, 5, 7]) == []
    assert "it is not drawn" in depth_problems(random, steps, [5] * 6)[0]
    assert "says [8]" in depth_problems(Design(loops=8), [0], [4])[0]


def test_a_progressive_step_runs_its_second_pass_on_top_of_the_declared_depth():
    """Design.progressive: L + n + k loops per step (n + k in 1..L), or n + k alone at weight 1;
    the same counts without the declaration break the depth policy."""
    from verifier.checks.train_checks import declared_loops
    from verifier.contract import Depth, Progressive
    fixed = Design(loops=4, depth=Depth(kind="fixed", loops=4))
    assert declared_loops(fixed.model_copy(update={"progressive": Progressive(weight=0.5)}), 0) == {5, 6, 7, 8}
    assert declared_loops(fixed.model_copy(update={"progressive": Progressive(weight=1.0)}), 0) == {1, 2, 3, 4}
    assert depth_problems(fixed, [0, 1], [6, 8]) and not depth_problems(
        fixed.model_copy(update={"progressive": Progressive(weight=0.5)}), [0, 1], [6, 8])


def test_the_bundled_step_with_a_progressive_loss_passes_the_smoke_step():
    import dsl
    from verifier import load_target, run
    report = run(load_target(dsl.BUNDLED, overrides={"progressive": 0.5}), only=["train_step_smoke"])
    assert report.steps[0].status == "pass", report.steps[0].message
