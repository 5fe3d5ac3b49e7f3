"""A root-cause-analysis record: what went wrong, why, what fixed it, and the evidence."""
from __future__ import annotations

import datetime
import uuid
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

Category = Literal["kernel", "numerics", "learning_dynamics", "data", "evaluation", "checkpoint",
                   "architecture", "infrastructure", "gate_bypass", "other"]


class Record(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str = Field(default_factory=lambda: "RCA-" + uuid.uuid4().hex[:8])
    date: datetime.date = Field(default_factory=datetime.date.today)
    title: str = Field(min_length=1)
    category: Category = "other"
    symptom: str = ""
    root_cause: str = ""
    fix: str = ""
    status: Literal["open", "fixed", "monitored"] = "open"
    evidence: str = ""
    checks: list[str] = Field(default_factory=list)     # verifier checks that catch it
    files: list[str] = Field(default_factory=list)      # code it lives in
    bugs: list[int] = Field(default_factory=list)       # the brief's bug catalog numbers
    draft: bool = False                                  # written by a failed gate, not yet reviewed

