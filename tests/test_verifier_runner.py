"""The runner: protocol order, needs-skips, hang guards, crashes as failures, skips for missing
capabilities, JUnit, selection."""
from xml.etree import ElementTree as ET

import pytest

import dsl
from looplm.system import LoopLMSystem
from verifier import Target, junit_xml, load_target, run, validate
from verifier.result import MIN_MARGIN
from verifier.runner import select


def target(text: str, system=None) -> Target:
    return Target(spec=dsl.loads(text), system=system or LoopLMSystem())


# No architecture section: config sync must fail (every config field is missing from the spec),
# and the step that needs it must be skipped, saying which step it needed.
SMALL_SPEC = """
system S {
  protocol {
    step sync { check: spec.config_sync  gates: true }
    step rules { check: spec.rules  needs: [sync]  gates: true }
    step slow { check: train.overfit_batch  timeout: 0.2  required: false }
    step data { check: data.aligned_batches }
  }
}
"""


def test_needs_skip_timeout_and_order():
    report = run(target(SMALL_SPEC))
    by = {s.id: s for s in report.steps}
    assert [s.id for s in report.steps] == ["sync", "rules", "slow", "data"]
    assert by["sync"].status == "fail" and "mismatch" in by["sync"].message
    assert by["rules"].status == "skip" and "needs sync" in by["rules"].message
    assert by["slow"].status == "fail" and "time limit of 0.2 s" in by["slow"].message and "hang guard" in by["slow"].message
    assert by["slow"].seconds < 2
    assert by["data"].status == "pass"
    assert not report.passed            # sync is required
    assert [s.id for s in report.failures()] == ["sync", "slow"]


def test_optional_failure_does_not_fail_the_report():
    report = run(target(SMALL_SPEC.replace("step sync { check: spec.config_sync  gates: true }", ""
                                           ).replace("needs: [sync]", "")))
    assert [s.status for s in report.steps] == ["pass", "fail", "pass"]
    assert report.passed


def test_bundled_protocol_passes_on_the_default_cpu_target_with_wide_margins():
    report = run(load_target(dsl.BUNDLED))
    bad = [(s.id, s.message) for s in report.steps if s.status == "fail"]
    assert report.passed and not bad, bad
    thin = {s.id: s.margin for s in report.steps if s.margin is not None and s.margin < MIN_MARGIN}
    assert not thin, f"verdicts closer than {MIN_MARGIN}x to their limits on clean code: {thin}"
    ids = {s.id for s in report.steps if s.status == "pass"}
    # every catalogued bug's step runs and passes on the CPU (format parity needs a checkpoint)
    assert {"aligned_batches", "answer_only_targets", "autograd_connectivity", "padded_vocab_mask", "nan_guard",
            "tile_index_probe", "kernel_compile", "strict_checkpoint_load", "forward_contract",
            "supervision_schedule", "eval_mode_loss", "inference_parity", "overfit_batch"} <= ids


def test_select_gating_pulls_in_needs_and_only_rejects_unknown_ids():
    spec = dsl.loads(SMALL_SPEC)
    steps = spec.system.steps
    assert [s.name for s in select(steps, None, gating=True)] == ["sync", "rules"]
    assert [s.name for s in select(steps, ["data"], gating=False)] == ["data"]
    with pytest.raises(KeyError, match="no step named nope"):
        select(steps, ["nope"], gating=False)


def test_junit_has_one_case_per_step():
    report = run(target(SMALL_SPEC), only=["sync", "data"])
    suite = ET.fromstring(junit_xml(report))
    assert suite.get("tests") == "2" and suite.get("failures") == "1"
    cases = {c.get("name"): c for c in suite.iter("testcase")}
    assert cases["sync"].find("failure") is not None and cases["data"].find("failure") is None


def located(text: str) -> dsl.SpecError:
    with pytest.raises(dsl.SpecError) as e:
        validate(dsl.loads(text))
    e.value.locate(text, "s.dsl")
    return e.value


def test_unknown_check_and_bad_params_point_at_the_step():
    e = located("system S {\n protocol {\n  step a { check: data.aligned_batchs }\n }\n}\n")
    assert e.line == 3 and "unknown check 'data.aligned_batchs'" in str(e)
    assert "data.aligned_batches" in str(e)
    e = located("system S {\n protocol {\n  step a {\n   check: data.aligned_batches\n"
                "   params: {batch_size: \"many\"}\n  }\n }\n}\n")
    assert e.line == 5 and "params.batch_size" in str(e)


