"""Checkpoints: exact round trip, everything needed travels along, strict refusal (bug 9)."""
import pytest
import torch

from looplm import checkpoint
from looplm.config import Config
from looplm.model import LoopLM
from looplm.tokens import ADDITION, Vocab


def model(**over):
    torch.manual_seed(0)
    return LoopLM(Config().override(model={"n_embd": 32, "n_loops": 3, **over}), ADDITION)


def test_round_trip_is_exact(tmp_path):
    m = model()
    checkpoint.save(tmp_path / "c.pt", m, step=7)
    ld = checkpoint.load(tmp_path / "c.pt")
    assert ld.config == m.config and ld.vocab == m.vocab and ld.meta["step"] == 7
    assert ld.meta["git_commit"]
    for k, v in m.state_dict().items():
        assert torch.equal(v, ld.model.state_dict()[k]), k
    idx = torch.tensor([ADDITION.encode("12+34=")])
    torch.testing.assert_close(ld.model.eval()(idx).logits, m.eval()(idx).logits)


def test_bf16_checkpoint_is_small_and_loads(tmp_path):
    m = model()
    full = checkpoint.save(tmp_path / "f.pt", m)
    half = checkpoint.save(tmp_path / "h.pt", m, dtype=torch.bfloat16)
    assert half.stat().st_size < 0.7 * full.stat().st_size
    assert checkpoint.load(half).model.wte.weight.dtype == torch.float32


def test_shape_mismatch_is_refused_not_partially_loaded():
    small, big = model(), model(n_embd=64)
    with pytest.raises(checkpoint.CheckpointError, match="refusing a partial load: shape mismatch"):
        checkpoint.load_strict(big, small.state_dict())
    state = small.state_dict()
    del state["lm_head.weight"], state["wte.weight"]
    with pytest.raises(checkpoint.CheckpointError, match="missing"):
        checkpoint.load_strict(small, state)


def test_vocab_mismatch_is_refused(tmp_path):
    checkpoint.save(tmp_path / "c.pt", model())
    other = Vocab("abc.")
    with pytest.raises(checkpoint.CheckpointError, match="vocabulary"):
        checkpoint.load(tmp_path / "c.pt", expect_vocab=other)


def test_garbage_file_is_a_clear_error(tmp_path):
    p = tmp_path / "x.pt"
    p.write_bytes(b"not a checkpoint")
    with pytest.raises(checkpoint.CheckpointError, match="not a readable checkpoint"):
        checkpoint.load(p)
    with pytest.raises(FileNotFoundError):
        checkpoint.load(tmp_path / "missing.pt")


@pytest.mark.parametrize("payload", [{"weights": 1}, [1, 2, 3], torch.zeros(3),
                                     {"model": {}, "config": {"model": {"n_embd": 7}}, "data_format": "reversed",
                                      "vocab": ADDITION.chars, "pad": "."}],
                         ids=["foreign dict", "list", "tensor", "invalid config"])
def test_foreign_checkpoints_are_clear_errors(tmp_path, payload):
    p = tmp_path / "x.pt"
    torch.save(payload, p)
    with pytest.raises(checkpoint.CheckpointError):
        checkpoint.load(p)


def test_a_truncated_checkpoint_is_a_clear_error(tmp_path):
    p = checkpoint.save(tmp_path / "c.pt", model())
    p.write_bytes(p.read_bytes()[: p.stat().st_size // 2])
    with pytest.raises(checkpoint.CheckpointError, match="not a readable checkpoint"):
        checkpoint.load(p)
