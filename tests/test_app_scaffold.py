"""`looplm init PACKAGE`: an adapter whose every contract method says what it does not provide
yet, and a spec binding it: a first `looplm verify` runs, skipping every step by name."""
import json

from typer.testing import CliRunner

from app.cli import app
from verifier.contract import CAPABILITIES

runner = CliRunner()


def test_init_scaffolds_an_adapter_and_a_spec_that_verify_runs(tmp_path):
    r = runner.invoke(app, ["init", "json", "--out", str(tmp_path)])          # any importable package
    assert r.exit_code == 0, r.output
    adapter, spec = tmp_path / "json_system.py", tmp_path / "json.dsl"
    text = adapter.read_text()
    for capability, methods in CAPABILITIES.items():
        assert f'raise NotImplementedError("not provided: {capability}")' in text
        assert all(f"    def {m}(" in text for m in methods)
    assert runner.invoke(app, ["spec", "check", str(spec)]).exit_code == 0
    r = runner.invoke(app, ["verify", "--spec", str(spec), "--json", str(tmp_path / "r.json")])
    report = json.loads((tmp_path / "r.json").read_text())
    assert r.exit_code == 1 and "nothing was verified" in r.stdout          # no silent success
    assert all(s["status"] == "skip" for s in report["steps"])
    assert {s["missing"] for s in report["steps"]} - {None} >= {"config", "design", "model", "run"}
    assert runner.invoke(app, ["init", "json", "--out", str(tmp_path)]).exit_code == 2    # never overwrites


def test_checks_lists_every_check_with_its_params():
    r = runner.invoke(app, ["checks", "--json"])
    rows = {c["check"]: c for c in json.loads(r.stdout)}
    assert r.exit_code == 0 and "kernel.differential" in rows and "train.resume_equivalence" in rows
    assert {"name": "examples", "type": "int", "default": 8} in rows["kernel.differential"]["params"]
    assert all(c["doc"] for c in rows.values())


def test_version():
    r = runner.invoke(app, ["--version"])
    assert r.exit_code == 0 and r.stdout.startswith("looplm-spec ")
