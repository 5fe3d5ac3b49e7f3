"""The knowledge base's claims, re-checked against their evidence files."""
from __future__ import annotations

from knowledge_base.claims import check_claims

from ..registry import check
from ..result import failed, passed
from ..target import Target


@check("kb.claims")
def claims(target: Target, params):
    """Every fact's claim agrees with its evidence; missing evidence fails; facts without claims are unverified."""
    results = check_claims(target.spec)
    counts = {s: sum(r.status == s for r in results) for s in ("holds", "contradicted", "missing_evidence", "unverified")}
    lines = [f"[{r.status}] {r.fact}: {r.claim} -- {r.detail}" for r in results]
    bad = [r for r in results if r.status in ("contradicted", "missing_evidence")]
    if bad:
        return failed(f"{len(bad)} claim(s) not supported by their evidence: {', '.join(r.fact for r in bad)}",
                      "\n".join(lines), **counts)
    return passed(f"{counts['holds']} claim(s) hold; {counts['unverified']} fact(s) unverified (no claim)",
                  "\n".join(lines), **counts)
