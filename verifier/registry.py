"""Checks by name: each has a typed parameter model and a function (target, params) -> Result
(or (target, params, step) for a check that reads its step, e.g. the sections it `uses`).

A spec step names a check (`check: data.aligned_batches`) and gives its params; the runner
validates the params against the check's model before running it, so a typo in a spec's
params fails at once with the step's position.
"""
from __future__ import annotations

import inspect
from dataclasses import dataclass
from typing import Callable, Type

from pydantic import BaseModel, ConfigDict

from .result import Result


class NoParams(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


@dataclass(frozen=True)
class Check:
    name: str
    params: Type[BaseModel]
    run: Callable[..., Result]
    doc: str
    wants_step: bool = False

    def __call__(self, target, params, step) -> Result:
        return self.run(target, params, step=step) if self.wants_step else self.run(target, params)


CHECKS: dict[str, Check] = {}


def check(name: str, params: Type[BaseModel] = NoParams) -> Callable:
    """Register `fn(target, params) -> Result` as check `name`."""
    def register(fn: Callable[..., Result]) -> Callable[..., Result]:
        if name in CHECKS:
            raise ValueError(f"check {name!r} registered twice")
        doc = " ".join((fn.__doc__ or "").strip().split("\n\n")[0].split())
        CHECKS[name] = Check(name, params, fn, doc, "step" in inspect.signature(fn).parameters)
        return fn
    return register


def get(name: str) -> Check:
    from . import checks  # noqa: F401  (importing registers every check)
    return CHECKS[name]


def all_checks() -> dict[str, Check]:
    from . import checks  # noqa: F401
    return dict(CHECKS)


class Params(BaseModel):
    """Base for check parameter models: closed and frozen."""
    model_config = ConfigDict(extra="forbid", frozen=True)
