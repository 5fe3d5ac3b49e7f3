"""The run's accounting, as resume equivalence reads it from `progress`: every step once, in
order, against the schedule's length, and a call that ends the schedule evaluates its weights."""
from verifier.checks.train_checks import _Progress, run_accounting


def _reported(steps, evals=(), total=12):
    got = _Progress()
    for s in steps:
        got(step=s, total=total, loss=1.0)
    for s in evals:
        got(step=s, total=total, accuracy=0.5)
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


def test_supervision_is_read_through_the_final_layer_norm_at_any_width():
    # a constant probe vanishes in a layer norm up to rounding: at width 48 it read loop 1 as the last
    from pathlib import Path

    import dsl
    from verifier import load_target, run
    config = Path(__file__).resolve().parents[1] / "examples" / "configs" / "quick.json"
    for overrides in (None, {"supervision": "all"}):
        report = run(load_target(dsl.BUNDLED, config=config, overrides=overrides), only=["supervision_schedule"])
        assert report.steps[0].status == "pass", report.steps[0].message


def test_truncated_bptt_is_read_at_its_cut_with_and_without_reinjection():
    import dsl
    from verifier import load_target, run
    for reinject in ("add", "none"):
        report = run(load_target(dsl.BUNDLED, overrides={"tbptt": 3, "reinject": reinject}),
                     only=["autograd_connectivity"])
        step = report.steps[0]
        assert step.status == "pass" and "the 5 before it none" in step.message, step.message
