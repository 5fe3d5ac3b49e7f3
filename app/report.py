"""`looplm report`: experiment runs -> committed results (JSON), figures (PNG) and REPORT.md.

    collect(runs/, results/)   read runs/*/results.json, write results/*.json and the headline
                               checkpoint in bf16 (results/checkpoints/<name>.pt)
    write_report(results/)     figures + REPORT.md from the results JSON alone

What a run is for comes from its experiment file, never from its name: `headline: true` marks
the run whose checkpoint is committed, `ablation_of: NAME` a run that changes one field of NAME,
`seed_of: NAME` a run that repeats NAME's recipe with another seed. Collecting adds runs to the
results already committed (a run of the same name replaces its entry); it never drops others.
"""
from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

DIGITS = (4, 5, 8, 12, 16, 32, 64, 100, 200, 500, 1000)


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


def _role(r: dict) -> dict:
    return r.get("experiment", {})


def _length_entry(name: str, r: dict, ckpt: str) -> dict:
    ev, fmt = r["evals"], r["config"]["data"]["format"]
    entry = {"order": fmt, **_merge(ev.get("random"), ev.get("long") if fmt == "reversed" else None),
             "checkpoint": ckpt, "params": r["train"]["params"], "train_seconds": r["train"]["time_s"],
             "train_steps": r["train"]["steps"], "device": r["train"].get("device_name", r["train"].get("device")),
             "ablation_of": _role(r).get("ablation_of"), "seed_of": _role(r).get("seed_of")}
    if fmt != "reversed":
        entry["loops"] = ev.get("random", {}).get("loops_by_digits")
    if "unequal" in ev and fmt == "reversed":
        entry["unequal"] = _merge(ev["unequal"])
    if "random" in ev and fmt == "reversed":
        entry.update(accuracy_by_carries=ev["random"]["accuracy_by_carries"], n_per_carries=ev["random"]["n_per_carries"])
    return entry


def _halting_rows(reports: list[dict]) -> list[dict]:
    rows = []
    for x in reports:
        by_d = x["avg_steps_answer_by_digits"]
        ds = sorted(by_d, key=int)
        rows.append({"threshold": x["threshold"], "mode": x["halting"]["mode"],
                     "accuracy_by_digits": x["accuracy_by_digits"], "avg_steps_answer": x["avg_steps_answer"],
                     "avg_steps_prompt": x["avg_steps_prompt"], "avg_steps_answer_by_digits": by_d,
                     "applications_saved": x["applications_saved"], "loops": x["loops"],
                     "corr_steps_digits": _corr([float(d) for d in ds], [by_d[d] for d in ds])})
    return rows


def _tables(runs_data: dict[str, dict]) -> dict[str, Any]:
    """The results JSON files' contents, from every run's results.json."""
    length, normal, loops, halting, ablations, seeds = {}, {}, {}, {}, [], {}
    bases = {_role(r).get("ablation_of") for r in runs_data.values()} - {None}
    for name, r in runs_data.items():
        ev = r["evals"]
        ckpt = f"results/checkpoints/{name}.pt" if _role(r).get("headline") else r["checkpoint"]
        length[name] = _length_entry(name, r, ckpt)
        if r["config"]["data"]["format"] != "reversed":
            normal[name] = {"order": "normal", "description": r["description"], "checkpoint": ckpt,
                            **{k: {"accuracy_by_digits": v["accuracy_by_digits"], "n_per_bucket": v["n_per_bucket"],
                                   "loops": v.get("loops_by_digits", v.get("loops")), "kind": v.get("kind")}
                               for k, v in ev.items() if isinstance(v, dict)}}
        for key, curve in ev.items():        # "loops", or several curves: "loops_12", "loops_32_chain"
            if key.startswith("loops") and isinstance(curve, list) and curve:
                loops[name if key == "loops" else f"{name}:{key}"] = {
                    "depth": r["config"]["train"]["depth"],
                    "curve": [{"loops": x["loops"], "accuracy_by_digits": x["accuracy_by_digits"]} for x in curve]}
        for key in ("halting", "wait"):
            if isinstance(ev.get(key), list):
                halting[f"{name}:{key}"] = _halting_rows(ev[key])
        if _role(r).get("seed_of"):
            seeds.setdefault(_role(r)["seed_of"], {})[name] = {
                "seed": r["config"]["train"]["seed"], "train_steps": r["train"]["steps"],
                "device": r["train"].get("device_name", r["train"].get("device")),
                "evals": {k: {"accuracy_by_digits": v["accuracy_by_digits"], "n_per_bucket": v["n_per_bucket"]}
                          for k, v in ev.items() if isinstance(v, dict)}}
        if _role(r).get("ablation_of") or name in bases:
            ablations.append({"name": name, "description": r["description"],
                              "accuracy_by_digits": ev.get("random", {}).get("accuracy_by_digits", {}),
                              "params": r["train"]["params"], "model": r["config"]["model"],
                              "ablation_of": _role(r).get("ablation_of")})
    return {"length_generalization": {"models": length}, "normal_order": normal, "test_time_loops": loops,
            "adaptive_halting": halting, "ablations": ablations, "seeds": seeds}


