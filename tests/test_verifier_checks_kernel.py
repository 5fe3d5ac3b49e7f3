"""Kernel inference parity counts the declared kernels each path launches against what the
system states it runs: a silent fallback fails, a model no kernel covers is a skip, not a pass."""
import dsl
from verifier import load_target, run
from verifier.checks.kernel_checks import launch_problem


def _parity(**overrides):
    report = run(load_target(dsl.BUNDLED, overrides=overrides or None), only=["inference_parity"])
    return next(s for s in report.steps if s.id == "inference_parity")


def test_the_bundled_model_launches_the_kernels_it_states_short_and_long():
    step = _parity()
    assert step.status == "pass" and "kernels ['looped_block', 'looped_tiled', 'packed_mask']" in step.message
    assert "as built: " in step.evidence and "kernels ['looped_block', 'packed_mask']" in step.evidence.split("as built: ")[1]
    assert "long rows (T = 168)" in step.evidence          # past the persistent kernel's T limit: tiled


def test_a_dispatcher_that_silently_drops_the_tiled_kernel_at_long_rows_fails(monkeypatch):
    from kernels import dispatch, looped_block
    monkeypatch.setattr(dispatch, "looped_block_supported", looped_block.supported)   # T <= 128 only
    step = _parity()
    assert step.status == "fail" and step.message.startswith("long rows") and "did not launch ['looped_tiled']" in step.message


def test_a_dispatcher_that_silently_drops_the_per_loop_kernels_fails(monkeypatch):
    from kernels import dispatch
    monkeypatch.setattr(dispatch, "per_loop_kernels", lambda name: False)
    step = _parity(position="rope")                # no looped-block kernel takes rotary attention: per loop
    assert step.status == "fail" and "did not launch" in step.message


def test_a_model_whose_heads_no_kernel_holds_runs_only_its_halting_kernel_or_skips():
    step = _parity(n_embd=32, n_head=4)           # head size 8 < 16: no attention kernel
    assert step.status == "pass" and "kernels ['halting_update']" in step.message
    step = _parity(n_embd=32, n_head=4, mode="gate")     # and a learned gate: no declared kernel
    assert step.status == "skip" and "no declared kernel runs" in step.message


def test_a_dispatcher_that_silently_takes_the_per_loop_path_fails(monkeypatch):
    import looplm.fused
    monkeypatch.setattr(looplm.fused, "fusable", lambda *a: False)  # numbers stay equal
    step = _parity()
    assert step.status == "fail" and "did not launch ['looped_block', 'packed_mask']" in step.message


def test_a_dispatcher_that_launches_a_kernel_outside_its_domain_fails_at_the_edge(monkeypatch):
    # power-of-two widths only is part of the domain; a test that forgets it accepts width 48
    from kernels import looped_block
    monkeypatch.setattr(looped_block, "supported", lambda B, T, D, H, V: T <= 128 and D <= 128 and D // H >= 16)
    step = _parity()
    assert step.status == "fail" and step.message.startswith("[n_embd=48, n_head=3]"), step.message


def test_launch_accounting():
    never, always = (lambda *a: False), (lambda *a: True)
    assert "reference path launched" in launch_problem({}, {"k": 1}, {"k": 1}, None, None, None)
    assert "launched no declared kernel" in launch_problem({}, {"k": 0}, {"k": 0}, None, None, None)
    assert launch_problem({}, {"k": 0}, {"k": 2}, None, None, None) is None
    assert "states it does not run" in launch_problem({"k": never}, {"k": 0}, {"k": 1}, None, None, None)
    assert launch_problem({"k": always}, {"k": 0}, {"k": 1}, None, None, None) is None


def test_kernel_steps_can_be_sharded_by_kernel():
    """`Target.only_kernels` (the GPU tests' shards): the differential checks just that kernel, and
    a shard naming no kernel the step uses is a skip that says so, never a pass."""
    target = load_target(dsl.BUNDLED)
    target.only_kernels = ("halting_update",)
    one = run(target, only=["kernel_differential"]).steps[0]
    target.only_kernels = None
    every = run(target, only=["kernel_differential"]).steps[0]
    assert one.status == every.status == "pass"
    assert one.measured["runs"] < every.measured["runs"]
    target.only_kernels = ("no_such_kernel",)
    none = run(target, only=["kernel_differential"]).steps[0]
    assert none.status == "skip" and "no_such_kernel" in none.message


def test_the_differential_can_be_sharded_into_declared_and_drawn_shapes():
    """`Target.differential_part` (the GPU tests' shards of the slow looped kernels): each part
    runs only its shapes, the declared shapes one by one or together, and the drawn ones add up to
    what the whole step runs; a wrong part name is an error and a shard with no shape a failure,
    never a pass."""
    target = load_target(dsl.BUNDLED)
    target.only_kernels = ("looped_tiled",)
    n_declared = len(target.kernels["looped_tiled"].spec.shapes)
    parts = [None, "declared", "drawn", *(f"declared:{i}" for i in range(n_declared))]
    runs = {}
    for part in parts:
        target.differential_part = part
        step = run(target, only=["kernel_differential"]).steps[0]
        assert step.status == "pass", (part, step.message)
        runs[part] = step.measured["runs"]
    assert n_declared > 1 and runs["declared"] == n_declared and 0 < runs["drawn"] < runs[None]
    assert runs["declared"] + runs["drawn"] == runs[None]
    assert all(runs[f"declared:{i}"] == 1 for i in range(n_declared))
    for wrong in ("both", "drawn:0", "declared:x"):
        target.differential_part = wrong
        assert run(target, only=["kernel_differential"]).steps[0].status != "pass", wrong
    target.differential_part = f"declared:{n_declared}"               # past the declared shapes
    empty = run(target, only=["kernel_differential"]).steps[0]
    assert empty.status == "fail" and "ran no shape" in empty.message


def test_a_declared_kernel_with_nothing_to_compile_fails_the_compile_step(monkeypatch):
    """kernel_compile compiles every used kernel; one whose module gives no signature must not
    pass with nothing built for it (an emptied signature list survived the mutation score)."""
    from kernels import attention
    step = lambda: next(s for s in run(load_target(dsl.BUNDLED), only=["kernel_compile"]).steps)  # noqa: E731
    assert step().status == "pass"
    monkeypatch.setattr(attention, "aot_signatures", lambda **shape: [])
    bad = step()
    assert bad.status == "fail" and "loop_attention" in bad.message and "compiled no variant" in bad.message
