"""`looplm report`: experiment runs -> committed results (JSON), figures (PNG) and REPORT.md.

    collect(runs/, results/)   read runs/*/results.json, write results/*.json and the headline
                               checkpoint in bf16 (results/checkpoints/<name>.pt)
    write_report(results/)     figures + REPORT.md from the results JSON alone
"""
from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

HEADLINE = "looplm_reversed_all_loops"   # the committed checkpoint: >= 99% at 100 and 1000 digits
ABLATION_BASE = "looplm_reversed"   # every ablate_* experiment changes one field of this run
BASELINES = ("gpt12_reversed_windowed", "gpt12_reversed_learned")


def _load(path: Path) -> Any:
    return json.loads(path.read_text())


def _merge(*reports: dict) -> dict:
    out = {"accuracy_by_digits": {}, "n_per_bucket": {}}
    for r in reports:
        if r:
            out["accuracy_by_digits"].update(r["accuracy_by_digits"])
            out["n_per_bucket"].update(r["n_per_bucket"])
    key = lambda d: int(d[0])  # noqa: E731
    return {k: dict(sorted(v.items(), key=key)) for k, v in out.items()}


def _corr(xs: list[float], ys: list[float]) -> float | None:
    if len(xs) < 3:
        return None
    mx, my = sum(xs) / len(xs), sum(ys) / len(ys)
    sx = math.sqrt(sum((x - mx) ** 2 for x in xs))
    sy = math.sqrt(sum((y - my) ** 2 for y in ys))
    return None if sx == 0 or sy == 0 else sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / (sx * sy)


def collect(runs: Path, results: Path) -> dict[str, Path]:
    import torch

    from . import checkpoint
    results.mkdir(parents=True, exist_ok=True)
    runs_data = {p.parent.name: _load(p) for p in sorted(runs.glob("*/results.json"))}
    if not runs_data:
        raise FileNotFoundError(2, "no runs/*/results.json", str(runs))
    written: dict[str, Path] = {}
    length, normal, loops, halting, ablations = {}, {}, {}, {}, []
    for name, r in runs_data.items():
        ev, fmt = r["evals"], r["config"]["data"]["format"]
        ckpt = f"results/checkpoints/{name}.pt" if name == HEADLINE else r["checkpoint"]
        if fmt == "reversed":
            merged = _merge(ev.get("random"), ev.get("long"))
            length[name] = {"order": fmt, **merged, "checkpoint": ckpt, "params": r["train"]["params"],
                            "train_seconds": r["train"]["time_s"], "train_steps": r["train"]["steps"]}
            if "unequal" in ev:
                length[name]["unequal"] = _merge(ev["unequal"])
            if "random" in ev:
                length[name]["accuracy_by_carries"] = ev["random"]["accuracy_by_carries"]
                length[name]["n_per_carries"] = ev["random"]["n_per_carries"]
        else:
            normal[name] = {"order": fmt, "description": r["description"], "checkpoint": ckpt,
                            **{k: {"accuracy_by_digits": v["accuracy_by_digits"], "n_per_bucket": v["n_per_bucket"],
                                   "loops": v.get("loops_by_digits", v.get("loops")),
                                   "kind": v.get("kind")} for k, v in ev.items() if isinstance(v, dict)}}
            length[name] = {"order": fmt, **_merge(ev.get("random")), "checkpoint": ckpt,
                            "params": r["train"]["params"], "train_seconds": r["train"]["time_s"],
                            "train_steps": r["train"]["steps"], "loops": ev.get("random", {}).get("loops_by_digits")}
        for key in ("loops",):
            if isinstance(ev.get(key), list):
                loops[name] = {"depth": r["config"]["train"]["depth"],
                               "curve": [{"loops": x["loops"], "accuracy_by_digits": x["accuracy_by_digits"]} for x in ev[key]]}
        for key in ("halting", "wait"):
            if isinstance(ev.get(key), list):
                rows = []
                for x in ev[key]:
                    by_d = x["avg_steps_answer_by_digits"]
                    ds = sorted(by_d, key=int)
                    rows.append({"threshold": x["threshold"], "mode": x["halting"]["mode"],
                                 "accuracy_by_digits": x["accuracy_by_digits"], "avg_steps_answer": x["avg_steps_answer"],
                                 "avg_steps_prompt": x["avg_steps_prompt"], "avg_steps_answer_by_digits": by_d,
                                 "applications_saved": x["applications_saved"], "loops": x["loops"],
                                 "corr_steps_digits": _corr([float(d) for d in ds], [by_d[d] for d in ds])})
                halting[f"{name}:{key}"] = rows
        if name.startswith("ablate_") or name == ABLATION_BASE:
            ablations.append({"name": name, "description": r["description"],
                              "accuracy_by_digits": r["evals"].get("random", {}).get("accuracy_by_digits", {}),
                              "params": r["train"]["params"], "model": r["config"]["model"]})
    for fname, data in (("length_generalization", {"models": length}), ("normal_order", normal),
                        ("test_time_loops", loops), ("adaptive_halting", halting), ("ablations", ablations)):
        path = results / f"{fname}.json"
        path.write_text(json.dumps(data, indent=1) + "\n")
        written[fname] = path
    if HEADLINE in runs_data:
        src = Path(runs_data[HEADLINE]["checkpoint"])          # already bf16: the weights evaluated
        dst = results / "checkpoints" / f"{HEADLINE}.pt"
        ld = checkpoint.load(src)
        checkpoint.save(dst, ld.model, step=ld.meta["step"] or 0, dtype=torch.bfloat16,
                        extra={"from": str(src), "git_commit_trained": ld.meta["git_commit"]})
        written["checkpoint"] = dst
    return written


