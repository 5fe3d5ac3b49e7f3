"""`looplm init PACKAGE`: an adapter module and a spec for an existing looped model package.

The adapter holds every method of the verifier's contract (verifier/contract.py), each with the
contract's signature and docstring and a body that raises `NotImplementedError("not provided:
CAPABILITY")`: `looplm verify` skips the steps that need it, naming the capability, until the
method is filled in. The spec binds to the adapter and runs the general protocol.
"""
from __future__ import annotations

import importlib
import inspect
import re
from pathlib import Path

from verifier.contract import CAPABILITIES, LoopedSystem

STEPS = [("spec_config_sync", "spec.config_sync"), ("design_rules", "spec.rules"),
         ("aligned_batches", "data.aligned_batches"), ("fresh_batches", "data.fresh_batches"),
         ("answer_only_targets", "data.answer_only_targets"),
         ("forward_contract", "model.forward_contract"), ("eval_mode_loss", "model.eval_mode_loss"),
         ("loop_accounting", "model.loop_accounting"), ("autograd_connectivity", "model.autograd_connectivity"),
         ("supervision_schedule", "train.supervision_schedule"), ("training_objective", "train.objective"),
         ("causality", "model.causality"),
         ("halting_semantics", "model.halting_semantics"), ("train_step_smoke", "train.step_smoke"),
         ("strict_checkpoint_load", "checkpoint.strict_load"), ("resume_equivalence", "train.resume_equivalence"),
         ("format_parity", "eval.format_parity"), ("eval_sets", "eval.problem_sets"),
         ("generation_parity", "eval.generation_parity"), ("eval_report", "eval.report_consistency"),
         ("overfit_batch", "train.overfit_batch")]


class _Bare(str):
    def __repr__(self) -> str:
        return str(self)


def _bare(annotation):
    return _Bare(annotation) if isinstance(annotation, str) else annotation


def _method(name: str, capability: str) -> str:
    fn = getattr(LoopedSystem, name)
    sig = inspect.signature(fn)
    # annotations are strings (postponed evaluation): print them bare, defaults as written
    sig = sig.replace(parameters=[q.replace(annotation=_bare(q.annotation)) for q in sig.parameters.values()],
                      return_annotation=_bare(sig.return_annotation))
    doc = inspect.getdoc(fn) or ""
    body = f'        """{doc}"""\n' if doc else ""
    return f"    def {name}{sig}:\n{body}        raise NotImplementedError(\"not provided: {capability}\")\n"


def _modules_of(package: str) -> str:
    """A comment listing what the package holds (its torch modules and functions), if it imports."""
    try:
        mod = importlib.import_module(package)
    except Exception as e:
        return f"# {package} did not import here ({type(e).__name__}); fill the methods in by hand.\n"
    names = [n for n, v in vars(mod).items() if not n.startswith("_") and (inspect.isclass(v) or inspect.isfunction(v))]
    return f"# {package} defines: {', '.join(sorted(names)[:30]) or '(nothing public)'}\n"


def adapter_text(package: str) -> str:
    methods = "\n".join(_method(m, cap) for cap, names in CAPABILITIES.items() for m in names)
    return (f'"""{package} as a system under test for `looplm verify` (scaffolded by `looplm init`).\n\n'
            f"Fill in each method from {package}'s own code (the real training step, the real loader);\n"
            f'a method left raising "not provided" makes the steps that need it skip, naming it.\n"""\n'
            f"from typing import Any, Callable, Iterator, Mapping, Optional, Sequence\n\n"
            f"import {package}  # noqa: F401\n\n{_modules_of(package)}\n\n"
            f"class System:\n    def __init__(self, config=None, overrides=None):\n"
            f"        self.config_path, self.overrides = config, dict(overrides or {{}})\n\n{methods}")


def spec_text(package: str, adapter: str) -> str:
    steps = "\n".join(f"    step {n} {{ check: {c}  gates: true }}" for n, c in STEPS)
    return (f'---\ntitle: "{package}"\nstatus: draft\n---\n'
            f"// scaffolded by `looplm init {package}`: declare the config's params in architecture /\n"
            f"// training / halting / data groups, then `looplm verify --spec` this file.\n"
            f"system {_ident(package)} {{\n  implementation: \"{adapter}:System\"\n\n"
            f"  protocol {{\n{steps}\n  }}\n}}\n")


def _ident(name: str) -> str:
    word = re.sub(r"\W", "_", name.split(".")[-1]) or "System"
    return word if word[0].isalpha() else f"S_{word}"


def scaffold(package: str, out: Path, force: bool = False) -> tuple[Path, Path]:
    """Write OUT/<package>_system.py and OUT/<package>.dsl; refuse to overwrite unless `force`."""
    stem = _ident(package).lower()
    adapter, spec = out / f"{stem}_system.py", out / f"{stem}.dsl"
    for path in (adapter, spec):
        if path.exists() and not force:
            raise FileExistsError(17, "exists (use --force to overwrite)", str(path))
    from app.files import write_atomic
    write_atomic(adapter, adapter_text(package))
    write_atomic(spec, spec_text(package, adapter.name))
    return adapter, spec
