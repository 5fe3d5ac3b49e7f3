"""Every subcommand against a corpus of bad inputs: the documented exit code, one short message
on stderr, never a traceback, and no output file left behind half-written.

Exit codes (app/cli/common.py): 1 a negative verdict or an invalid spec; 2 bad input.
"""
import json
import os
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

import dsl
from app.cli import app

runner = CliRunner()
ROOT = Path(__file__).resolve().parents[1]
NOT_UTF8 = b"system S {\n  objective { goal: \"caf\xe9\" } }\n"


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    """Bad files of every kind, in one folder (written once for the whole battery)."""
    d = tmp_path_factory.mktemp("bad")
    (d / "dir").mkdir()
    (d / "empty").write_bytes(b"")
    (d / "random.bin").write_bytes(os.urandom(512))
    (d / "not_utf8.json").write_bytes(b'{"model": {"n_embd": "\xff"}}')
    (d / "not_utf8.dsl").write_bytes(NOT_UTF8)
    (d / "a_file").write_text("x")
    for name, text in CONFIGS.items():
        (d / f"{name}.json").write_text(text)
    for name, text in SPECS.items():
        (d / f"{name}.dsl").write_text(text)
    for name, payload in CHECKPOINTS.items():
        torch.save(payload, d / f"{name}.pt")
    real = d / "real.pt"
    from looplm import checkpoint
    from looplm.config import Config
    from looplm.model import LoopLM
    from looplm.tokens import ADDITION
    checkpoint.save(real, LoopLM(Config().override(model={"n_embd": 16, "n_head": 2, "n_loops": 2}), ADDITION))
    (d / "truncated.pt").write_bytes(real.read_bytes()[:300])
    (d / "trace.jsonl").write_text("{not json\n")
    for name, text in EXPERIMENTS.items():
        (d / f"exp_{name}.json").write_text(text)
    (d / "nocatalog.dsl").write_text((ROOT / "examples/nanoloop/system.dsl").read_text()
                                     .replace('"system.py:', f'"{ROOT}/examples/nanoloop/system.py:'))
    return d


CONFIGS = {
    "truncated": '{"model": {"n_embd": ',
    "list": "[1, 2, 3]",
    "null": "null",
    "unknown_section": '{"modle": {"n_embd": 32}}',
    "misspelled": '{"model": {"n_emdb": 32}}',
    "wrong_type": '{"model": {"n_loops": "many"}}',
    "negative": '{"model": {"n_loops": -3}}',
    "indivisible": '{"model": {"n_embd": 30, "n_head": 4}}',
    "over_spec_range": '{"model": {"n_loops": 300}}',
    "huge": '{"model": {"n_loops": 99999999999999999999}}',
    "bad_enum": '{"model": {"position": "sinusoid"}}',
    "bad_lr": '{"train": {"lr": 0}}',
    "digits_order": '{"data": {"min_digits": 5, "max_digits": 2}}',
    "float_int": '{"train": {"batch_size": 2.5}}',
    "chars_no_text": '{"data": {"task": "chars"}}',
}
SPECS = {
    "syntax": "system S {\n  protocol { step a { check: spec.rules gates: yes } }\n}\n",
    "unknown_check": 'system S {\n  implementation: "looplm.system:LoopLMSystem"\n  protocol { step a { check: spec.rulez } }\n}\n',
    "bad_params": 'system S {\n  implementation: "looplm.system:LoopLMSystem"\n'
                  '  protocol { step a { check: data.aligned_batches params: {batches: "x"} } }\n}\n',
    "no_module": 'system S {\n  implementation: "nope_pkg.mod:F"\n  protocol { step a { check: spec.rules } }\n}\n',
    "no_attr": 'system S {\n  implementation: "looplm.system:Nope"\n  protocol { step a { check: spec.rules } }\n}\n',
    "no_impl": "system S {\n  protocol { step a { check: spec.rules } }\n}\n",
    "bad_detector": 'system S {\n  implementation: "looplm.system:LoopLMSystem"\n'
                    '  knowledge { symptom s { detector: nope meaning: "m" } }\n}\n',
    "bad_kernel_fn": 'system S {\n  implementation: "looplm.system:LoopLMSystem"\n'
                     '  kernel k { module: "kernels.halting" function: nope }\n}\n',
    "garbage": "}}}{{{ ::: ",
}
CHECKPOINTS = {"foreign": {"weights": 1}, "list": [1, 2], "tensor": torch.zeros(2),
               "bad_config": {"model": {}, "config": {"model": {"n_embd": 7}}, "data_format": "reversed",
                              "vocab": "0123456789+=$.", "pad": "."}}