def test_a_crashing_check_is_a_failure_with_its_traceback(monkeypatch):
    from verifier import registry

    def explodes(target, params):
        raise RuntimeError("boom")
    monkeypatch.setitem(registry.CHECKS, "test.explodes", registry.Check("test.explodes", registry.NoParams, explodes, ""))
    report = run(target("system S { protocol { step a { check: test.explodes }  step b { check: data.aligned_batches } } }"))
    a, b = report.steps
    assert a.status == "fail" and a.message == "check raised RuntimeError: boom" and "Traceback" in a.evidence
    assert b.status == "pass"        # one crash does not stop the protocol


class _Bare:
    """A system that provides nothing, and one method a scaffold left unfilled."""

    def design(self):
        raise NotImplementedError("not provided: design")


def test_missing_capabilities_are_skips_that_name_them_and_nothing_ran_is_no_pass():
    report = run(target(SMALL_SPEC.replace("timeout: 0.2", ""), system=_Bare()))
    assert [s.status for s in report.steps] == ["skip", "skip", "skip", "skip"]
    assert {s.missing for s in report.steps if s.missing} >= {"config", "training"}
    assert "needs capability 'config' (config_groups, param_values)" in report.steps[0].message
    assert not report.passed and "no step ran, so nothing was verified" in report.summary()
    assert report.counts()["missing"] == 3         # 'rules' skipped for 'sync', not for a capability


def test_numeric_verdicts_carry_their_margin():
    report = run(load_target(dsl.BUNDLED), only=["eval_mode_loss", "block_parity", "spec_config_sync"])
    by = {s.id: s for s in report.steps}
    assert by["spec_config_sync"].margin is None                 # an exact check: no margin
    for sid in ("eval_mode_loss", "block_parity"):
        m = next(iter(by[sid].margins.values()))
        assert by[sid].margin == m.ratio >= 10 and m.value <= m.limit


def test_verdicts_do_not_change_when_the_cpu_is_busy(tmp_path):
    """Budgets are steps and samples, not seconds: the whole protocol passes, no step failing,
    while CPU-bound processes occupy every core beside it."""
    import json
    import os
    import subprocess
    import sys
    burn = [subprocess.Popen([sys.executable, "-c", "while True: sum(i * i for i in range(10**6))"])
            for _ in range(os.cpu_count() or 2)]
    try:
        out = tmp_path / "r.json"
        proc = subprocess.run([sys.executable, "-m", "app.cli", "verify", "--json", str(out)], capture_output=True,
                              text=True, timeout=900)
    finally:
        for p in burn:
            p.kill()
    steps = json.loads(out.read_text())["steps"]
    assert proc.returncode == 0 and not [s["id"] for s in steps if s["status"] == "fail"], proc.stdout[-2000:]


def test_fail_fast_skips_everything_after_the_first_required_failure():
    report = run(target(SMALL_SPEC.replace("timeout: 0.2", "")), fail_fast=True)
    assert [s.status for s in report.steps] == ["fail", "skip", "skip", "skip"]
    assert "--fail-fast after sync failed" in report.steps[2].message and not report.passed


def test_a_refused_checkpoint_load_must_say_which_parameter(monkeypatch):
    def vague(self, model, path):
        raise RuntimeError(f"{path}: refusing a partial load")       # right to refuse, silent on why
    monkeypatch.setattr(LoopLMSystem, "load_into", vague)
    step = run(load_target(dsl.BUNDLED), only=["strict_checkpoint_load"]).steps[0]
    assert step.status == "fail" and "does not name a parameter" in step.message


def test_a_step_blocked_outside_python_ends_the_run_with_a_reason_not_a_hang():
    """The time limit's alarm runs only when Python gets control back; a step blocked in C (a
    GPU launch that never ends keeps the host spinning in a CUDA sync) would hold the run forever.
    Here the main thread blocks SIGALRM, as such a call never yields to it: the watchdog ends the
    process, exit 1, naming the step and where it sat."""
    import subprocess
    import sys
    code = ("import signal, time\nfrom verifier.runner import time_limit\n"
            "with time_limit(0.5, \"step 'stuck'\", grace=1.0):\n"
            "    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGALRM})\n"
            "    time.sleep(60)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=50)
    assert out.returncode == 1, out
    assert "step 'stuck' did not return within its time limit of 0.5 s (+1 s)" in out.stderr, out.stderr
    assert 'File "<string>", line 5 in <module>' in out.stderr, out.stderr
