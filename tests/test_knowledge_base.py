"""The knowledge base: symptom detectors fire on the catalogued bugs' signatures and stay quiet
on a healthy run; rules fire on the architectures they name; claims are re-checked."""
import json

from typer.testing import CliRunner

import dsl
from knowledge_base import DETECTORS, Evidence, check_claims, diagnose, fired_rules
from knowledge_base.detectors import answer_unigram_entropy, carry_free_probability
from app.cli import app
from looplm.config import Config

SPEC = dsl.load(dsl.BUNDLED)


def fires(name: str, ev: Evidence, **params) -> bool:
    return DETECTORS[name](ev, **params) is not None


def test_loss_plateau_at_unigram_entropy_bugs_1_2():
    h = answer_unigram_entropy(1, 4)
    assert 1.0 < h < 2.4                       # digits plus the end token, not uniform over 10
    flat = Evidence(trace=[{"train_loss": h + d} for d in (0.02, -0.01, 0.0, 0.01, -0.02, 0.01)])
    assert fires("loss_plateau", flat)
    falling = Evidence(trace=[{"train_loss": h - 0.2 * i} for i in range(6)])
    assert not fires("loss_plateau", falling)
    flat_low = Evidence(trace=[{"train_loss": 0.01} for _ in range(6)])       # converged, not stuck
    assert not fires("loss_plateau", flat_low)


def test_accuracy_equal_to_carry_free_chance_bug_3():
    assert carry_free_probability(1) == 0.55 and abs(carry_free_probability(2) - 36 / 81 * 0.55) < 1e-12
    n = 1000
    illusion = {"accuracy_by_digits": {str(d): carry_free_probability(d) for d in (1, 2, 3, 4)},
                "n_per_bucket": {str(d): n for d in (1, 2, 3, 4)}}
    assert fires("carry_free_accuracy", Evidence(reports=[illusion]))
    by_carries = {"accuracy_by_digits": {}, "accuracy_by_carries": {"0": 1.0, "1": 0.0, "2": 0.01},
                  "n_per_carries": {"0": 300, "1": 400, "2": 300}}
    assert fires("carry_free_accuracy", Evidence(reports=[by_carries]))
    healthy = {"accuracy_by_digits": {"1": 1.0, "2": 0.99, "3": 0.99}, "accuracy_by_carries": {"0": 1.0, "1": 0.99}}
    assert not fires("carry_free_accuracy", Evidence(reports=[healthy]))


def test_halting_at_step_zero_bug_6_and_periodic_zeros_bug_7():
    assert fires("halt_at_step_zero", Evidence(thinking=[{"halt_step": [1] * 40, "loops": 12}]))
    assert not fires("halt_at_step_zero", Evidence(thinking=[{"halt_step": [1] * 10 + [5] * 30, "loops": 12}]))
    skip4 = [0.7, 0.6, 0.0, 0.0, 0.0] * 8 + [0.7]  # written, then a tile's worth never written
    assert fires("periodic_zeros", Evidence(thinking=[{"values": skip4}]), min_period=4)
    assert not fires("periodic_zeros", Evidence(thinking=[{"values": [0.5 + 0.01 * i for i in range(40)]}]))


def test_memorization_and_loops_that_do_not_help():
    trace = [{"train_loss": 0.01, "config": {"data": {"max_digits": 4}}}]
    ood = {"accuracy_by_digits": {"4": 1.0, "8": 0.0, "12": 0.01}}
    assert fires("memorization", Evidence(trace=trace, reports=[ood]))
    assert not fires("memorization", Evidence(trace=trace, reports=[{"accuracy_by_digits": {"8": 0.97}}]))
    assert fires("loops_do_not_help", Evidence(reports=[{"accuracy_by_loops": {"1": 0.4, "12": 0.405}}]))
    assert not fires("loops_do_not_help", Evidence(reports=[{"accuracy_by_loops": {"1": 0.4, "12": 0.99}}]))


