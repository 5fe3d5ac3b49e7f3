"""Bench: an automatic mutation score for `looplm verify` (cosmic-ray's operators, our protocol).

    python -m bench.mutation_score [--n 320] [--workers 2] [--seed 0]
    python -m bench.mutation_score --from-progress /tmp/mscore-progress-*.json   # a stopped run

On a machine with more cores (the GPU host's 16, with a minimal install: cosmic-ray, parso,
stevedore, attrs), draw here, run there in calls of under ten minutes, score here:

    python -m bench.mutation_score --n 300 --seed 2 --plan-out plan.json
    timeout 470 python -m bench.mutation_score --mutants plan.json --workers 16 --deadline-s 300 \
        --done rows-*.json --progress-dir /tmp/prog --rows-out $OUT/rows-K.json; \
        tar czf $OUT/prog-K.tgz -C /tmp/prog .                    # repeat until every row is run
    python -m bench.mutation_score --mutants plan.json --from-progress rows-*.json --seed 2

A surviving mutant takes ~170 s there (six configs on one thread), so `--deadline-s` must leave
that much before the call's limit; the tar after `timeout` brings back the progress files of a
call that is cut anyway (16 workers' files in one archive: a device call returns at most 8 files).

cosmic-ray enumerates every mutant its core operators make of the system under test
(looplm/{model,data,train,checkpoint,evaluate}.py and kernels/*.py); a seeded sample of N,
stratified by file (each file's share of the sample is its share of all mutants), is run, each
mutant applied to a private copy of the tree and judged by the protocol of the bundled spec,
run on the default config and on five more that reach the branches the experiments use
(`CONFIGS`; `looplm verify --fail-fast` each: a kill stops at its first failing step, which is
recorded; surviving all six is surviving). Workers run in parallel, each on its own copy.

Survivors are judged by hand in bench/mutation_verdicts.toml: `equivalent` (with one line why:
the mutant computes the same thing, or changes only what no run can observe) or `missed` (with
the check that would kill it). Unjudged survivors count as missed. Writes
bench/results/mutation-score.json: every mutant's operator, file, line, outcome and, for a
killed one, the steps that failed.
"""
from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
import tomllib
import warnings
from collections import Counter, defaultdict
from pathlib import Path

from .common import RESULTS, record, table

ROOT = Path(__file__).resolve().parents[1]
TARGETS = ["looplm/model.py", "looplm/data.py", "looplm/train.py", "looplm/checkpoint.py", "looplm/evaluate.py",
           *sorted(str(p.relative_to(ROOT)) for p in (ROOT / "kernels").glob("*.py") if p.name != "__init__.py")]
COPY = ["app", "dsl", "kernels", "knowledge_base", "looplm", "rca", "verifier", "results", "bench/results",
        "examples/configs"]
# the protocol runs on the default config and on four that between them reach the branches the
# experiments use (normal order, relative bias, bidirectional prompt, step embedding, half
# supervision, wait-to-think; abacus, adapter, every loop supervised, curriculum, the learned gate;
# learned positions in an untied GPT-L, weighted supervision, random depth; RoPE, dropout; a character
# corpus instead of addition)
CONFIGS = [None, "examples/configs/coverage_normal.json", "examples/configs/coverage_abacus_gate.json",
           "examples/configs/coverage_gpt.json", "examples/configs/coverage_rope.json",
           "examples/configs/coverage_chars.json"]   # the character-corpus mode (a text file; run from the repo root)
VERDICTS = Path(__file__).with_name("mutation_verdicts.toml")


