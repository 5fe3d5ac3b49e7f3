"""pytest plugin: `pytest --looplm-spec PATH` collects each protocol step as a test item, so a
CI job can gate experiments with the tool it already runs.

    pytest --looplm-spec dsl/specs/looplm_system.dsl [--looplm-config C.json] [--looplm-ckpt ckpt.pt]

Steps run in protocol order; a step whose `needs` failed is skipped, saying so; a failed step
reports its message, measured values, evidence and the spec's `on_fail`.
"""
from __future__ import annotations

from pathlib import Path

import pytest


def pytest_addoption(parser) -> None:
    group = parser.getgroup("looplm", "LoopLM-Spec verification protocol")
    group.addoption("--looplm-spec", metavar="PATH", help="collect this spec's protocol steps as tests")
    group.addoption("--looplm-config", metavar="PATH", help="config (JSON overrides) of the run being verified")
    group.addoption("--looplm-ckpt", metavar="PATH", help="a trained checkpoint (format parity)")
    group.addoption("--looplm-device", default="cpu", help="cpu | cuda")


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
            if self.step.on_fail:
                lines.append(f"fix: {self.step.on_fail}")
            return "\n".join(lines)
        return super().repr_failure(excinfo)

    def reportinfo(self):
        return self.path, None, f"{self.step.name} ({self.step.check})"


def pytest_configure(config) -> None:
    config.addinivalue_line("markers", "gates: a protocol step that gates training")


def pytest_collection_modifyitems(session, config, items) -> None:
    spec_path = config.getoption("--looplm-spec", default=None)
    if not spec_path:
        return
    import dsl
    from looplm.config import Config

    from . import validate
    from .target import Target
    spec = dsl.load(spec_path)
    validate(spec)
    cfg_path = config.getoption("--looplm-config")
    ckpt = config.getoption("--looplm-ckpt")
    target = Target(spec=spec, config=Config.load(cfg_path) if cfg_path else Config(),
                    checkpoint=Path(ckpt) if ckpt else None, device=config.getoption("--looplm-device"))
    collector = SpecSteps.from_parent(session, name=f"looplm-spec::{Path(spec_path).name}",
                                      path=Path(spec_path).resolve(), target=target)
    items.extend(collector.collect())
