"""The model: GPT-L parity, BPTT through every loop, halting, the forward contract."""
import pytest
import torch

from looplm.config import Config, HaltingConfig
from looplm.data import make_batch, problems
from looplm.model import LoopLM, Output, supervision_weights
from looplm.tokens import ADDITION


def cfg(**model):
    return Config().override(model={"n_embd": 32, "n_head": 4, "n_loops": 4, **model})


def batch(n=8, digits=3, fmt="reversed"):
    return make_batch(problems(n, 1, digits, seed=5), fmt)


@pytest.mark.parametrize("position", ["learned", "rope", "nope", "abacus", "relative", "windowed"])
def test_tied_gpt_equals_looplm(position):
    torch.manual_seed(0)
    c = cfg(position=position, reinject="none", step_embedding=False)
    loop = LoopLM(c, ADDITION).eval()
    gpt = LoopLM(c.override(model={"tied": False}), ADDITION).eval()
    state = loop.state_dict()
    gpt.load_state_dict({k: state[k if not k.startswith("blocks.") else "blocks.0." + k.split(".", 2)[2]]
                         for k in gpt.state_dict()})
    b = batch()
    a, g = loop(b.idx), gpt(b.idx)
    torch.testing.assert_close(a.logits, g.logits, rtol=1e-5, atol=1e-5)
    assert len(gpt.blocks) == 4 and len(loop.blocks) == 1


@pytest.mark.parametrize("reinject", ["none", "add", "adapter"])
def test_gradient_reaches_the_state_entering_every_loop(reinject):
    torch.manual_seed(0)
    model = LoopLM(cfg(reinject=reinject), ADDITION)
    inputs = []
    model.blocks[0].register_forward_pre_hook(lambda m, a: (a[0].retain_grad(), inputs.append(a[0]))[1] and None)
    b = batch()
    model(b.idx, b.targets).loss.backward()
    assert len(inputs) == 4
    for i, x in enumerate(inputs):
        assert x.grad is not None and x.grad.abs().sum() > 0, f"loop {i} is cut from the loss"


def test_forward_contract_and_loss_in_both_modes():
    model = LoopLM(cfg(), ADDITION)
    b = batch()
    for mode in (model.train, model.eval):
        mode()
        out = model(b.idx, b.targets)
        assert isinstance(out, Output) and len(out) == 3
        logits, loss, halting = out
        assert logits.shape == (*b.idx.shape, len(ADDITION))
        assert loss is not None and torch.isfinite(loss)
        assert halting.steps.shape == b.idx.shape and halting.entropy.shape == (0, *b.idx.shape)
        assert model(b.idx, b.targets, trace=True).halting.entropy.shape == (4, *b.idx.shape)
    assert model(b.idx).loss is None


def test_halted_tokens_keep_their_state():
    torch.manual_seed(0)
    model = LoopLM(cfg(), ADDITION).eval()
    b = batch()
    one = model(b.idx, loops=1)
    # everything halts after the first loop: the final state must be the first loop's state
    halt_all = HaltingConfig(mode="entropy", threshold=1e9)
    out = model(b.idx, loops=4, halting=halt_all)
    real = b.idx != ADDITION.pad_id
    torch.testing.assert_close(out.logits[real], one.logits[real])
    assert (out.halting.steps[real] == 1).all()
    assert out.halting.applications == int(real.sum()) < out.halting.max_applications
    # never halting is fixed depth
    never = model(b.idx, loops=4, halting=HaltingConfig(mode="entropy", threshold=0.0))
    torch.testing.assert_close(never.logits[real], model(b.idx, loops=4).logits[real])
    assert never.halting.applications == never.halting.max_applications


def test_partial_halting_freezes_exactly_the_halted_tokens():
    torch.manual_seed(0)
    model = LoopLM(cfg(), ADDITION).eval()
    b = batch(16)
    ent = model(b.idx, loops=4, trace=True).halting.entropy            # (L, B, T)
    thr = float(ent[0].median())                            # about half halt after loop 1
    out = model(b.idx, loops=4, halting=HaltingConfig(mode="entropy", threshold=thr))
    first = model(b.idx, loops=1).logits
    halted_early = (out.halting.steps == 1) & (b.idx != ADDITION.pad_id)
    assert 0 < halted_early.sum() < (b.idx != ADDITION.pad_id).sum()
    torch.testing.assert_close(out.logits[halted_early], first[halted_early])


def test_wait_to_think_is_stricter_after_the_trigger():
    model = LoopLM(cfg(), ADDITION).eval()
    b = batch()
    thr = model.thresholds(b.idx, HaltingConfig(mode="wait", threshold=0.5, wait_threshold=0.01))
    eq = (b.idx == ADDITION.id("=")).long().cumsum(1) > 0
    assert (thr[eq] == 0.01).all() and (thr[~eq] == 0.5).all()


def test_learned_gate_trains_and_halts():
    torch.manual_seed(0)
    c = cfg().override(halting={"mode": "gate", "gate_threshold": 0.5})
    model = LoopLM(c, ADDITION)
    b = batch()
    out = model(b.idx, b.targets)
    out.loss.backward()
    assert model.halt_head.weight.grad.abs().sum() > 0
    p = out.halting.ponder
    torch.testing.assert_close(p.sum(0), torch.ones_like(p[0]))
    model.eval()
    assert model(b.idx).halting.steps.max() <= 4


def test_supervision_weights():
    assert supervision_weights("last", 4) == [0, 0, 0, 1]
    assert supervision_weights("half", 12)[:6] == [0] * 6 and sum(supervision_weights("half", 12)) == pytest.approx(1)
    assert supervision_weights("all", 4) == [0.25] * 4
    w = supervision_weights("weighted", 4)
    assert w == sorted(w) and sum(w) == pytest.approx(1)