def tree_copy(dest: Path) -> Path:
    for rel in COPY:
        shutil.copytree(ROOT / rel, dest / rel, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    return dest


def enumerate_mutants(work: Path) -> list[dict]:
    """Every (file, operator, occurrence, line) cosmic-ray would mutate, via its own init."""
    from cosmic_ray.work_db import WorkDB, use_db
    cfg = work / "cr.toml"
    cfg.write_text("[cosmic-ray]\nmodule-path = " + json.dumps(TARGETS) + '\ntimeout = 600\nexcluded-modules = []\n'
                   'test-command = "true"\n[cosmic-ray.distributor]\nname = "local"\n')
    subprocess.run([sys.executable, "-m", "cosmic_ray.cli", "init", str(cfg), str(work / "s.sqlite")], cwd=work, check=True,
                   capture_output=True)
    with use_db(str(work / "s.sqlite"), WorkDB.Mode.open) as db:
        return [{"file": str(m.module_path), "operator": m.operator_name, "occurrence": m.occurrence,
                 "line": m.start_pos[0], "col": m.start_pos[1], "end": list(m.end_pos)}
                for item in db.work_items for m in item.mutations]


def key(m: dict) -> tuple:
    """A mutant's identity: file, line, operator, occurrence (a verdict's too)."""
    return m["file"], m["line"], m["operator"], m["occurrence"]


def sample(mutants: list[dict], n: int, seed: int) -> list[dict]:
    """n mutants (seeded): each file's share proportional to its share of all mutants, rounded,
    then topped up to exactly n by a uniform draw from the rest (rounding alone gave 299 of 300).
    cosmic-ray's enumeration order differs between inits, so mutants are put in key order
    first: a seed names one sample."""
    rng, by_file = random.Random(seed), defaultdict(list)
    for m in sorted(mutants, key=key):
        by_file[m["file"]].append(m)
    quota = {f: max(1, round(n * len(ms) / len(mutants))) for f, ms in by_file.items()}
    chosen = [m for f, ms in by_file.items() for m in rng.sample(ms, min(quota[f], len(ms)))]
    return sorted(chosen + top_up(mutants, chosen, n, rng), key=key)


def top_up(mutants: list[dict], chosen: list[dict], n: int, rng: random.Random) -> list[dict]:
    """n - len(chosen) more mutants, drawn uniformly (in key order) from those not chosen."""
    taken = {key(m) for m in chosen}
    rest = sorted((m for m in mutants if key(m) not in taken), key=key)
    return rng.sample(rest, max(0, n - len(chosen)))


def run_one(copy: Path, m: dict, timeout: float) -> dict:
    from cosmic_ray.mutating import mutate_and_test
    from cosmic_ray.work_item import MutationSpec
    report = copy / "report.json"
    report.unlink(missing_ok=True)
    spec = MutationSpec(Path(m["file"]), m["operator"], m["occurrence"], (m["line"], m["col"]), tuple(m["end"]))
    cmd = "sh -c '" + " && ".join(f"{sys.executable} -m app.cli verify --fail-fast --json {report}"
                                  + (f" --config {c}" if c else "") for c in CONFIGS) + "'"   # a kill needs one failing step
    t0 = time.perf_counter()
    os.chdir(copy)
    result = mutate_and_test([spec], cmd, timeout)
    test = result.test_outcome.value if result.test_outcome is not None else None
    outcome = test or ("no_mutation" if result.worker_outcome.value == "no-test" else "incompetent")
    if outcome == "killed" and (result.output or "").strip() == "timeout":
        outcome = "timeout"
    failed = [s["id"] for s in json.loads(report.read_text())["steps"] if s["status"] == "fail"] \
        if report.exists() else []
    return {**m, "outcome": outcome, "failed_steps": failed, "seconds": round(time.perf_counter() - t0, 1),
            "diff": (result.diff or "")[-1500:]}


def _worker(args) -> list[dict]:
    index, todo, timeout, deadline, progress_dir = args
    copy = tree_copy(Path(tempfile.mkdtemp(prefix=f"mscore{index}-")))
    os.environ.update(PYTHONPATH=os.pathsep.join([str(copy), *filter(None, [os.environ.get("PYTHONPATH")])]),
                      OMP_NUM_THREADS="1", CUDA_VISIBLE_DEVICES="")  # a CPU verify per core, the copy first
    out = []
    for m in todo:
        if deadline is not None and time.time() > deadline:       # a later call runs the rest (--done)
            break
        out.append(run_one(copy, m, timeout))
        print(f"[{index}] {out[-1]['file']}:{out[-1]['line']} {out[-1]['operator']} -> {out[-1]['outcome']} "
              f"{out[-1]['failed_steps'][:3]}", flush=True)
        where = Path(progress_dir or copy.parent)
        where.mkdir(parents=True, exist_ok=True)      # a missing folder would end the worker and the run
        (where / f"mscore-progress-{index}.json").write_text(json.dumps(out))
    return out


def baseline(timeout: float) -> list[str]:
    """The unmutated tree through the same command: the configs whose verify fails (none, or
    every mutant would count as killed)."""
    copy = tree_copy(Path(tempfile.mkdtemp(prefix="mscore-clean-")))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(copy), *filter(None, [os.environ.get("PYTHONPATH")])]),
           "OMP_NUM_THREADS": "1", "CUDA_VISIBLE_DEVICES": ""}
    bad = []
    for c in CONFIGS:
        cmd = [sys.executable, "-m", "app.cli", "verify", *(["--config", c] if c else [])]
        if subprocess.run(cmd, cwd=copy, env=env, capture_output=True, timeout=timeout).returncode != 0:
            bad.append(c or "default")
    shutil.rmtree(copy, ignore_errors=True)
    return bad


