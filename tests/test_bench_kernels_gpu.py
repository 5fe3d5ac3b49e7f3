"""The GPU bench's --merge (runs on a CPU: the bench's bookkeeping, not its timings)."""
from bench.kernels_gpu import kept_rows


def test_merge_keeps_every_earlier_row_not_run_again():
    rows = [{"digits": d, "L": L, "halting": h, "ms": {"cutile": i}} for i, (d, L, h) in
            enumerate((d, L, h) for d in (100, 1000) for h in (False, True) for L in (12, 24, 64))]
    run = [(1000, 64, True), (100, 12, False)]
    kept = kept_rows(rows, run)
    assert len(kept) == len(rows) - 2 and all((r["digits"], r["L"], r["halting"]) not in run for r in kept)
    assert kept == [r for r in rows if r in kept]            # their order stays
    assert kept_rows(rows, []) == rows