# ---- figures and REPORT.md -----------------------------------------------------------------
def _plt():
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    return plt


def _finish(plt, fig, ax, path: Path, xlabel: str, ylabel: str, title: str, legend_size: int) -> Path:
    """Label, lay out, save at 120 dpi and close one figure."""
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.legend(fontsize=legend_size)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def figures(results: Path) -> list[Path]:
    plt = _plt()
    out = []
    lg = _load(results / "length_generalization.json")["models"]
    fig, ax = plt.subplots(figsize=(7, 4))
    for name, m in lg.items():
        if name.startswith("ablate_"):
            continue
        ds = sorted(m["accuracy_by_digits"], key=int)
        ax.plot([int(d) for d in ds], [100 * m["accuracy_by_digits"][d] for d in ds], "o-", label=name, ms=3)
    ax.axvspan(1, 4, color="grey", alpha=0.15, label="trained (1-4 digits)")
    ax.set_xscale("log")
    out.append(_finish(plt, fig, ax, results / "length_generalization.png", "digits per operand", "exact match (%)",
                       "length generalization", 7))
    ttl = _load(results / "test_time_loops.json")
    if ttl:
        fig, ax = plt.subplots(figsize=(7, 4))
        for name, m in ttl.items():
            for d in sorted(m["curve"][0]["accuracy_by_digits"], key=int):
                ax.plot([c["loops"] for c in m["curve"]], [100 * c["accuracy_by_digits"][d] for c in m["curve"]],
                        "o-", ms=3, label=f"{name} ({m['depth']} depth), {d} digits")
        ax.set_xscale("log", base=2)
        out.append(_finish(plt, fig, ax, results / "test_time_loops.png", "loops at inference", "exact match (%)",
                           "test-time loops", 6))
    ah = _load(results / "adaptive_halting.json")
    if ah:
        fig, ax = plt.subplots(figsize=(7, 4))
        for name, rows in ah.items():
            ax.plot([r["avg_steps_answer"] for r in rows],
                    [100 * sum(r["accuracy_by_digits"].values()) / len(r["accuracy_by_digits"]) for r in rows],
                    "o-", ms=3, label=name)
        out.append(_finish(plt, fig, ax, results / "adaptive_halting.png", "average loops per answer token",
                           "mean exact match over lengths (%)", "adaptive halting: accuracy vs compute", 7))
    return out


def thinking_trace_figure(results: Path, problem=(4821937, 5178063)) -> Path | None:
    """Heatmap of the headline checkpoint thinking through one carry-heavy problem."""
    ckpt = results / "checkpoints" / f"{HEADLINE}.pt"
    if not ckpt.exists():
        return None
    from . import checkpoint
    from .config import HaltingConfig
    from .data import Problem
    from .trace import heatmap, thinking_trace
    model = checkpoint.load(ckpt).model
    tr = thinking_trace(model, Problem(*problem), halting=HaltingConfig(mode="entropy", threshold=0.05))
    (results / "thinking_trace.json").write_text(json.dumps(tr, indent=1) + "\n")
    return heatmap(tr, results / "thinking_trace.png")


def _pct(x: float | None) -> str:
    return "-" if x is None else f"{100 * x:.1f}"


