"""`looplm verify | gate | train` (the gate) | rca | the pytest plugin, as a user runs them."""
import json
import os
import subprocess
import sys
from pathlib import Path
from xml.etree import ElementTree as ET

from typer.testing import CliRunner

import rca
from app.cli import app

runner = CliRunner()
ROOT = Path(__file__).resolve().parents[1]


def run(*args):
    return runner.invoke(app, list(map(str, args)))


def test_verify_only_writes_json_and_junit(tmp_path):
    r = run("verify", "--only", "spec_config_sync,aligned_batches", "--json", tmp_path / "r.json",
            "--junit", tmp_path / "r.xml")
    assert r.exit_code == 0, r.output
    assert "PASSED: 2 passed, 0 failed, 0 skipped" in r.stdout
    report = json.loads((tmp_path / "r.json").read_text())
    assert report["passed"] and [s["id"] for s in report["steps"]] == ["spec_config_sync", "aligned_batches"]
    assert ET.parse(tmp_path / "r.xml").getroot().get("tests") == "2"


def test_verify_exit_codes(tmp_path, strict_spec):
    spec, cfg = strict_spec
    r = run("verify", "--spec", spec, "--config", cfg, "--only", "design_rules")
    assert r.exit_code == 1
    assert "rope_with_x0" in r.stdout and "FAILED: 0 passed, 1 failed" in r.stdout
    r = run("verify", "--only", "no_such_step")
    assert r.exit_code == 2 and "no step named no_such_step" in r.stderr
    bad = tmp_path / "bad.dsl"
    bad.write_text("system S {\n  protocol { step a { check: spec.rules gates: yes } }\n}\n")
    r = run("verify", "--spec", bad)
    assert r.exit_code == 1 and f"{bad}:2:" in r.stderr and "Traceback" not in r.output
    r = run("verify", "--spec", tmp_path / "missing.dsl")
    assert r.exit_code == 2 and "no such file" in r.stderr


def test_a_spec_binding_missing_code_fails_at_its_line(tmp_path):
    for ref, words in (("no_such_pkg.system:Factory", "no module named 'no_such_pkg'"),
                       ("looplm.system:LoopLMSytem", "did you mean 'LoopLMSystem'?"),
                       ("missing.py:System", "no file")):
        spec = tmp_path / "s.dsl"
        spec.write_text(f'system S {{\n  implementation: "{ref}"\n  protocol {{ step a {{ check: spec.rules }} }}\n}}\n')
        for cmd in (["verify", "--spec", spec], ["spec", "check", spec], ["gate", "--spec", spec, "--", "true"]):
            r = run(*cmd)
            assert r.exit_code == 1 and f"{spec}:2:" in r.stderr and words in r.stderr, (cmd, r.output)
            assert "Traceback" not in r.output


def test_train_refuses_when_a_gating_step_fails_and_drafts_an_rca_record(tmp_path, strict_spec):
    spec, cfg = strict_spec
    store = tmp_path / "rca.jsonl"
    r = run("train", "--spec", spec, "--config", cfg, "--out", tmp_path / "run", "--rca", store)
    assert r.exit_code == 1
    assert "gate FAILED: training refused" in r.stdout and "step 'design_rules'" in r.stdout
    assert not (tmp_path / "run" / "ckpt.pt").exists()
    records, corrupt = rca.store(store).records()
    assert not corrupt and len(records) == 1
    rec = records[0]
    assert rec.draft and rec.checks == ["spec.rules"] and rec.id in r.stdout
    assert "rope_with_x0" in rec.symptom and rec.fix