EXPERIMENTS = {"invalid_json": "{", "no_name": "{}", "bad_eval": '{"name": "x", "evals": [{"name": "e", "digits": [], "n": 1}]}',
               "slash_name": '{"name": "a/b"}', "unknown_key": '{"name": "x", "evalz": []}',
               "bad_config": '{"name": "x", "config": {"model": {"n_loops": 0}}}'}


def files(d: Path, *names: str) -> list[Path]:
    return [d / n for n in names]


BAD_PATHS = ("missing.x", "dir", "empty", "random.bin")
CONFIG_CASES = [f"{n}.json" for n in CONFIGS] + ["not_utf8.json", "missing.json", "dir", "empty"]
SPEC_CASES = [f"{n}.dsl" for n in SPECS] + ["not_utf8.dsl", "missing.dsl", "dir", "empty", "random.bin"]
CKPT_CASES = [f"{n}.pt" for n in CHECKPOINTS] + ["truncated.pt", "missing.pt", "dir", "empty", "random.bin"]


def cases():
    """(id, argv with {d} for the corpus folder, exit code)."""
    out = []
    for c in CONFIG_CASES:
        code = 2
        out += [(f"verify-config-{c}", ["verify", "--config", "{d}/" + c], code),
                (f"train-config-{c}", ["train", "--config", "{d}/" + c, "--out", "{d}/out_train"], code),
                (f"gate-config-{c}", ["gate", "--config", "{d}/" + c, "--", "true"], code)]
    for s in SPEC_CASES:
        code = 2 if s in ("missing.dsl", "dir") else 1
        out += [(f"verify-spec-{s}", ["verify", "--spec", "{d}/" + s], code),
                (f"spec-check-{s}", ["spec", "check", "{d}/" + s], code),
                (f"gate-spec-{s}", ["gate", "--spec", "{d}/" + s, "--", "true"], code),
                (f"claims-spec-{s}", ["claims", "--spec", "{d}/" + s], code if s not in SEMANTIC_ONLY else None)]
    for k in CKPT_CASES:
        out += [(f"eval-ckpt-{k}", ["eval", "--ckpt", "{d}/" + k, "--digits", "1", "--n", "2"], 2),
                (f"trace-ckpt-{k}", ["trace", "--ckpt", "{d}/" + k, "--out", "{d}/out_trace"], 2),
                (f"verify-ckpt-{k}", ["verify", "--only", "strict_checkpoint_load", "--ckpt", "{d}/" + k],
                 2 if k in ("missing.pt", "dir") else 1)]
    out += ARG_CASES
    return out


# specs whose problems only verify's binding sees (claims reads prose and facts only)
SEMANTIC_ONLY = {"unknown_check.dsl", "bad_params.dsl", "no_module.dsl", "no_attr.dsl", "no_impl.dsl",
                 "bad_detector.dsl", "bad_kernel_fn.dsl"}
