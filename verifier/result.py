"""What a check returns: a status, the values it measured, evidence a person can read, and
the margin of each numeric verdict (how far the measured value sat from its limit)."""
from __future__ import annotations

import math
from typing import Any, Literal, Optional

from pydantic import BaseModel, ConfigDict, Field

Status = Literal["pass", "fail", "skip"]
# On a clean system every numeric verdict sits at least this many times inside its limit
# (tests/test_verifier_runner.py holds the bundled system to it): no verdict rides on noise.
MIN_MARGIN = 2.0


class Margin(BaseModel):
    """One numeric verdict: `value` must be <= `limit` (upper) or >= `limit` (lower). `ratio`
    is how many times inside the limit the value is (limit / value, or value / limit): >= 1
    passes, and a clean system should sit far above 1 so that no verdict rides on noise."""
    model_config = ConfigDict(extra="forbid", ser_json_inf_nan="strings")

    value: float
    limit: float
    bound: Literal["upper", "lower"]

    @property
    def ratio(self) -> float:
        top, bottom = (self.limit, self.value) if self.bound == "upper" else (self.value, self.limit)
        if bottom <= 0:
            return math.inf if top > 0 else (1.0 if top == bottom else 0.0)
        return top / bottom

    @property
    def ok(self) -> bool:
        return self.value <= self.limit if self.bound == "upper" else self.value >= self.limit


class Result(BaseModel):
    model_config = ConfigDict(extra="forbid")

    status: Status
    message: str = ""
    measured: dict[str, Any] = Field(default_factory=dict)
    evidence: str = ""
    margins: dict[str, Margin] = Field(default_factory=dict)
    missing: Optional[str] = None     # a skip for a capability the system does not provide

    def margin(self) -> Optional[float]:
        """The thinnest margin ratio of this result (None: no numeric verdict)."""
        return min((m.ratio for m in self.margins.values()), default=None)


class Margins:
    """Collects a check's numeric verdicts: `m.upper("max_diff", 3e-7, 1e-3)` records one and
    says whether it holds."""

    def __init__(self) -> None:
        self.all: dict[str, Margin] = {}

    def upper(self, name: str, value: float, limit: float) -> bool:
        return self._add(name, value, limit, "upper")

    def lower(self, name: str, value: float, limit: float) -> bool:
        return self._add(name, value, limit, "lower")

    def _add(self, name: str, value: float, limit: float, bound) -> bool:
        value = float(value)
        m = Margin(value=value if math.isfinite(value) else 1e300, limit=float(limit), bound=bound)
        self.all[name] = m
        return m.ok and math.isfinite(value)


def passed(message: str = "", evidence: str = "", margins: Optional[Margins] = None, **measured: Any) -> Result:
    return Result(status="pass", message=message, measured=measured, evidence=evidence,
                  margins=margins.all if margins else {})


def failed(message: str, evidence: str = "", margins: Optional[Margins] = None, **measured: Any) -> Result:
    return Result(status="fail", message=message, measured=measured, evidence=evidence,
                  margins=margins.all if margins else {})


def skipped(reason: str, missing: Optional[str] = None, **measured: Any) -> Result:
    return Result(status="skip", message=reason, measured=measured, missing=missing)


class StepResult(BaseModel):
    """One protocol step's outcome, as written to `looplm verify --json` (an infinite margin,
    a verdict whose value sat at exactly zero, is written "Infinity")."""

    model_config = ConfigDict(extra="forbid", ser_json_inf_nan="strings")

    id: str
    check: str
    status: Status
    seconds: float
    measured: dict[str, Any] = Field(default_factory=dict)
    margins: dict[str, Margin] = Field(default_factory=dict)
    margin: Optional[float] = None        # the thinnest margin ratio (None: no numeric verdict)
    missing: Optional[str] = None         # skipped: the capability the system lacks
    message: str = ""
    evidence: str = ""
    expect: Optional[str] = None
    gates: bool = False
    required: bool = True
    severity: str = "major"
    bugs: list[int] = Field(default_factory=list)
    on_fail: Optional[str] = None


class Report(BaseModel):
    model_config = ConfigDict(extra="forbid", ser_json_inf_nan="strings")

    spec: str
    system: str = ""                      # the implementation the spec bound to
    system_file: str = ""                 # ... and the file it was defined in
    kernels_on: str = ""                  # where kernel steps ran: "cuTile on the GPU" / "the CPU emulator"
    passed: bool
    steps: list[StepResult]
    rca: list[str] = Field(default_factory=list)   # ids of RCA drafts written for failures

    def failures(self) -> list[StepResult]:
        return [s for s in self.steps if s.status == "fail"]

    def counts(self) -> dict[str, int]:
        """passed, failed, skipped, and how many skips were for a missing capability."""
        n = {k: sum(s.status == k for s in self.steps) for k in ("pass", "fail", "skip")}
        n["missing"] = sum(s.missing is not None for s in self.steps)
        return n

    def summary(self) -> str:
        n = self.counts()
        missing = sorted({s.missing for s in self.steps if s.missing})
        text = (f"{'PASSED' if self.passed else 'FAILED'}: {n['pass']} passed, {n['fail']} failed, "
                f"{n['skip']} skipped in {sum(s.seconds for s in self.steps):.1f} s")
        if n["missing"]:
            text += f" ({n['missing']} for capabilities {self.system or 'the system'} lacks: {', '.join(missing)})"
        if n["pass"] + n["fail"] == 0 and self.steps:
            text += "; no step ran, so nothing was verified"
        return text