def test_train_bypass_needs_a_reason_and_is_recorded(tmp_path, strict_spec):
    spec, cfg = strict_spec
    store = tmp_path / "rca.jsonl"
    r = run("train", "--spec", spec, "--config", cfg, "--out", tmp_path / "run", "--no-gate")
    assert r.exit_code == 2 and "--no-gate needs --reason" in r.stderr
    r = run("train", "--spec", spec, "--config", cfg, "--out", tmp_path / "run", "--no-gate",
            "--reason", "measuring RoPE+x0 on purpose", "--rca", store)
    assert r.exit_code == 0, r.output
    assert (tmp_path / "run" / "ckpt.pt").exists()
    (rec,), _ = rca.store(store).records()
    assert rec.category == "gate_bypass" and rec.root_cause == "measuring RoPE+x0 on purpose"


def test_gate_guards_any_command(tmp_path, strict_spec):
    spec, cfg = strict_spec
    marker = tmp_path / "ran"
    cmd = [sys.executable, "-c", f"open({str(marker)!r}, 'w'); raise SystemExit(3)"]
    r = run("gate", "--spec", spec, "--config", cfg, "--rca", tmp_path / "rca.jsonl", "--", *cmd)
    assert r.exit_code == 1 and not marker.exists()
    r = run("gate", "--rca", tmp_path / "rca.jsonl", "--", *cmd)      # bundled spec, default config
    assert r.exit_code == 3 and marker.exists()                          # the command's own exit code


STUCK_SPEC = """system S {
  implementation: "looplm.system:LoopLMSystem"
  protocol {
    step data { check: data.aligned_batches  gates: true }
    step stuck { check: test.stuck  timeout: 0.5  gates: true }
    step after { check: data.aligned_batches  gates: true }
  }
}
"""
STUCK_CLI = """import signal, sys, time
from verifier import runner
from verifier.registry import check
runner.HANG_GRACE_S = 0.5


@check("test.stuck")
def stuck(target, params):
    # as a GPU launch that never ends: the host never returns to Python, so the alarm never runs
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGALRM})
    time.sleep(60)


from app.cli import main
sys.argv = ["looplm", *sys.argv[1:]]
main()
"""


def test_a_step_blocked_outside_python_still_leaves_its_report_and_rca_draft(tmp_path):
    """The watchdog ends a run whose step never returns to Python (runner.time_limit); the steps
    before it are not lost: verify shows and saves the report so far (the blocked step failed, the
    rest skipped), and the gate drafts its RCA record and never runs the command."""
    (tmp_path / "s.looplm").write_text(STUCK_SPEC)
    (tmp_path / "cli.py").write_text(STUCK_CLI)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}

    def cli(*args):
        return subprocess.run([sys.executable, "cli.py", *args], cwd=tmp_path, env=env, capture_output=True,
                              text=True, timeout=120)
    r = cli("verify", "--spec", "s.looplm", "--json", "r.json", "--junit", "r.xml")
    assert r.returncode == 1 and "step 'stuck' did not return within its time limit" in r.stderr, r
    report = json.loads((tmp_path / "r.json").read_text())
    assert not report["passed"] and [(s["id"], s["status"]) for s in report["steps"]] == \
        [("data", "pass"), ("stuck", "fail"), ("after", "skip")], report["steps"]
    assert "blocked outside Python" in report["steps"][1]["message"] and "FAILED: 1 passed, 1 failed" in r.stdout
    assert ET.parse(tmp_path / "r.xml").getroot().get("failures") == "1"
    r = cli("gate", "--spec", "s.looplm", "--rca", "rca.jsonl", "--", sys.executable, "-c", "open('ran', 'w')")
    assert r.returncode == 1 and not (tmp_path / "ran").exists(), r
    (rec,), corrupt = rca.store(tmp_path / "rca.jsonl").records()
    assert not corrupt and rec.title == "gate failure: stuck" and rec.draft and f"RCA draft: {rec.id}" in r.stderr