REAL = "{d}/real.pt"
ARG_CASES = [
    ("verify-device-cuda", ["verify", "--device", "cuda"], 2),
    ("verify-device-tpu", ["verify", "--device", "tpu"], 2),
    ("verify-only-unknown", ["verify", "--only", "nope"], 2),
    ("verify-json-into-dir", ["verify", "--only", "spec_config_sync", "--json", "{d}/dir"], 2),
    ("verify-json-under-file", ["verify", "--only", "spec_config_sync", "--json", "{d}/a_file/r.json"], 2),
    ("verify-junit-proc", ["verify", "--only", "spec_config_sync", "--junit", "/proc/self/nope/r.xml"], 2),
    ("verify-unknown-option", ["verify", "--fast"], 2),
    ("train-device-tpu", ["train", "--device", "tpu"], 2),
    ("train-device-cuda", ["train", "--device", "cuda", "--max-iters", "1", "--out", "{d}/out_cuda"], 2),
    ("train-max-iters-0", ["train", "--max-iters", "0"], 2),
    ("train-max-iters-neg", ["train", "--max-iters", "-5"], 2),
    ("train-max-iters-float", ["train", "--max-iters", "1.5"], 2),
    ("train-no-gate-no-reason", ["train", "--no-gate"], 2),
    ("train-nproc-0", ["train", "--nproc", "0"], 2),
    ("train-resume-nothing", ["train", "--resume", "--out", "{d}/never_trained"], 2),
    ("train-spec-missing", ["train", "--spec", "{d}/missing.dsl"], 2),
    ("train-max-iters-over-range", ["train", "--max-iters", "100000000000"], 2),
    ("eval-no-ckpt", ["eval"], 2),
    ("eval-digits-text", ["eval", "--ckpt", REAL, "--digits", "two"], 2),
    ("eval-digits-empty", ["eval", "--ckpt", REAL, "--digits", ""], 2),
    ("eval-digits-zero", ["eval", "--ckpt", REAL, "--digits", "0"], 2),
    ("eval-digits-negative", ["eval", "--ckpt", REAL, "--digits", "-3"], 2),
    ("eval-digits-huge", ["eval", "--ckpt", REAL, "--digits", "10000000"], 2),
    ("eval-n-zero", ["eval", "--ckpt", REAL, "--n", "0"], 2),
    ("eval-n-huge", ["eval", "--ckpt", REAL, "--n", "1000000000000"], 2),
    ("eval-loops-zero", ["eval", "--ckpt", REAL, "--loops", "0"], 2),
    ("eval-threshold-neg", ["eval", "--ckpt", REAL, "--threshold", "-1"], 2),
    ("eval-kind-bad", ["eval", "--ckpt", REAL, "--kind", "hard"], 2),
    ("eval-format-bad", ["eval", "--ckpt", REAL, "--format", "sideways"], 2),
    ("eval-format-other", ["eval", "--ckpt", REAL, "--format", "normal", "--digits", "1", "--n", "2"], 1),
    ("eval-halting-bad", ["eval", "--ckpt", REAL, "--halting", "sometimes"], 2),
    ("eval-kernels-bad", ["eval", "--ckpt", REAL, "--kernels", "fast"], 2),
    ("eval-scores-bad", ["eval", "--ckpt", REAL, "--scores", "fp8"], 2),
    ("eval-kernels-cutile-cpu", ["eval", "--ckpt", REAL, "--kernels", "cutile", "--digits", "1", "--n", "2",
                                 "--device", "cpu"], 2),
    ("eval-device-cuda", ["eval", "--ckpt", REAL, "--device", "cuda"], 2),
    ("eval-device-bad", ["eval", "--ckpt", REAL, "--device", "gpu0"], 2),
    ("eval-json-under-file", ["eval", "--ckpt", REAL, "--digits", "1", "--n", "2", "--json", "{d}/a_file/e.json"], 2),
    ("trace-problem-minus", ["trace", "--ckpt", REAL, "--problem", "12-3"], 2),
    ("trace-problem-words", ["trace", "--ckpt", REAL, "--problem", "a+b"], 2),
    ("trace-problem-three", ["trace", "--ckpt", REAL, "--problem", "1+2+3"], 2),
    ("trace-problem-empty", ["trace", "--ckpt", REAL, "--problem", ""], 2),
    ("trace-problem-negative", ["trace", "--ckpt", REAL, "--problem", "-1+2"], 2),
    ("trace-problem-huge", ["trace", "--ckpt", REAL, "--problem", "9" * 3000 + "+1"], 2),
    ("trace-loops-zero", ["trace", "--ckpt", REAL, "--loops", "0"], 2),
    ("trace-out-under-file", ["trace", "--ckpt", REAL, "--problem", "1+2", "--out", "{d}/a_file/t"], 2),
    ("diagnose-missing", ["diagnose", "{d}/missing"], 2),
    ("diagnose-empty-dir", ["diagnose", "{d}/dir"], 2),
    ("diagnose-pt", ["diagnose", REAL], 2),
    ("diagnose-random", ["diagnose", "{d}/random.bin"], 2),
    ("diagnose-corrupt-trace-only", ["diagnose", "{d}/trace.jsonl"], 2),
    ("diagnose-bad-spec", ["diagnose", "{d}/dir", "--spec", "{d}/syntax.dsl"], 1),
    ("claims-missing-spec", ["claims", "--spec", "{d}/missing.dsl"], 2),
    ("mutants-unknown", ["mutants", "--only", "nope"], 2),
    ("mutants-no-catalog", ["mutants", "--spec", "{d}/nocatalog.dsl"], 2),
    ("mutants-spec-missing", ["mutants", "--spec", "{d}/missing.dsl"], 2),
    ("mutants-json-under-file", ["mutants", "--only", "nope", "--json", "{d}/a_file/m.json"], 2),
    ("rca-add-no-title", ["rca", "add"], 2),
    ("rca-add-bad-category", ["rca", "add", "--title", "t", "--category", "weird", "--store", "{d}/r.jsonl"], 2),
    ("rca-add-bad-status", ["rca", "add", "--title", "t", "--status", "done", "--store", "{d}/r.jsonl"], 2),
    ("rca-add-bad-bug", ["rca", "add", "--title", "t", "--bug", "x", "--store", "{d}/r.jsonl"], 2),
    ("rca-add-empty-title", ["rca", "add", "--title", "", "--store", "{d}/r.jsonl"], 2),
    ("rca-add-store-dir", ["rca", "add", "--title", "t", "--store", "{d}/dir"], 2),
    ("rca-add-store-under-file", ["rca", "add", "--title", "t", "--store", "{d}/a_file/r.jsonl"], 2),
    ("rca-show-missing", ["rca", "show", "RCA-nope", "--store", "{d}/r.jsonl"], 2),
    ("rca-list-store-dir", ["rca", "list", "--store", "{d}/dir"], 2),
    ("rca-list-bad-status", ["rca", "list", "--status", "gone"], 2),
    ("rca-render-under-file", ["rca", "render", "--out", "{d}/a_file/ROOT.md", "--store", "{d}/r.jsonl"], 2),
    ("rca-render-into-dir", ["rca", "render", "--out", "{d}/dir", "--store", "{d}/r.jsonl"], 2),
    ("kernels-arch-bad", ["kernels", "compile", "--arch", "sm_75"], 2),
    ("kernels-arch-empty", ["kernels", "compile", "--arch", ","], 2),
    ("kernels-spec-missing", ["kernels", "compile", "--spec", "{d}/missing.dsl"], 2),
    ("kernels-spec-syntax", ["kernels", "compile", "--spec", "{d}/syntax.dsl"], 1),
    ("kernels-spec-bad-fn", ["kernels", "compile", "--spec", "{d}/bad_kernel_fn.dsl"], 1),
    ("experiment-missing", ["experiment", "run", "{d}/missing.json"], 2),
    ("experiment-dir", ["experiment", "run", "{d}/dir"], 2),
    ("experiment-not-utf8", ["experiment", "run", "{d}/not_utf8.json"], 2),
    ("experiment-max-iters-0", ["experiment", "run", "{d}/exp_no_name.json", "--max-iters", "0"], 2),
    ("experiment-device-bad", ["experiment", "run", "{d}/exp_no_name.json", "--device", "tpu"], 2),
    ("report-missing", ["report", "{d}/no_results"], 2),
    ("report-runs-empty", ["report", "{d}/results", "--runs", "{d}/dir"], 2),
    ("report-runs-missing", ["report", "{d}/results", "--runs", "{d}/nope"], 2),
    ("init-bad-name", ["init", "my-model!", "--out", "{d}/init"], 2),
    ("init-out-under-file", ["init", "mymodel", "--out", "{d}/a_file/x"], 2),
    ("gate-no-command", ["gate"], 2),
    ("gate-command-not-found", ["gate", "--", "/no/such/program"], 2),
    ("gate-device-option", ["gate", "--device", "cuda", "--", "true"], 2),
    ("spec-fmt-missing", ["spec", "fmt", "{d}/missing.dsl"], 2),
    ("spec-fmt-syntax", ["spec", "fmt", "--check", "{d}/syntax.dsl"], 1),
    ("spec-show-not-utf8", ["spec", "show", "{d}/not_utf8.dsl"], 1),
    ("spec-check-no-args", ["spec", "check"], 2),
    ("unknown-command", ["frobnicate"], 2),
    ("checks-unknown-option", ["checks", "--yaml"], 2),
]
ARG_CASES += [(f"experiment-{n}", ["experiment", "run", "{d}/exp_" + n + ".json"], 2) for n in EXPERIMENTS]
CASES = cases()


