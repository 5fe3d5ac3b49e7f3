"""Run a spec's protocol: steps in order, dependencies, hang guards, one report.

A step whose `needs` failed (or was skipped because of a failure) is skipped, saying which.
A step needing a capability the system does not provide is skipped, naming the capability.
A step that raises is a failure carrying the exception. The report passes when no required
step failed and at least one step ran. Verdicts never depend on time: checks budget steps and
samples, and a step's `timeout` only guards against a hang (set it far above the step's time).
"""
from __future__ import annotations

import contextlib
import signal
import threading
import time
import traceback
from typing import Callable, Iterator, Optional
from xml.etree import ElementTree as ET

from pydantic import ValidationError

from dsl.model import Step

from . import registry
from .contract import ContractError, MissingCapability, not_provided
from .result import Report, Result, StepResult, failed, skipped
from .target import Target


class StepTimeout(Exception):
    pass


HANG_GRACE_S = 60.0     # past a step's time limit, how long the alarm may wait for Python to run
HUNG_EXIT = 1           # a step failed (README, exit codes)


@contextlib.contextmanager
def time_limit(seconds: float, what: str = "the step", grace: Optional[float] = None,
               last_words: Optional[Callable[[], None]] = None) -> Iterator[None]:
    """Raise StepTimeout in the main thread after `seconds` (a no-op off the main thread).

    The alarm only runs when the main thread is back in Python. A call blocked outside it never
    comes back (a GPU launch that never ends: the host spins in a CUDA sync; seen on the H200 in
    session 37), so a watchdog thread ends the process `grace` seconds later, with a one-line
    reason and every thread's stack on stderr, rather than let the run hang silently; it calls
    `last_words` first (the runner saves what the run found so far). `grace` defaults to
    HANG_GRACE_S as it is at the call."""
    grace = HANG_GRACE_S if grace is None else grace
    if threading.current_thread() is not threading.main_thread() or not hasattr(signal, "setitimer"):
        yield
        return

    def alarm(signum, frame):
        raise StepTimeout(f"exceeded its time limit of {seconds:g} s")
    previous = signal.signal(signal.SIGALRM, alarm)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    watchdog = threading.Timer(seconds + grace, _hung, args=(what, seconds, grace, last_words))
    watchdog.daemon = True
    watchdog.start()
    try:
        yield
    finally:
        watchdog.cancel()
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def _hung(what: str, seconds: float, grace: float, last_words: Optional[Callable[[], None]] = None) -> None:
    import faulthandler
    import os
    import sys
    print(f"looplm: {what} did not return within its time limit of {seconds:g} s (+{grace:g} s): it is blocked "
          f"outside Python (a GPU launch that never ends?); stopping. Where each thread sat:", file=sys.stderr, flush=True)
    faulthandler.dump_traceback(file=sys.stderr, all_threads=True)
    if last_words is not None:
        try:
            last_words()
        except Exception as e:      # the exit below must happen whatever the report's writer does
            print(f"looplm: could not save the report so far: {type(e).__name__}: {e}", file=sys.stderr, flush=True)
    sys.stderr.flush()
    os._exit(HUNG_EXIT)


def validate(spec) -> None:
    """Every step names a registered check and gives it valid params, every symptom a known
    detector (SpecError at the step or symptom)."""
    from knowledge_base.detectors import DETECTORS
    from dsl.errors import did_you_mean
    for sym in spec.system.symptoms:
        if sym.detector not in DETECTORS:
            raise sym.fail(f"symptom '{sym.name}' names unknown detector '{sym.detector}'", "detector",
                           hint=did_you_mean(sym.detector, DETECTORS))
    checks = registry.all_checks()
    for step in spec.system.steps:
        if step.check not in checks:
            raise step.fail(f"step '{step.name}' runs unknown check '{step.check}'", "check",
                            hint=did_you_mean(step.check, checks))
        try:
            checks[step.check].params.model_validate(_plain(step.params))
        except ValidationError as e:
            first = e.errors()[0]
            where = ".".join(str(x) for x in first["loc"])
            raise step.fail(f"step '{step.name}': params.{where}: {first['msg']}", "params",
                            str(first["loc"][0]) if first["loc"] else None) from None


def _plain(value):
    """Spec values -> plain Python for a check's parameter model (Refs become their words)."""
    from dsl.values import Ref
    if isinstance(value, Ref):
        return value.dotted
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


def select(steps: tuple[Step, ...], only: Optional[list[str]], gating: bool) -> list[Step]:
    names = {s.name for s in steps}
    if only:
        unknown = [o for o in only if o not in names]
        if unknown:
            raise KeyError(f"no step named {', '.join(unknown)} (steps: {', '.join(s.name for s in steps)})")
        return [s for s in steps if s.name in only]
    if not gating:
        return list(steps)
    wanted = {s.name for s in steps if s.gates}
    by_name = {s.name: s for s in steps}
    stack = list(wanted)
    while stack:                        # a gating step's needs run too
        for need in by_name[stack.pop()].needs:
            if need not in wanted:
                wanted.add(need)
                stack.append(need)
    return [s for s in steps if s.name in wanted]


