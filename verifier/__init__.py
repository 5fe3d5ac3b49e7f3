"""The verifier: run a spec's protocol against the system the spec names (verifier/contract.py
says what a system provides; verifier/binding.py resolves the spec's references to code).

    from verifier import load_target, run
    report = run(load_target(dsl.BUNDLED))
"""
from .result import Report, Result, StepResult
from .runner import junit_xml, run, validate
from .target import Target, load_target, validate_spec

__all__ = ["Report", "Result", "StepResult", "Target", "load_target", "validate_spec", "run", "validate",
           "junit_xml"]