def test_rca_add_list_show_render_and_corrupt_lines(tmp_path):
    store = tmp_path / "r.jsonl"
    r = run("rca", "add", "--title", "skip-4 tile index", "--category", "kernel", "--bug", 7,
            "--check", "kernel.tile_index_probe", "--status", "fixed", "--store", store)
    assert r.exit_code == 0, r.output
    rid = r.stdout.split()[-1]
    with store.open("a") as f:
        f.write('{"id": "RCA-torn", "title": "half a reco\n')
    r = run("rca", "list", "--store", store)
    assert r.exit_code == 0 and rid in r.stdout
    assert f"{store}:2: corrupt record" in r.stderr
    r = run("rca", "show", rid, "--store", store)
    assert json.loads(r.stdout)["bugs"] == [7]
    r = run("rca", "render", "--out", tmp_path / "ROOT.md", "--store", store)
    assert r.exit_code == 1                      # the corrupt line is reported, not dropped
    text = (tmp_path / "ROOT.md").read_text()
    assert "kernel" in text.lower() and "skip-4 tile index" in text
    r = run("rca", "add", "--title", "x", "--category", "nonsense", "--store", store)
    assert r.exit_code == 2 and "Traceback" not in r.output


def test_pytest_plugin_collects_protocol_steps(tmp_path, strict_spec):
    spec, cfg = strict_spec
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    base = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--rootdir", str(tmp_path),
            "--looplm-spec", str(spec), "-k", "spec_config_sync or design_rules or aligned_batches"]
    good = subprocess.run(base, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert good.returncode == 0 and "3 passed" in good.stdout, good.stdout[-2000:]
    bad = subprocess.run(base + ["--looplm-config", str(cfg)], cwd=tmp_path, env=env, capture_output=True,
                         text=True, timeout=300)
    assert bad.returncode == 1, bad.stdout[-2000:]
    assert "1 failed, 2 passed" in bad.stdout and "rope_with_x0" in bad.stdout
    assert "fix: change the architecture" in bad.stdout


def test_pytest_plugin_collects_only_the_steps_and_reports_spec_errors_cleanly(tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    base = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--collect-only"]
    import dsl
    r = subprocess.run(base + ["--looplm-spec", str(dsl.BUNDLED)], cwd=dsl.BUNDLED.parents[2], env=env,
                       capture_output=True, text=True, timeout=300)
    steps = [s.name for s in dsl.load(dsl.BUNDLED).system.steps]
    listed = [line.rsplit("::", 1)[-1] for line in r.stdout.splitlines() if "::" in line]
    assert r.returncode == 0 and listed == steps, r.stdout[-2000:]
    assert f"{len(steps)} tests collected" in r.stdout
    bad = tmp_path / "bad.dsl"
    bad.write_text("system S {\n  protocol { step a { check: nope.nope } }\n}\n")
    r = subprocess.run(base + ["--looplm-spec", str(bad)], cwd=tmp_path, env=env, capture_output=True, text=True,
                       timeout=300)
    assert r.returncode == 4 and f"{bad}:2:" in r.stderr and "INTERNALERROR" not in r.stdout + r.stderr
    assert len((r.stdout + r.stderr).strip().splitlines()) <= 8


def test_a_spec_and_its_package_outside_the_repository(tmp_path, monkeypatch):
    """The example system copied elsewhere, verified from a third folder: the implementation
    resolves relative to the spec file, not to the current directory or this checkout."""
    import shutil
    from pathlib import Path
    src = Path(__file__).resolve().parents[1] / "examples" / "nanoloop"
    dest = tmp_path / "elsewhere" / "nanoloop"
    shutil.copytree(src, dest, ignore=shutil.ignore_patterns("__pycache__"))
    (tmp_path / "cwd").mkdir()
    monkeypatch.chdir(tmp_path / "cwd")
    r = run("verify", "--spec", dest / "system.dsl", "--only", "spec_config_sync,forward_contract,aligned_batches",
            "--json", tmp_path / "r.json")
    assert r.exit_code == 0, r.output
    report = json.loads((tmp_path / "r.json").read_text())
    assert report["system_file"].startswith(str(dest)) and report["passed"]
