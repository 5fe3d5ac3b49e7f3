"""The knowledge base: the spec's facts, rules and symptoms; detectors; evidence-checked claims."""
from .claims import ClaimResult, check_claims, check_fact
from .detectors import DETECTORS, Evidence
from .diagnose import Match, diagnose
from .rules import fired_rules

__all__ = ["ClaimResult", "check_claims", "check_fact", "DETECTORS", "Evidence", "Match", "diagnose", "fired_rules"]
