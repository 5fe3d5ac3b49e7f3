"""`looplm train | eval | trace` through CliRunner: outputs, files, exit codes, no tracebacks."""
import json

from typer.testing import CliRunner

from app.cli import app

runner = CliRunner()


def run(*args):
    r = runner.invoke(app, [str(a) for a in args])
    assert "Traceback" not in r.output
    return r


def test_train_writes_checkpoint_and_trace(tmp_path):
    cfg = tmp_path / "c.json"
    cfg.write_text(json.dumps({"model": {"n_embd": 32, "n_loops": 2}, "train": {"eval_interval": 5, "eval_problems": 8}}))
    r = run("train", "--config", cfg, "--max-iters", 10, "--out", tmp_path / "run")
    assert r.exit_code == 0, r.output
    assert (tmp_path / "run" / "ckpt.pt").exists() and (tmp_path / "run" / "trace.jsonl").exists()


def test_train_bad_config_is_usage_error(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text('{"model": {"n_embd": 7}}')
    assert run("train", "--config", bad).exit_code == 2
    bad.write_text('{"model": ')
    r = run("train", "--config", bad)
    assert r.exit_code == 2 and "invalid JSON" in r.stderr
    assert run("train", "--config", tmp_path / "missing.json").exit_code == 2


def test_eval_json_interface(tiny_run, tmp_path):
    ckpt = tiny_run[1] / "ckpt.pt"
    r = run("eval", "--ckpt", ckpt, "--digits", "1,2", "--n", 40, "--json", tmp_path / "e.json")
    assert r.exit_code == 0, r.output
    report = json.loads((tmp_path / "e.json").read_text())
    for key in ("accuracy_by_digits", "accuracy_by_carries", "avg_steps_answer", "avg_steps_prompt",
                "n_per_bucket", "config", "data_format"):
        assert key in report
    assert all(0 <= v <= 1 for v in report["accuracy_by_digits"].values())


def test_eval_refuses_other_format_and_bad_args(tiny_run, tmp_path):
    ckpt = tiny_run[1] / "ckpt.pt"
    r = run("eval", "--ckpt", ckpt, "--digits", "2", "--n", 5, "--format", "normal")
    assert r.exit_code == 1 and "refusing" in r.stderr
    assert run("eval", "--ckpt", ckpt, "--digits", "two").exit_code == 2
    assert run("eval", "--ckpt", tmp_path / "none.pt").exit_code == 2
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"junk")
    r = run("eval", "--ckpt", junk)
    assert r.exit_code == 2 and "not a readable checkpoint" in r.stderr


def test_trace_writes_json_and_png(tiny_run, tmp_path):
    r = run("trace", "--ckpt", tiny_run[1] / "ckpt.pt", "--problem", "47+38", "--threshold", 0.1, "--out", tmp_path)
    assert r.exit_code == 0, r.output
    tr = json.loads((tmp_path / "trace.json").read_text())
    assert len(tr["entropy"]) == 4 and len(tr["entropy"][0]) == len(tr["tokens"]) == len(tr["halt_step"])
    assert (tmp_path / "trace.png").read_bytes()[:4] == b"\x89PNG"
    assert run("trace", "--ckpt", tiny_run[1] / "ckpt.pt", "--problem", "12-3").exit_code == 2
