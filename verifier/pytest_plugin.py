"""pytest plugin: `pytest --looplm-spec PATH` collects each protocol step as a test item, so a
CI job can gate experiments with the tool it already runs.

    pytest --looplm-spec dsl/specs/looplm_system.dsl [--looplm-config C.json] [--looplm-ckpt ckpt.pt]
           [--looplm-device cpu|cuda] [--looplm-with-tests]

Only the spec's steps are collected (add --looplm-with-tests to run the project's own tests
too). Steps run in protocol order; a step whose `needs` failed is skipped, saying so; a failed
step reports its message, measured values, evidence and the spec's `on_fail`. A spec, config or
device that cannot be used is one usage error, before anything is collected.
"""
from __future__ import annotations

from pathlib import Path

import pytest


def pytest_addoption(parser) -> None:
    group = parser.getgroup("looplm", "LoopLM-Spec verification protocol")
    group.addoption("--looplm-spec", metavar="PATH", help="collect this spec's protocol steps as tests")
    group.addoption("--looplm-config", metavar="PATH", help="config of the run being verified")
    group.addoption("--looplm-ckpt", metavar="PATH", help="a trained checkpoint (format parity)")
    group.addoption("--looplm-device", default="cpu", choices=("cpu", "cuda"), help="where kernel steps run")
    group.addoption("--looplm-with-tests", action="store_true", help="collect the other tests as well")


class StepFailed(Exception):
    pass


class SpecSteps(pytest.Collector):
    def __init__(self, *, target, **kw):
        super().__init__(**kw)
        self.target = target
        self.bad: set[str] = set()

    def collect(self):
        for step in self.target.spec.system.steps:
            yield StepItem.from_parent(self, name=step.name, step=step)


class StepItem(pytest.Item):
    def __init__(self, *, step, **kw):
        super().__init__(**kw)
        self.step = step
        for marker in ("gates",) if step.gates else ():
            self.add_marker(marker)

    def runtest(self) -> None:
        from .runner import run_in_order
        res = run_in_order(self.step, self.parent.target, self.parent.bad)
        if res.status == "skip":
            pytest.skip(res.message)
        if res.status == "fail":
            raise StepFailed(res)

    def repr_failure(self, excinfo):
        if isinstance(excinfo.value, StepFailed):
            res = excinfo.value.args[0]
            lines = [f"{self.step.check}: {res.message}"]
            if res.measured:
                lines.append(f"measured: {res.measured}")
            if res.evidence:
                lines.append(res.evidence)
            if self.step.expect:
                lines.append(f"expected: {self.step.expect}")
            if self.step.on_fail:
                lines.append(f"fix: {self.step.on_fail}")
            return "\n".join(lines)
        return super().repr_failure(excinfo)

    def reportinfo(self):
        return self.path, None, f"{self.step.name} ({self.step.check})"


def _target(config):
    """The spec bound to its system, or one pytest.UsageError saying why not."""
    import dsl

    from .ranges import ConfigRefused
    from .target import DeviceUnavailable, load_target
    spec_path = Path(config.getoption("--looplm-spec"))
    cfg, ckpt = config.getoption("--looplm-config"), config.getoption("--looplm-ckpt")
    try:
        return load_target(spec_path, config=Path(cfg) if cfg else None, checkpoint=Path(ckpt) if ckpt else None,
                           device=config.getoption("--looplm-device"))
    except dsl.SpecError as e:
        raise pytest.UsageError(f"--looplm-spec: {e}") from None
    except (OSError, ValueError, ConfigRefused, DeviceUnavailable) as e:
        raise pytest.UsageError(f"--looplm-spec {spec_path}: {type(e).__name__}: {e}") from None


def pytest_configure(config) -> None:
    config.addinivalue_line("markers", "gates: a protocol step that gates training")
    if config.getoption("--looplm-spec", default=None):
        config._looplm_target = _target(config)


def pytest_ignore_collect(collection_path, config):
    """With --looplm-spec, the project's own test files are not even imported (unless asked)."""
    if getattr(config, "_looplm_target", None) is not None and not config.getoption("--looplm-with-tests"):
        return True
    return None


def pytest_collection_modifyitems(session, config, items) -> None:
    target = getattr(config, "_looplm_target", None)
    if target is None:
        return
    spec_path = Path(config.getoption("--looplm-spec"))
    collector = SpecSteps.from_parent(session, name=f"looplm-spec::{spec_path.name}", path=spec_path.resolve(),
                                      target=target)
    steps = list(collector.collect())
    # report the collection like any other, so the summary counts the steps ("collected 26 items")
    config.hook.pytest_collectreport(report=pytest.CollectReport(collector.nodeid, "passed", None, steps))
    items.extend(steps)