def length_table(results: Path, digits: tuple[int, ...] = (4, 5, 8, 12, 16, 32, 64, 100, 200, 500, 1000)) -> str:
    """The markdown table of exact match by length (also embedded in the README; a test checks it)."""
    lg = _load(results / "length_generalization.json")["models"]
    head = "| model | order | params | " + " | ".join(str(d) for d in digits) + " |"
    sep = "|---|---|---|" + "---|" * len(digits)
    rows = []
    for name, m in lg.items():
        if name.startswith("ablate_"):
            continue
        acc = m["accuracy_by_digits"]
        rows.append(f"| {name} | {m['order']} | {m['params']:,} | " +
                    " | ".join(_pct(acc.get(str(d))) for d in digits) + " |")
    return "\n".join([head, sep, *rows])


def write_report(results: Path) -> Path:
    figures(results)
    thinking_trace_figure(results)
    lines = ["# LoopLM results", "", "Exact match (%) on held-out problems, both operands of the given length;",
             "every model trained on 1-4 digit operands only. Produced by `looplm report results/`",
             "from runs made with `looplm experiment run experiments/*.json` on an NVIDIA H100.", "",
             "## Length generalization", "", length_table(results), "",
             "![length generalization](length_generalization.png)", ""]
    lg = _load(results / "length_generalization.json")["models"]
    for name, m in lg.items():
        if "unequal" in m:
            lines += [f"Unequal operand lengths ({name}): " + ", ".join(
                f"{d}: {_pct(a)}%" for d, a in m["unequal"]["accuracy_by_digits"].items()), ""]
    normal = _load(results / "normal_order.json")
    if normal:
        lines += ["## Normal order (most significant digit first)", "",
                  "| model | eval | loops | " + " | ".join(["4", "5", "8", "12", "16", "24", "32"]) + " |",
                  "|---|---|---|" + "---|" * 7]
        for name, m in normal.items():
            for ev in ("fixed_loops", "random", "carry_chain", "decoy", "unequal"):
                if ev in m:
                    acc = m[ev]["accuracy_by_digits"]
                    loops = m[ev]["loops"]
                    loops = "train L" if loops is None else ("digits+8" if isinstance(loops, dict) else loops)
                    lines.append(f"| {name} | {ev} | {loops} | " + " | ".join(_pct(acc.get(d)) for d in
                                                                            ["4", "5", "8", "12", "16", "24", "32"]) + " |")
        lines.append("")
    ttl = _load(results / "test_time_loops.json")
    if ttl:
        lines += ["## Test-time loops", "", "![test-time loops](test_time_loops.png)", ""]
        for name, m in ttl.items():
            for d in sorted(m["curve"][0]["accuracy_by_digits"], key=int):
                lines.append(f"- {name} ({m['depth']} depth), {d} digits: " + ", ".join(
                    f"L={c['loops']}: {_pct(c['accuracy_by_digits'][d])}%" for c in m["curve"]))
        lines.append("")
    ah = _load(results / "adaptive_halting.json")
    if ah:
        lines += ["## Adaptive halting", "", "![adaptive halting](adaptive_halting.png)", "",
                  "| run | mode | threshold | mean loops (answer) | mean loops (prompt) | applications saved | corr(loops, digits) | accuracy by digits |",
                  "|---|---|---|---|---|---|---|---|"]
        for name, rows in ah.items():
            for r in rows:
                corr = "-" if r["corr_steps_digits"] is None else f"{r['corr_steps_digits']:.2f}"
                acc = ", ".join(f"{d}: {_pct(a)}" for d, a in r["accuracy_by_digits"].items())
                lines.append(f"| {name} | {r['mode']} | {r['threshold']} | {r['avg_steps_answer']:.2f} | "
                             f"{r['avg_steps_prompt']:.2f} | {_pct(r['applications_saved'])}% | {corr} | {acc} |")
        lines.append("")
    abl = _load(results / "ablations.json")
    if abl:
        ds = ["4", "5", "8", "12", "16", "32", "64", "100"]
        lines += [f"## Ablations (reversed order; one change each from {ABLATION_BASE})", "",
                  "| run | change | params | " + " | ".join(ds) + " |", "|---|---|---|" + "---|" * len(ds)]
        for a in abl:
            lines.append(f"| {a['name']} | {a['description']} | {a['params']:,} | " +
                         " | ".join(_pct(a["accuracy_by_digits"].get(d)) for d in ds) + " |")
        lines.append("")
    if (results / "thinking_trace.png").exists():
        lines += ["## Thinking trace", "", "Entropy of each token's prediction after every loop (entropy halting, "
                  "threshold 0.05), headline checkpoint:", "", "![thinking trace](thinking_trace.png)", ""]
    path = results / "REPORT.md"
    path.write_text("\n".join(lines).rstrip() + "\n")
    return path
