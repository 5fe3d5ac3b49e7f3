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
