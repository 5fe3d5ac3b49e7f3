"""Experiments end to end on a CPU (tiny): gate -> train -> every kind of eval -> report."""
import json

import pytest
from typer.testing import CliRunner

from app.cli import app
from app.experiment import Experiment, loops_for
HEADLINE = "looplm_reversed_all_loops"

TINY = {"model": {"n_embd": 32, "n_head": 2, "n_loops": 3, "prefix_bidirectional": True},
        "train": {"max_iters": 20, "eval_interval": 10, "eval_problems": 16, "batch_size": 16, "device": "cpu"},
        "data": {"format": "normal"}}
EVALS = [{"name": "random", "digits": [2, 5], "n": 8, "loops": "digits+2"},
         {"name": "fixed", "digits": [2], "n": 8},
         {"name": "carry_chain", "digits": [5], "n": 8, "kind": "carry_chain", "loops": "digits+2"},
         {"name": "decoy", "digits": [5], "n": 8, "kind": "decoy"},
         {"name": "loops", "digits": [3], "n": 8, "loops": [1, 4]},
         {"name": "halting", "digits": [3], "n": 8, "thresholds": [1.0, 0.1]}]


def test_loop_expressions():
    assert loops_for("digits+8", 12) == 20 and loops_for("2*digits", 5) == 10 and loops_for(7, 3) == 7
    with pytest.raises(ValueError):
        loops_for("digits**2", 3)


def test_experiment_runs_and_reports(tmp_path):
    exp = tmp_path / "tiny.json"
    exp.write_text(json.dumps({"name": HEADLINE, "headline": True, "config": TINY, "evals": EVALS}))
    r = CliRunner().invoke(app, ["experiment", "run", str(exp), "--out", str(tmp_path / "runs")])
    assert r.exit_code == 0, r.output
    run = tmp_path / "runs" / HEADLINE
    for f in ("experiment.json", "config.json", "gate.json", "trace.jsonl", "ckpt.pt", "ckpt_bf16.pt", "results.json"):
        assert (run / f).exists(), f
    res = json.loads((run / "results.json").read_text())
    assert res["evals"]["random"]["loops_by_digits"] == {"2": 4, "5": 7}
    assert [x["loops"] for x in res["evals"]["loops"]] == [1, 4]
    assert len(res["evals"]["halting"]) == 2
    r = CliRunner().invoke(app, ["report", str(tmp_path / "results"), "--runs", str(tmp_path / "runs")])
    assert r.exit_code == 0, r.output
    report = (tmp_path / "results" / "REPORT.md").read_text()
    assert "## Normal order" in report and HEADLINE in report
    for f in ("length_generalization.json", "normal_order.json", "test_time_loops.json", "adaptive_halting.json",
              "length_generalization.png", f"checkpoints/{HEADLINE}.pt"):
        assert (tmp_path / "results" / f).exists(), f


def test_bad_experiment_file_is_a_usage_error(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"name": "x", "evals": [{"name": "e", "digits": [], "n": 1}]}))
    r = CliRunner().invoke(app, ["experiment", "run", str(bad)])
    assert r.exit_code == 2 and "Traceback" not in r.output
    assert Experiment.model_validate({"name": "ok"}).resolved().model.n_loops == 8


def test_every_committed_experiment_is_inside_the_spec(tmp_path):
    # a run refused at its gate for a config the spec cannot express (null where the code takes
    # it) is a lost GPU session: every experiment's config must bind
    from pathlib import Path

    import dsl
    from verifier import load_target
    files = sorted((Path(__file__).resolve().parents[1] / "experiments").glob("*.json"))
    assert len(files) >= 10
    for f in files:
        config = tmp_path / f.name
        config.write_text(json.dumps(Experiment.load(f).config))
        load_target(dsl.BUNDLED, config=config)          # raises ConfigRefused outside the spec
