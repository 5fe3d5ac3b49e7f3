"""What a check returns: a status, the values it measured, evidence a person can read."""
from __future__ import annotations

from typing import Any, Literal, Optional

from pydantic import BaseModel, ConfigDict, Field

Status = Literal["pass", "fail", "skip"]


class Result(BaseModel):
    model_config = ConfigDict(extra="forbid")

    status: Status
    message: str = ""
    measured: dict[str, Any] = Field(default_factory=dict)
    evidence: str = ""


def passed(message: str = "", evidence: str = "", **measured: Any) -> Result:
    return Result(status="pass", message=message, measured=measured, evidence=evidence)


def failed(message: str, evidence: str = "", **measured: Any) -> Result:
    return Result(status="fail", message=message, measured=measured, evidence=evidence)


def skipped(reason: str, **measured: Any) -> Result:
    return Result(status="skip", message=reason, measured=measured)


class StepResult(BaseModel):
    """One protocol step's outcome, as written to `looplm verify --json`."""

    model_config = ConfigDict(extra="forbid")

    id: str
    check: str
    status: Status
    seconds: float
    measured: dict[str, Any] = Field(default_factory=dict)
    message: str = ""
    evidence: str = ""
    gates: bool = False
    required: bool = True
    severity: str = "major"
    bugs: list[int] = Field(default_factory=list)
    on_fail: Optional[str] = None


class Report(BaseModel):
    model_config = ConfigDict(extra="forbid")

    spec: str
    passed: bool
    steps: list[StepResult]
    rca: list[str] = Field(default_factory=list)   # ids of RCA drafts written for failures

    def failures(self) -> list[StepResult]:
        return [s for s in self.steps if s.status == "fail"]
