"""The committed results are what the code measures: the README's table is generated from the
results JSON, and the committed checkpoint re-scores its recorded buckets on a CPU."""
import json

import pytest

from app.report import length_table
from looplm import checkpoint
from looplm.evaluate import evaluate
from looplm.provenance import ROOT

RESULTS = ROOT / "results"
HEADLINE = "looplm_reversed_all_loops"
NORMAL_BEST = "normal_down_all_s0"        # the best normal-order run, its checkpoint committed too


def test_readme_table_is_generated_from_the_results():
    table = length_table(RESULTS)
    assert table in (ROOT / "README.md").read_text(), "README is stale: paste `app.report.length_table('results')`"
    assert table in (RESULTS / "REPORT.md").read_text()


@pytest.mark.parametrize("digits", [12, 64])
def test_committed_checkpoint_reproduces_its_buckets(digits):
    recorded = json.loads((RESULTS / "length_generalization.json").read_text())["models"][HEADLINE]
    n = recorded["n_per_bucket"][str(digits)]
    ld = checkpoint.load(RESULTS / "checkpoints" / f"{HEADLINE}.pt")
    got = evaluate(ld.model, [digits], n, seed=0)["accuracy_by_digits"][str(digits)]
    # recorded on the H100 under bf16 autocast; here float32 on the CPU with the same bf16 weights
    assert abs(got - recorded["accuracy_by_digits"][str(digits)]) <= 0.005, got


def test_committed_normal_order_checkpoint_reproduces_its_12_digit_bucket():
    recorded = json.loads((RESULTS / "normal_order.json").read_text())[NORMAL_BEST]["random"]
    loops, n = recorded["loops"]["12"], recorded["n_per_bucket"]["12"]
    ld = checkpoint.load(RESULTS / "checkpoints" / f"{NORMAL_BEST}.pt")
    got = evaluate(ld.model, [12], n, seed=0, loops=loops)["accuracy_by_digits"]["12"]
    assert abs(got - recorded["accuracy_by_digits"]["12"]) <= 0.005, got


def test_collecting_runs_adds_to_the_results_and_never_drops_others(tmp_path):
    import shutil

    from app.report import collect, write_report
    results = tmp_path / "results"
    shutil.copytree(RESULTS, results, ignore=shutil.ignore_patterns("checkpoints", "*.png"))
    before = json.loads((results / "length_generalization.json").read_text())["models"]
    run = json.loads((results / "seeds.json").read_text())[HEADLINE]
    name, entry = next(iter(run.items()))
    runs = tmp_path / "runs" / "again_seed9"
    runs.mkdir(parents=True)
    evals = {k: {**v, "accuracy_by_carries": {}, "n_per_carries": {}} for k, v in entry["evals"].items()}
    (runs / "results.json").write_text(json.dumps({
        "name": "again_seed9", "description": "a repeat", "experiment": {"seed_of": HEADLINE},
        "config": {"data": {"format": "reversed"}, "train": {"seed": 9, "depth": "fixed"}, "model": {}},
        "train": {"params": 1, "time_s": 1.0, "steps": 10, "device_name": "test"}, "evals": evals,
        "checkpoint": "none"}))
    collect(tmp_path / "runs", results)
    after = json.loads((results / "length_generalization.json").read_text())["models"]
    assert set(after) == set(before) | {"again_seed9"}
    seeds = json.loads((results / "seeds.json").read_text())[HEADLINE]
    assert set(seeds) == set(run) | {"again_seed9"} and seeds["again_seed9"]["seed"] == 9
    report = write_report(results).read_text()
    assert "| again_seed9 | 9 | 10 |" in report and length_table(results) == length_table(RESULTS)