def run_step(step: Step, target: Target, last_words: Optional[Callable[[], None]] = None) -> Result:
    chk = registry.get(step.check)
    params = chk.params.model_validate(_plain(step.params))
    try:
        with time_limit(step.timeout, f"step '{step.name}'", last_words=last_words):
            return chk(target, params, step)
    except StepTimeout as e:
        return failed(f"step {e} (a hang guard: the step did not finish)")
    except MissingCapability as e:
        return skipped(f"skipped: {e}", missing=e.capability)
    except ContractError as e:
        return failed(str(e))
    except Exception as e:  # a check that crashes has found something: report it, do not die
        cap = not_provided(e)
        if cap is not None:
            return skipped(f"skipped: needs capability '{cap}' ({type(target.system).__name__} says: {e})",
                           missing=cap)
        return failed(f"check raised {type(e).__name__}: {str(e)[:300]}", traceback.format_exc(limit=6))


def run_in_order(step: Step, target: Target, bad: set[str], last_words: Optional[Callable[[], None]] = None) -> Result:
    """One step of a protocol run. `bad` holds the steps so far that did not pass (failed, or
    skipped for a missing capability or a need of their own): a step needing one of them is
    skipped, saying which. Adds this step to `bad` when it does not pass."""
    blocked = [n for n in step.needs if n in bad]
    if blocked:
        bad.add(step.name)
        return Result(status="skip", message=f"skipped: needs {', '.join(blocked)}, which did not pass")
    res = run_step(step, target, last_words)
    if res.status == "fail" or res.missing is not None:
        bad.add(step.name)
    return res


@contextlib.contextmanager
def one_thread() -> Iterator[None]:
    """Run the checks on one CPU thread (restored after): their models are tiny, so more threads
    only contend, and on a shared CPU two threads made the protocol 1.6x slower (26 s vs 16 s)."""
    import torch
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def step_result(step: Step, res: Result, seconds: float) -> StepResult:
    return StepResult(id=step.name, check=step.check, status=res.status, seconds=round(seconds, 3),
                      measured=res.measured, margins=res.margins, margin=res.margin(), missing=res.missing,
                      message=res.message, evidence=res.evidence, expect=step.expect, gates=step.gates,
                      required=step.required, severity=step.severity, bugs=list(step.bugs), on_fail=step.on_fail)


def run(target: Target, *, spec_name: str = "<spec>", only: Optional[list[str]] = None, gating: bool = False,
        on_step: Optional[Callable[[StepResult], None]] = None, fail_fast: bool = False,
        on_hang: Optional[Callable[[Report], None]] = None) -> Report:
    """Run the protocol (`only` these steps; `gating`: the gating steps and what they need);
    `fail_fast` skips every step after the first required step that fails. A step blocked outside
    Python past its time limit ends the process (`time_limit`); `on_hang` first gets the report so
    far: the steps before it, that one failed, the rest skipped."""
    validate(target.spec)
    results: list[StepResult] = []
    bad: set[str] = set()
    stopped: Optional[str] = None
    with one_thread():
        steps = select(target.spec.system.steps, only, gating)
        for i, step in enumerate(steps):
            t0 = time.perf_counter()
            last_words = _hang_report(on_hang, target, spec_name, results, steps[i:], t0)
            res = run_in_order(step, target, bad, last_words) if stopped is None else \
                Result(status="skip", message=f"skipped: --fail-fast after {stopped} failed")
            if fail_fast and stopped is None and res.status == "fail" and step.required:
                stopped = step.name
            results.append(step_result(step, res, time.perf_counter() - t0))
            if on_step:
                on_step(results[-1])
    return _report(target, spec_name, results)


def _hang_report(on_hang: Optional[Callable[[Report], None]], target: Target, spec_name: str,
                 results: list[StepResult], steps: list[Step], t0: float) -> Optional[Callable[[], None]]:
    """The watchdog's last words while steps[0] runs: on_hang gets the report of the steps before
    it (`results`, as they stand then), this one failed and the rest skipped, saying why."""
    if on_hang is None:
        return None

    def last_words() -> None:
        step, rest = steps[0], steps[1:]
        hung = failed(f"step blocked outside Python past its time limit of {step.timeout:g} s: the run was ended "
                      f"(a hang guard)")
        ended = Result(status="skip", message=f"skipped: the run was ended while {step.name} was blocked")
        on_hang(_report(target, spec_name, [*results, step_result(step, hung, time.perf_counter() - t0),
                                            *(step_result(s, ended, 0.0) for s in rest)]))
    return last_words


def _report(target: Target, spec_name: str, results: list[StepResult]) -> Report:
    """The report of these step results: it passes when no required step failed and one ran."""
    ran = sum(r.status != "skip" for r in results)
    ok = not any(r.status == "fail" and r.required for r in results) and (ran > 0 or not results)
    return Report(spec=spec_name, system=target.spec.system.implementation or "", kernels_on=target.where,
                  system_file=_source_file(target.system), passed=ok, steps=results)


def _source_file(system) -> str:
    import inspect
    try:
        return inspect.getfile(type(system))
    except (TypeError, OSError):
        return ""


def junit_xml(report: Report) -> str:
    """The report as JUnit XML (one testcase per step), for CI systems."""
    suite = ET.Element("testsuite", name=f"looplm-verify {report.spec}", tests=str(len(report.steps)),
                       failures=str(sum(s.status == "fail" for s in report.steps)),
                       skipped=str(sum(s.status == "skip" for s in report.steps)),
                       time=f"{sum(s.seconds for s in report.steps):.3f}")
    for s in report.steps:
        case = ET.SubElement(suite, "testcase", classname=s.check, name=s.id, time=f"{s.seconds:.3f}")
        if s.status == "fail":
            ET.SubElement(case, "failure", message=s.message).text = s.evidence
        elif s.status == "skip":
            ET.SubElement(case, "skipped", message=s.message)
    return ET.tostring(suite, encoding="unicode")

