"""The training loss: the loops it reaches and its value against the declared objective,
recomputed from each loop's prediction; a loss written otherwise fails, naming the objective."""
from pathlib import Path

import pytest

import dsl
from looplm import model as looplm_model
from verifier import load_target, run

CONFIGS = Path(__file__).resolve().parents[1] / "examples" / "configs"


def _step(step, config=None, overrides=None):
    return run(load_target(dsl.BUNDLED, config=config, overrides=overrides), only=[step]).steps[0]


def test_supervision_is_read_through_the_final_layer_norm_at_any_width():
    # a constant probe vanishes in a layer norm up to rounding: at width 48 it read loop 1 as the last
    for overrides in (None, {"supervision": "all"}):
        step = _step("supervision_schedule", CONFIGS / "quick.json", overrides)
        assert step.status == "pass", step.message


@pytest.mark.parametrize("config", [None, "coverage_abacus_gate.json", "coverage_gpt.json", "coverage_normal.json",
                                    "coverage_chars.json"])
def test_every_bundled_objective_is_the_declared_one(config):
    step = _step("training_objective", CONFIGS / config if config else None)
    assert step.status == "pass", step.message
    assert step.margins["relative_diff"].value < 1e-6


def test_weights_other_than_the_declared_ones_fail(monkeypatch):
    real = looplm_model.supervision_weights
    monkeypatch.setattr(looplm_model, "supervision_weights",       # 'weighted' as k + 2, not k + 1
                        lambda kind, L: real("all", L) if kind == "weighted" else real(kind, L))
    step = _step("training_objective", CONFIGS / "coverage_gpt.json")
    assert step.status == "fail" and "supervision 'weighted'" in step.message


def test_a_gate_loss_with_another_prior_fails(monkeypatch):
    # PonderNet's KL term taken against a geometric prior other than the declared one
    real = looplm_model.LoopLM._ponder_loss
    monkeypatch.setattr(looplm_model.LoopLM, "_ponder_loss", lambda self, losses, halt, tgt, policy:
                        real(self, losses, halt, tgt, policy.model_copy(update={"gate_prior": 0.5})))
    step = _step("training_objective", CONFIGS / "coverage_abacus_gate.json", {"gate_beta": 1.0})
    assert step.status == "fail" and "ponder" in step.message