def _added(table: str, old: Any, new: Any) -> Any:
    """`new` added to what results/TABLE.json already holds: a run of the same name replaces its
    entry, every other entry stays."""
    if table == "ablations":                        # a list of named entries
        names = {a["name"] for a in new}
        return [a for a in old if a["name"] not in names] + new
    if table == "length_generalization":
        return {**old, "models": {**old["models"], **new["models"]}}
    if table == "seeds":                            # base run -> {run: entry}
        return {**old, **{base: {**old.get(base, {}), **runs} for base, runs in new.items()}}
    return {**old, **new}                           # run name -> entry


def collect(runs: Path, results: Path) -> dict[str, Path]:
    import torch
    from looplm import checkpoint
    runs_data = {p.parent.name: _load(p) for p in sorted(runs.glob("*/results.json"))}
    if not runs_data:
        raise FileNotFoundError(2, "no runs/*/results.json", str(runs))
    results.mkdir(parents=True, exist_ok=True)
    written: dict[str, Path] = {}
    for fname, data in _tables(runs_data).items():
        written[fname] = results / f"{fname}.json"
        if written[fname].exists():
            data = _added(fname, _load(written[fname]), data)
        written[fname].write_text(json.dumps(data, indent=1) + "\n")
    for name, r in runs_data.items():
        if _role(r).get("headline"):
            src = Path(r["checkpoint"])                     # already bf16: the weights evaluated
            ld = checkpoint.load(src)
            written["checkpoint"] = checkpoint.save(results / "checkpoints" / f"{name}.pt", ld.model,
                                                    step=ld.meta["step"] or 0, dtype=torch.bfloat16,
                                                    extra={"from": str(src), "git_commit_trained": ld.meta["git_commit"]})
    return written


# ---- figures and REPORT.md -----------------------------------------------------------------
def _plt():
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    return plt


