"""The bug catalog as mutants: which protocol steps catch each bug, and how fast.

    python -m bench.mutants        # prints a table, writes bench/results/mutants.json
"""
from __future__ import annotations

from dataclasses import asdict

from verifier.mutants import MUTANTS, run_mutant

from .common import record, table


def main() -> None:
    base = run_mutant(None)
    outcomes = [run_mutant(m) for m in MUTANTS]
    rows = [(o.name, o.bug or "-", o.expect, "yes" if o.caught else "NO", ", ".join(o.failed_steps),
             o.catch_seconds, o.seconds) for o in outcomes]
    table("bug catalog as mutants (whole protocol per mutant, CPU)",
          ("mutant", "bug", "must fail", "caught", "failed steps", "protocol s to the step", "verify s"), rows)
    caught = sum(o.caught for o in outcomes)
    print(f"caught {caught}/{len(outcomes)}; unmutated code: exit {base.exit_code}, {len(base.failed_steps)} failures, "
          f"{base.seconds:.1f} s")
    # a false alarm: a step that fails on the unmutated code
    rows = [{**asdict(o), "caught_by": o.expect if o.caught else None} for o in outcomes]
    path = record("mutants", {"total": len(outcomes), "detected": caught, "false_alarms": len(base.failed_steps),
                              "unmutated": asdict(base), "outcomes": rows})
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
