"""The verifier: run a spec's protocol against the real model and kernels.

    from verifier import Target, run
    report = run(Target(spec=dsl.load(dsl.BUNDLED)))
"""
from .result import Report, Result, StepResult
from .runner import junit_xml, run, validate
from .target import Target

__all__ = ["Report", "Result", "StepResult", "Target", "run", "validate", "junit_xml"]