def test_the_battery_is_large():
    assert len(CASES) >= 150, len(CASES)


@pytest.mark.parametrize("name,argv,code", CASES, ids=[c[0] for c in CASES])
def test_bad_input(corpus, name, argv, code):
    before = _listing(corpus)
    r = runner.invoke(app, [a.replace("{d}", str(corpus)) for a in argv])
    output = r.output + (r.stderr if r.stderr_bytes is not None else "")
    assert r.exception is None or isinstance(r.exception, SystemExit), f"{name}: {r.exception!r}\n{output}"
    assert "Traceback" not in output, output
    assert code is None or r.exit_code == code, f"{name}: exit {r.exit_code}, want {code}\n{output}"
    message = r.stderr.strip() or r.stdout.strip()
    assert message, f"{name}: no message"
    if r.exit_code == 2:
        assert len(r.stderr.strip().splitlines()) <= 8, r.stderr        # short, not a dump
    leftover = [p for p in _listing(corpus) - before if ".tmp" in p or p.endswith(".json") and "out_" in p]
    assert not leftover, f"{name}: half-written outputs {leftover}"


def _listing(d: Path) -> set[str]:
    return {str(p.relative_to(d)) for p in d.rglob("*")}


def test_a_bad_score_precision_in_the_environment_is_refused_in_one_line(monkeypatch, corpus):
    """LOOPLM_SCORES is read before the eval runs, also where no looped-block kernel would read it."""
    monkeypatch.setenv("LOOPLM_SCORES", "fp8")
    r = runner.invoke(app, ["eval", "--ckpt", str(corpus / "real.pt"), "--digits", "1", "--n", "2", "--device", "cpu"])
    assert r.exit_code == 2 and "LOOPLM_SCORES: score precision must be one of auto, matrix, tf32, fp16" in r.stderr, r.output


