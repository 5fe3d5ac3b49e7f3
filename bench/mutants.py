"""The bug catalogs as mutants: which protocol steps catch each bug, and how fast, for the
bundled LoopLM and for the example system (examples/nanoloop).

    python -m bench.mutants        # prints a table, writes bench/results/mutants.json
"""
from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

import dsl
from verifier.mutants import catalog_for, load_catalog, run_mutant

from .common import record, table

ROOT = Path(__file__).resolve().parents[1]
SPECS = {"looplm": dsl.BUNDLED, "nanoloop": ROOT / "examples" / "nanoloop" / "system.dsl"}


def run_catalog(name: str, spec: Path) -> dict:
    cat = load_catalog(catalog_for(spec))
    base = run_mutant(cat, None)
    outcomes = [run_mutant(cat, m) for m in cat.mutants]
    table(f"{name}: bug catalog as mutants (whole protocol per mutant, CPU)",
          ("mutant", "bug", "must fail", "caught", "failed steps", "protocol s to the step", "verify s"),
          [(o.name, o.bug or "-", o.expect, "yes" if o.caught else "NO", ", ".join(o.failed_steps), o.catch_seconds,
            o.seconds) for o in outcomes])
    caught = sum(o.caught for o in outcomes)
    print(f"{name}: caught {caught}/{len(outcomes)}; unmutated code: exit {base.exit_code}, "
          f"{len(base.failed_steps)} failures, {base.seconds:.1f} s")
    return {"spec": str(spec.relative_to(ROOT)), "total": len(outcomes), "detected": caught,
            "false_alarms": len(base.failed_steps), "unmutated": asdict(base),
            "outcomes": [{**asdict(o), "caught_by": o.expect if o.caught else None} for o in outcomes]}


def main() -> None:
    systems = {name: run_catalog(name, spec) for name, spec in SPECS.items()}
    # the bundled system's figures stay at the top level (the spec's fact `catalog_caught` reads them)
    print(f"wrote {record('mutants', {**{k: v for k, v in systems['looplm'].items() if k != 'spec'}, 'systems': systems})}")


if __name__ == "__main__":
    main()