@pytest.mark.parametrize("update_skip", [0.0, 0.5])
def test_truncated_bptt_cuts_early_loops(update_skip):
    """Tokens that keep their state through a loop (update_skip) keep the detached one: no path
    around the cut."""
    torch.manual_seed(0)
    model = LoopLM(cfg().override(train={"tbptt": 2, "update_skip": update_skip}), ADDITION)   # 4 loops, last 2 backpropagated
    inputs = []
    model.blocks[0].register_forward_pre_hook(lambda m, a: (a[0].requires_grad and a[0].retain_grad(), inputs.append(a[0]))[1] and None)
    b = batch()
    model(b.idx, b.targets).loss.backward()
    grads = [x.grad is not None and bool(x.grad.abs().sum() > 0) for x in inputs]
    assert grads == [False, False, True, True]


@pytest.mark.parametrize("reinject,step_embedding", [("add", True), ("none", False), ("adapter", False)])
def test_loops_resumed_from_a_state_equal_the_uninterrupted_run(reinject, step_embedding):
    """n loops (loop_state), then k from that state (start=(h, n)) = n + k loops: the progressive
    loss's second pass continues the same recurrence, step embedding included."""
    torch.manual_seed(0)
    model = LoopLM(cfg(reinject=reinject, step_embedding=step_embedding), ADDITION).eval()
    idx = batch().idx
    with torch.no_grad():
        whole = model(idx, loops=5).logits
        resumed = model(idx, loops=3, start=(model.loop_state(idx, 2), 2)).logits
        fresh = model(idx, loops=3).logits
    torch.testing.assert_close(resumed, whole, rtol=1e-5, atol=1e-5)
    assert not torch.allclose(fresh, whole, atol=1e-3)      # the start state mattered


def test_update_skip_keeps_some_tokens_state_in_training_only():
    """With update_skip, a training loop leaves a share of tokens at their previous state (so the
    final state is a mix of depths); evaluation and update_skip 0 take every update."""
    torch.manual_seed(0)
    model = LoopLM(cfg().override(train={"update_skip": 0.5}), ADDITION)
    idx = batch(n=32).idx
    states = []
    model.blocks[0].register_forward_pre_hook(lambda m, a: states.append(a[0].detach()))
    model.train()
    model(idx, loops=3)
    x0 = states[0]                                  # reinject add: loop 0's input is 0 + x0
    kept = ((states[2] - states[1]).abs().amax(-1) == 0).float().mean()   # tokens that skipped loop 1
    assert 0.35 < float(kept) < 0.65
    states.clear()
    model.eval()
    model(idx, loops=3)
    assert float(((states[2] - states[1]).abs().amax(-1) == 0).float().mean()) == 0.0
    assert torch.equal(states[0], x0)


def test_gpt_cannot_run_more_loops_than_blocks():
    gpt = LoopLM(cfg(tied=False), ADDITION)
    with pytest.raises(ValueError, match="cannot run 8 loops"):
        gpt(batch().idx, loops=8)


def test_answer_isolated_answers_never_read_each_other():
    """Changing an earlier answer token changes no later answer position's logits (and the
    prompt still reaches every answer position): the mask the option promises, and the kernel
    statement says the reference runs it."""
    torch.manual_seed(0)
    c = Config().override(model={"n_embd": 32, "n_head": 4, "n_loops": 4, "prefix_bidirectional": True,
                                 "operators_top": True, "answer_isolated": True}, data={"format": "normal"})
    model = LoopLM(c, ADDITION).eval()
    b = make_batch(problems(4, 3, 3, seed=2), "normal")
    plen = int(b.prompt_len[0])
    idx2 = b.idx.clone()
    idx2[:, plen] = (idx2[:, plen] + 1) % 10                      # the first answer digit
    a, z = model(b.idx).logits, model(idx2).logits
    torch.testing.assert_close(a[:, plen + 1:], z[:, plen + 1:])
    assert not torch.allclose(a[:, plen], z[:, plen])             # its own position does change
    idx3 = b.idx.clone()
    idx3[:, 0] = (idx3[:, 0] + 1) % 10                            # the top digit of a
    assert not torch.allclose(model(idx3).logits[:, plen - 1], a[:, plen - 1])
    from looplm.system import LoopLMSystem
    assert LoopLMSystem.kernels_run(None, model, b.idx, None) == set()


def test_normal_order_options_refuse_the_reversed_format():
    with pytest.raises(ValueError, match="operators_top"):
        cfg(operators_top=True)


def test_downward_window_nothing_flows_down_in_significance():
    """With the window open downward only, changing a prompt digit changes no position whose
    significance is lower (every loop included), and it does change its own column."""
    torch.manual_seed(0)
    c = Config().override(model={"n_embd": 32, "n_head": 4, "n_loops": 6, "prefix_bidirectional": True,
                                 "operators_top": True, "downward_window": True}, data={"format": "normal"})
    model = LoopLM(c, ADDITION).eval()
    b = make_batch(problems(4, 4, 4, seed=3), "normal")     # 4-digit operands: a's top digit is significance 3
    sig = model.significance(b.idx)
    idx2 = b.idx.clone()
    idx2[:, 1] = (idx2[:, 1] + 1) % 10                      # a's digit of significance 2
    a, z = model(b.idx).logits, model(idx2).logits
    below = sig[0] < 2
    assert below.sum() > 4
    torch.testing.assert_close(a[:, below], z[:, below])
    assert not torch.allclose(a[:, sig[0] == 2], z[:, sig[0] == 2])
    from looplm.system import LoopLMSystem
    assert LoopLMSystem.kernels_run(None, model, b.idx, None) == set()