def verdicts() -> dict:
    data = tomllib.loads(VERDICTS.read_text()) if VERDICTS.exists() else {}
    return {key(v): v for v in data.get("survivor", [])}


def uncompilable(m: dict) -> bool:
    """Whether the mutant leaves its file unparsable (cosmic-ray also replaces the bare `*` of a
    keyword-only signature, say by `//`): such a mutant is incompetent, not killed. Re-derived
    from the file as it is here, so score rows against the tree they were cut from."""
    import cosmic_ray.plugins
    from cosmic_ray.mutating import mutate_code
    code = mutate_code((ROOT / m["file"]).read_text(), cosmic_ray.plugins.get_operator(m["operator"])(), m["occurrence"])
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")        # a mutant's `is` with a literal warns; it compiles
            compile(code or "", m["file"], "exec")
    except SyntaxError:
        return True
    return False


def score(rows: list[dict]) -> dict:
    judged = verdicts()
    for r in rows:
        if r["outcome"] == "killed" and not r["failed_steps"] and uncompilable(r):
            r["outcome"] = "incompetent"                 # never a verdict of the checks: Python refused it
        r.pop("verdict", None), r.pop("why", None)          # a re-run mutant may have been killed since
        if r["outcome"] == "survived":
            v = judged.get(key(r), {})
            r["verdict"], r["why"] = v.get("verdict", "missed"), v.get("why", "not judged yet")
    counts = Counter(r["outcome"] for r in rows)
    equivalent = sum(r.get("verdict") == "equivalent" for r in rows)
    live = [r for r in rows if r["outcome"] in ("killed", "timeout", "survived") and r.get("verdict") != "equivalent"]
    killed = sum(r["outcome"] in ("killed", "timeout") for r in live)
    return {"outcomes": dict(counts), "equivalent": equivalent, "non_equivalent": len(live), "killed": killed,
            "score": killed / max(1, len(live)), "missed": [r for r in rows if r.get("verdict") == "missed"]}


def _rows(args) -> tuple[list[dict], int, dict | None, list]:
    """(mutant rows, all mutants, partial-run note, earlier passes) for the chosen mode."""
    partial, history = None, []
    if args.from_progress:
        rows = list({key(r): r for f in args.from_progress for r in json.loads(f.read_text())}.values())
        if args.mutants:                        # the shares of a drawn sample, run elsewhere (--rows-out)
            plan = json.loads(args.mutants.read_text())
            total, missing = plan["all_mutants"], {key(m) for m in plan["mutants"]} - {key(r) for r in rows}
            rows = sorted((r for r in rows if key(r) in {key(m) for m in plan["mutants"]}), key=key)
            if missing:
                partial = {"planned_sample": len(plan["mutants"]), "ran": len(rows),
                           "note": f"{len(missing)} mutants of the drawn sample were not run"}
            return rows, total, partial, history
        with tempfile.TemporaryDirectory() as tmp:
            total = len(enumerate_mutants(tree_copy(Path(tmp))))
        partial = {"planned_sample": args.n, "ran": len(rows),
                   "note": "a stopped run: each worker ran its share in file order, so the later files are "
                           "under-represented"}
    elif args.mutants:
        plan = json.loads(args.mutants.read_text())
        done = {key(r) for f in args.done for r in json.loads(f.read_text())}
        rows, total = _run_all([m for m in plan["mutants"] if key(m) not in done], args), plan["all_mutants"]
    elif args.rescore or args.rerun_survivors:
        old = json.loads((args.rescore or args.rerun_survivors).read_text())
        rows, total = old["mutants"], old.get("all_mutants")
        # where the rows came from: each earlier pass's commit, date and command
        history = old.get("history", []) + [{k: old.get(k) for k in ("commit", "date", "command")}]
        if args.rerun_survivors:
            rows = _rerun(rows, args)
    else:
        with tempfile.TemporaryDirectory() as tmp:
            everything = enumerate_mutants(tree_copy(Path(tmp)))
        chosen = sample(everything, args.n, args.seed)
        total = len(everything)
        rows = _run_all(chosen, args)
    return rows, total, partial, history