def _styles(n: int):
    """n distinct (colour, marker, line style): tab20's colours, then other markers and dashes."""
    import matplotlib
    colours = matplotlib.colormaps["tab20"].colors
    markers, dashes = "os^vDP", ("-", "--", ":")
    return [(colours[i % 20], markers[(i // 20) % len(markers)], dashes[(i // 20) % len(dashes)]) for i in range(n)]


def _finish(plt, fig, ax, path: Path, xlabel: str, ylabel: str, title: str, n: int) -> Path:
    """Label, lay out, save at 120 dpi and close one figure (the legend outside, for many lines)."""
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.legend(fontsize=7 if n <= 8 else 6, loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)
    fig.tight_layout()
    fig.savefig(path, dpi=120, bbox_inches="tight")
    plt.close(fig)
    return path


def _lines(ax, series: list[tuple[str, list, list]]) -> None:
    for (label, xs, ys), (colour, marker, dash) in zip(series, _styles(len(series))):
        ax.plot(xs, ys, linestyle=dash, marker=marker, color=colour, ms=3, label=label)


def _length_figure(plt, results: Path) -> Path:
    lg = _load(results / "length_generalization.json")["models"]
    series = [(name, [int(d) for d in sorted(m["accuracy_by_digits"], key=int)],
               [100 * m["accuracy_by_digits"][d] for d in sorted(m["accuracy_by_digits"], key=int)])
              for name, m in lg.items() if not (m.get("ablation_of") or m.get("seed_of"))]
    fig, ax = plt.subplots(figsize=(8, 4))
    _lines(ax, series)
    ax.axvspan(1, 4, color="grey", alpha=0.15, label="trained (1-4 digits)")
    ax.set_xscale("log")
    return _finish(plt, fig, ax, results / "length_generalization.png", "digits per operand", "exact match (%)",
                   "length generalization", len(series))


def _loops_figure(plt, results: Path, ttl: dict) -> Path:
    series = [(f"{name} ({m['depth']} depth), {d} digits", [c["loops"] for c in m["curve"]],
               [100 * c["accuracy_by_digits"][d] for c in m["curve"]])
              for name, m in ttl.items() for d in sorted(m["curve"][0]["accuracy_by_digits"], key=int)]
    # a curve at 0% everywhere is a flat line on the axis: the text and the JSON list it, the plot not
    series = [x for x in series if max(x[2]) > 0]
    fig, ax = plt.subplots(figsize=(8, 4))
    _lines(ax, series)
    ax.set_xscale("log", base=2)
    return _finish(plt, fig, ax, results / "test_time_loops.png", "loops at inference", "exact match (%)",
                   "test-time loops", len(series))


def _halting_figure(plt, results: Path, ah: dict) -> Path:
    series = [(name, [r["avg_steps_answer"] for r in rows],
               [100 * sum(r["accuracy_by_digits"].values()) / len(r["accuracy_by_digits"]) for r in rows])
              for name, rows in ah.items()]
    fig, ax = plt.subplots(figsize=(8, 4))
    _lines(ax, series)
    return _finish(plt, fig, ax, results / "adaptive_halting.png", "average loops per answer token",
                   "mean exact match over lengths (%)", "adaptive halting: accuracy vs compute", len(series))


def figures(results: Path) -> list[Path]:
    plt = _plt()
    out = [_length_figure(plt, results)]
    ttl = _load(results / "test_time_loops.json")
    if ttl:
        out.append(_loops_figure(plt, results, ttl))
    ah = _load(results / "adaptive_halting.json")
    if ah:
        out.append(_halting_figure(plt, results, ah))
    return out


def _headline(results: Path) -> str | None:
    lg = _load(results / "length_generalization.json")["models"]
    return next((n for n, m in lg.items() if m["checkpoint"] == f"results/checkpoints/{n}.pt"), None)


def thinking_trace_figure(results: Path, problem=(4821937, 5178063)) -> Path | None:
    """Heatmap of the headline checkpoint thinking through one carry-heavy problem."""
    name = _headline(results)
    ckpt = results / "checkpoints" / f"{name}.pt"
    if name is None or not ckpt.exists():
        return None
    from looplm import checkpoint
    from looplm.config import HaltingConfig
    from looplm.data import Problem
    from looplm.trace import heatmap, thinking_trace
    model = checkpoint.load(ckpt).model
    tr = thinking_trace(model, Problem(*problem), halting=HaltingConfig(mode="entropy", threshold=0.05))
    (results / "thinking_trace.json").write_text(json.dumps(tr, indent=1) + "\n")
    return heatmap(tr, results / "thinking_trace.png")


def _pct(x: float | None) -> str:
    return "-" if x is None else f"{100 * x:.1f}"


def length_table(results: Path, digits: tuple[int, ...] = DIGITS) -> str:
    """The markdown table of exact match by length (also embedded in the README; a test checks it)."""
    lg = _load(results / "length_generalization.json")["models"]
    head = "| model | order | params | " + " | ".join(str(d) for d in digits) + " |"
    sep = "|---|---|---|" + "---|" * len(digits)
    rows = [f"| {name} | {m['order']} | {m['params']:,} | " + " | ".join(_pct(m["accuracy_by_digits"].get(str(d)))
                                                                     for d in digits) + " |"
            for name, m in lg.items() if not (m.get("ablation_of") or m.get("seed_of"))]
    return "\n".join([head, sep, *rows])


def _devices(results: Path) -> str:
    lg = _load(results / "length_generalization.json")["models"]
    count: dict[str, int] = {}
    for m in lg.values():
        key = str(m["device"]) if m.get("device") else "a device the run did not record"
        count[key] = count.get(key, 0) + 1
    return " and ".join(f"{d} ({n} run{'s' * (n > 1)})" for d, n in sorted(count.items())) or "no device"


def _loops_label(loops) -> str:
    """How an eval chose its loops: 'train L', a count, or from the digits ({digits: loops})."""
    if loops is None:
        return "train L"
    if not isinstance(loops, dict):
        return str(loops)
    offsets = {int(L) - int(d) for d, L in loops.items()}
    if len(offsets) == 1:
        k = offsets.pop()
        return "digits" + (f"+{k}" if k > 0 else f"{k}" if k else "")
    return ", ".join(f"{d}: {L}" for d, L in sorted(loops.items(), key=lambda x: int(x[0])))


def _normal_section(normal: dict) -> list[str]:
    evs = ("fixed_loops", "random", "carry_chain", "decoy", "unequal")
    ds = sorted({d for m in normal.values() for ev in evs if ev in m for d in m[ev]["accuracy_by_digits"]}, key=int)
    lines = ["## Normal order (most significant digit first)", "",
             "| model | eval | loops | " + " | ".join(ds) + " |", "|---|---|---|" + "---|" * len(ds)]
    for name, m in normal.items():
        for ev in evs:
            if ev in m:
                lines.append(f"| {name} | {ev} | {_loops_label(m[ev]['loops'])} | " +
                             " | ".join(_pct(m[ev]["accuracy_by_digits"].get(d)) for d in ds) + " |")
    return lines + [""]


def _loops_section(ttl: dict) -> list[str]:
    lines = ["## Test-time loops", "", "![test-time loops](test_time_loops.png)", ""]
    for name, m in ttl.items():
        for d in sorted(m["curve"][0]["accuracy_by_digits"], key=int):
            lines.append(f"- {name} ({m['depth']} depth), {d} digits: " + ", ".join(
                f"L={c['loops']}: {_pct(c['accuracy_by_digits'][d])}%" for c in m["curve"]))
    return lines + [""]


def _halting_section(ah: dict) -> list[str]:
    lines = ["## Adaptive halting", "", "![adaptive halting](adaptive_halting.png)", "",
             "| run | mode | threshold | mean loops (answer) | mean loops (prompt) | applications saved | "
             "corr(loops, digits) | accuracy by digits |", "|---|---|---|---|---|---|---|---|"]
    for name, rows in ah.items():
        for r in rows:
            corr = "-" if r["corr_steps_digits"] is None else f"{r['corr_steps_digits']:.2f}"
            acc = ", ".join(f"{d}: {_pct(a)}" for d, a in r["accuracy_by_digits"].items())
            lines.append(f"| {name} | {r['mode']} | {r['threshold']} | {r['avg_steps_answer']:.2f} | "
                         f"{r['avg_steps_prompt']:.2f} | {_pct(r['applications_saved'])}% | {corr} | {acc} |")
    return lines + [""]


def _ablation_section(abl: list) -> list[str]:
    ds = ["4", "5", "8", "12", "16", "32", "64", "100"]
    base = sorted({a["ablation_of"] for a in abl if a.get("ablation_of")})
    lines = [f"## Ablations (reversed order; one change each from {', '.join(base) or 'its base run'})", "",
             "| run | change | params | " + " | ".join(ds) + " |", "|---|---|---|" + "---|" * len(ds)]
    lines += [f"| {a['name']} | {a['description']} | {a['params']:,} | " +
              " | ".join(_pct(a["accuracy_by_digits"].get(d)) for d in ds) + " |" for a in abl]
    return lines + [""]


def _seeds_section(seeds: dict) -> list[str]:
    lines = ["## Seeds (the same recipe, another train.seed)", ""]
    for base, runs in seeds.items():
        cells = sorted({(e, d) for r in runs.values() for e, ev in r["evals"].items() for d in ev["accuracy_by_digits"]},
                       key=lambda c: (c[0] != "random", c[0], int(c[1])))
        lines += [f"Repeats of {base}:", "", "| run | seed | steps | " + " | ".join(f"{e} {d}" for e, d in cells) + " |",
                  "|---|---|---|" + "---|" * len(cells)]
        lines += [f"| {name} | {r['seed']} | {r['train_steps']} | " + " | ".join(
            _pct(r["evals"].get(e, {}).get("accuracy_by_digits", {}).get(d)) for e, d in cells) + " |"
            for name, r in sorted(runs.items(), key=lambda x: x[1]["seed"])]
        n = sorted({n for r in runs.values() for ev in r["evals"].values() for n in ev["n_per_bucket"].values()})
        worst = min(a for r in runs.values() for ev in r["evals"].values() for a in ev["accuracy_by_digits"].values())
        lines += ["", f"n = {', '.join(map(str, n))} problems per cell; the worst cell over {len(runs)} seeds: {_pct(worst)}%.", ""]
    return lines


def write_report(results: Path) -> Path:
    figures(results)
    thinking_trace_figure(results)
    lines = ["# LoopLM results", "", "Exact match (%) on held-out problems, both operands of the given length;",
             "every model trained on 1-4 digit operands only. Produced by `looplm report results/`",
             f"from runs made with `looplm experiment run experiments/*.json` on {_devices(results)}.", "",
             "## Length generalization", "", length_table(results), "",
             "![length generalization](length_generalization.png)", ""]
    for name, m in _load(results / "length_generalization.json")["models"].items():
        if "unequal" in m:
            lines += [f"Unequal operand lengths ({name}): " + ", ".join(
                f"{d}: {_pct(a)}%" for d, a in m["unequal"]["accuracy_by_digits"].items()), ""]
    for fname, section in (("normal_order", _normal_section), ("test_time_loops", _loops_section),
                           ("adaptive_halting", _halting_section), ("ablations", _ablation_section),
                           ("seeds", _seeds_section)):
        data = _load(results / f"{fname}.json") if (results / f"{fname}.json").exists() else None
        if data:
            lines += section(data)
    if (results / "thinking_trace.png").exists():
        lines += ["## Thinking trace", "", "Entropy of each token's prediction after every loop (entropy halting, "
                  "threshold 0.05), headline checkpoint:", "", "![thinking trace](thinking_trace.png)", ""]
    path = results / "REPORT.md"
    path.write_text("\n".join(lines).rstrip() + "\n")
    return path
