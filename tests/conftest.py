"""Shared test settings: one hypothesis profile for CI (derandomized, bounded)."""
import os

from hypothesis import HealthCheck, settings

settings.register_profile("ci", derandomize=True, deadline=None, print_blob=True,
                          suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("dev", deadline=None, print_blob=True,
                          suppress_health_check=[HealthCheck.too_slow])
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))


import pytest

# A small model that learns 1-2 digit reversed addition to 100% in ~35 s on a 2-core CPU:
# the trained checkpoint that eval, checkpoint, trace and verifier tests share.
TINY = {"model": {"n_embd": 48, "n_head": 4, "n_loops": 4},
        "train": {"max_iters": 2000, "batch_size": 64, "lr": 0.005, "target_accuracy": 0.999,
                  "eval_interval": 50, "eval_problems": 512, "warmup_iters": 30},
        "data": {"max_digits": 2}}


@pytest.fixture(autouse=True)
def _private_stores(tmp_path, monkeypatch):
    """RCA drafts and learned facts written by tests go to a temporary place, never the repo."""
    monkeypatch.setenv("LOOPLM_RCA", str(tmp_path / "rca.jsonl"))
    monkeypatch.setenv("LOOPLM_KB", str(tmp_path / "facts.jsonl"))
    monkeypatch.setenv("LOOPLM_CACHE", str(tmp_path.parent / "looplm-cache"))


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory):
    """(summary, run dir) of one trained tiny model."""
    from looplm.config import Config
    from looplm.train import train
    out = tmp_path_factory.mktemp("tiny_run")
    summary = train(Config.model_validate(TINY), out)
    assert summary["val_accuracy"] >= 0.99, summary
    return summary, out


def _gpu_ready() -> tuple[bool, str]:
    import torch
    if not torch.cuda.is_available():
        return False, "no CUDA GPU here (run on the H200: see README, 'Running on the GPU')"
    from kernels.tile import HAVE_CUTILE
    return (True, "") if HAVE_CUTILE else (False, "cuda.tile is not importable")


def pytest_collection_modifyitems(config, items):
    ok, why = _gpu_ready()
    if ok:
        return
    skip = pytest.mark.skip(reason=why)
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)


@pytest.fixture
def strict_spec(tmp_path):
    """(spec, config) where the gate must refuse: the user's spec makes the advisory rule about
    RoPE with x0 re-injection an error, and the config uses exactly that architecture."""
    import json

    import dsl
    text = dsl.BUNDLED.read_text()
    at = text.index("rule rope_with_x0")
    spec = tmp_path / "strict.dsl"
    spec.write_text(text[:at] + text[at:].replace("severity: warning", "severity: error", 1))
    cfg = tmp_path / "rope_x0.json"
    cfg.write_text(json.dumps({"model": {"n_embd": 32, "n_head": 4, "n_loops": 3, "position": "rope", "reinject": "add"},
                               "train": {"max_iters": 8, "batch_size": 16, "eval_interval": 4, "eval_problems": 32,
                                         "device": "cpu"},
                               "data": {"max_digits": 3}}))
    return spec, cfg