def test_verify_device_cuda_without_a_gpu_is_one_clear_line():
    r = runner.invoke(app, ["verify", "--device", "cuda"])
    assert r.exit_code == 2 and r.stderr.strip().count("\n") == 0 and "no CUDA GPU" in r.stderr


@pytest.mark.parametrize("cmd", [["verify"], ["gate", "--", "true"], ["train", "--out", "OUT"]])
def test_a_config_outside_the_spec_range_is_refused_naming_param_value_range_and_line(corpus, cmd):
    argv = [a.replace("OUT", str(corpus / "out_range")) for a in cmd]
    r = runner.invoke(app, [*argv[:1], "--config", str(corpus / "over_spec_range.json"), *argv[1:]])
    line = next(i for i, t in enumerate(dsl.BUNDLED.read_text().splitlines(), 1) if "param n_loops" in t)
    assert r.exit_code == 2, r.output
    assert "architecture.n_loops = 300: outside 1..256" in r.stderr and f"looplm_system.dsl:{line}:" in r.stderr
    assert not (corpus / "out_range" / "ckpt.pt").exists()


def test_resuming_a_finished_run_says_so(tmp_path):
    cfg = tmp_path / "c.json"
    cfg.write_text(json.dumps({"model": {"n_embd": 32, "n_loops": 2}, "train": {"eval_interval": 2, "eval_problems": 8,
                                                                             "warmup_iters": 1}}))
    args = ["train", "--config", str(cfg), "--max-iters", "2", "--out", str(tmp_path / "run")]
    assert runner.invoke(app, args).exit_code == 0
    r = runner.invoke(app, args + ["--resume"])
    assert r.exit_code == 2 and "already finished" in r.stderr
