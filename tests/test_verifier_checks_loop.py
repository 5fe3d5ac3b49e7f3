"""Halting semantics under a learned gate: a token halts at the first loop where the gate's
probability of having halted reaches the threshold; a halting rule that drifts from it fails."""
from pathlib import Path

import dsl
from looplm import model as looplm_model
from verifier import load_target, run

GATE = Path(__file__).resolve().parents[1] / "examples" / "configs" / "coverage_abacus_gate.json"


def _step():
    return run(load_target(dsl.BUNDLED, config=GATE), only=["halting_semantics"]).steps[0]


def test_the_learned_gate_halts_as_declared():
    step = _step()
    assert step.status == "pass", step.message


def test_a_gate_that_halts_later_than_its_threshold_fails(monkeypatch):
    real = looplm_model.LoopLM._halt

    def late(self, h, active, steps, survive, new, logits, thr, loop, policy, backend):
        if policy.mode == "gate":
            policy = policy.model_copy(update={"gate_threshold": min(policy.gate_threshold + 0.2, 0.999)})
        return real(self, h, active, steps, survive, new, logits, thr, loop, policy, backend)
    monkeypatch.setattr(looplm_model.LoopLM, "_halt", late)
    step = _step()
    assert step.status == "fail" and "learned gate's probability of having halted" in step.message