def test_every_spec_symptom_names_a_detector():
    assert {s.detector for s in SPEC.system.symptoms} <= set(DETECTORS)


def test_a_healthy_run_matches_no_symptom(tiny_run):
    _, out = tiny_run
    matches, ev = diagnose(SPEC, out)
    assert ev.trace and not matches, [(m.symptom, m.evidence) for m in matches]


def test_diagnose_cli_names_the_symptom_and_exits_1(tmp_path):
    report = {"accuracy_by_digits": {str(d): carry_free_probability(d) for d in (1, 2, 3)},
              "n_per_bucket": {str(d): 2000 for d in (1, 2, 3)}}
    (tmp_path / "eval.json").write_text(json.dumps(report))
    r = CliRunner().invoke(app, ["diagnose", str(tmp_path)])
    assert r.exit_code == 1 and "carry_free_accuracy" in r.stdout and "bugs [3]" in r.stdout
    (tmp_path / "eval.json").write_text("{not json")
    r = CliRunner().invoke(app, ["diagnose", str(tmp_path)])
    assert r.exit_code == 2 and "nothing to read" in r.stderr and "eval.json:1: corrupt" in r.stderr


def test_diagnose_reads_past_a_corrupt_trace_line(tmp_path):
    rows = [{"step": i, "train_loss": 0.9 - 0.1 * i} for i in range(6)]
    lines = [json.dumps(r) for r in rows]
    lines.insert(3, '{"step": 3, "train_lo')                        # a torn line mid-file
    (tmp_path / "trace.jsonl").write_text("\n".join(lines) + "\n")
    matches, ev = diagnose(SPEC, tmp_path)
    assert len(ev.trace) == 6 and [c.line for c in ev.corrupt] == [4]
    r = CliRunner().invoke(app, ["diagnose", str(tmp_path)])
    assert r.exit_code == 0 and "trace.jsonl:4: corrupt" in r.stderr and "6 trace rows" in r.stdout


def test_diagnose_refuses_when_there_is_nothing_to_read(tmp_path):
    (tmp_path / "empty").mkdir()
    (tmp_path / "ckpt.pt").write_bytes(b"\x80\x02random")
    for path in (tmp_path / "empty", tmp_path / "ckpt.pt"):
        r = CliRunner().invoke(app, ["diagnose", str(path)])
        assert r.exit_code == 2 and "nothing to read" in r.stderr and "Traceback" not in r.output


def test_rules_fire_on_the_architectures_they_name():
    names = lambda cfg: {r.name for r in fired_rules(SPEC, cfg.values())}
    assert "rope_with_x0" in names(Config().override(model={"position": "rope", "reinject": "add"}))
    assert "rope_with_x0" not in names(Config().override(model={"position": "rope", "reinject": "none"}))
    deep_all = Config().override(model={"n_loops": 12}, train={"supervision": "all"})
    assert "early_supervision_deep_loops" in names(deep_all)
    assert not names(Config())


def test_claims_are_rechecked_against_their_evidence(tmp_path):
    ev = tmp_path / "e.json"
    ev.write_text(json.dumps({"accuracy_by_digits": {"100": 0.995}}))
    spec = dsl.loads(f'''system S {{ knowledge {{
      fact good {{ statement: "ok" evidence: "{ev}" claim: accuracy_by_digits.100 >= 0.99 }}
      fact bad {{ statement: "believed" evidence: "{ev}" claim: accuracy_by_digits.100 >= 0.999 }}
      fact gone {{ statement: "lost" evidence: "{tmp_path / 'nope.json'}" claim: x == 1 }}
      fact prose {{ statement: "no claim" }}
    }} }}''')
    status = {r.fact: r.status for r in check_claims(spec, store=tmp_path / "facts.jsonl")}
    assert status == {"good": "holds", "bad": "contradicted", "gone": "missing_evidence", "prose": "unverified"}