def _run_all(todo: list[dict], args) -> list[dict]:
    deadline = time.time() + args.deadline_s if args.deadline_s else None
    parts = [(i, todo[i::args.workers], args.timeout, deadline, args.progress_dir) for i in range(args.workers)]
    ctx = mp.get_context("spawn")
    with ctx.Pool(1) as clean, ctx.Pool(args.workers) as pool:
        base = clean.apply_async(baseline, (args.timeout,))      # beside the mutants: one more process
        rows = [r for part in pool.map(_worker, parts) for r in part]
        bad = base.get()
    if bad:
        raise SystemExit(f"the unmutated tree fails verify on {bad}: no mutant outcome here means anything")
    return rows


def _rerun(rows: list[dict], args) -> list[dict]:
    """Run the survivors not judged equivalent again (an equivalent mutant computes the same: no
    check may kill it), and, where the rows hold fewer than --n mutants, as many more drawn
    uniformly from the rest (seeded); the rest keep their outcome."""
    judged = verdicts()
    again = [r for r in rows if r["outcome"] == "survived" and judged.get(key(r), {}).get("verdict") != "equivalent"]
    with tempfile.TemporaryDirectory() as tmp:      # a sample short of --n grows by a seeded uniform draw
        new = top_up(enumerate_mutants(tree_copy(Path(tmp))), rows, args.n, random.Random(args.seed))
    redone = {key(r): r for r in _run_all(again + new, args)}
    return sorted([redone.get(key(r), r) for r in rows] + [redone[key(m)] for m in new], key=key)


def plan_sample(args) -> None:
    """Draw the sample here (cosmic-ray's init needs its full install) so that a machine with
    more cores and a minimal install runs it: `--mutants PLAN [--done ROWS...] --rows-out ROWS`."""
    with tempfile.TemporaryDirectory() as tmp:
        everything = enumerate_mutants(tree_copy(Path(tmp)))
    chosen = sample(everything, args.n, args.seed)
    args.plan_out.write_text(json.dumps({"seed": args.seed, "n": args.n, "all_mutants": len(everything),
                                         "mutants": chosen}))
    print(f"wrote {len(chosen)} of {len(everything)} mutants (seed {args.seed}) to {args.plan_out}")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=320)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--timeout", type=float, default=600, help="per mutant: a hang guard, not a verdict")
    ap.add_argument("--rescore", type=Path, help="re-judge a results JSON against the verdicts file, run nothing")
    ap.add_argument("--from-progress", type=Path, nargs="+", metavar="JSON",
                    help="score the rows a stopped run left in its mscore-progress-*.json files (recorded as partial)")
    ap.add_argument("--rerun-survivors", type=Path, help="run a results JSON's survivors again (after the checks "
                                                          "changed: checks only added, so a killed mutant stays killed)")
    ap.add_argument("--plan-out", type=Path, help="only draw the sample (--n, --seed) and write it here")
    ap.add_argument("--mutants", type=Path, help="run this drawn sample (a --plan-out file) instead of drawing one")
    ap.add_argument("--done", type=Path, nargs="*", default=[], help="with --mutants: rows already run, skipped")
    ap.add_argument("--rows-out", type=Path, help="write the raw rows here and score nothing (another machine's share)")
    ap.add_argument("--deadline-s", type=float, help="start no mutant after this many seconds (the rest: --done)")
    ap.add_argument("--progress-dir", type=Path, help="where workers write mscore-progress-*.json (default: /tmp)")
    args = ap.parse_args()
    if args.plan_out:
        return plan_sample(args)
    from looplm.provenance import git_commit
    started_at = git_commit()      # the tree the mutants were cut from (a run takes an hour; HEAD may move)
    rows, total, partial, history = _rows(args)
    if args.rows_out:
        args.rows_out.write_text(json.dumps(rows))
        print(f"wrote {len(rows)} rows to {args.rows_out}")
        return
    s = score(rows)
    table("mutation score of looplm verify", ("outcome", "mutants"), sorted(s["outcomes"].items()))
    print(f"score {s['score']:.1%}: {s['killed']} of {s['non_equivalent']} non-equivalent mutants killed "
          f"({s['equivalent']} equivalent, {len(s['missed'])} missed)")
    data = {"targets": TARGETS, "all_mutants": total, "sample": len(rows), "seed": args.seed,
            "sampling": "stratified by file, proportional to each file's share of all mutants (in key order), topped up to --n by a seeded uniform draw from the rest",
            **({"partial": partial} if partial else {}), **({"history": history} if history else {}),
            **s, "mutants": rows}
    print(f"wrote {record('mutation-score', {**data, 'commit': started_at})}")


if __name__ == "__main__":
    main()
