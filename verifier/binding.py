"""Bind a spec to code: its `implementation` and each kernel's `function` and `reference`.

References are "package.module:attribute" (importable from sys.path) or "path/file.py:attribute"
(relative to the spec file; its folder goes on sys.path so the file can import its siblings).
Anything that does not resolve is a SpecError at the spec's own line and column, with a
did-you-mean; a module that raises while importing is reported the same way.
"""
from __future__ import annotations

import importlib
import importlib.util
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Optional

from dsl.errors import SpecError, did_you_mean
from dsl.model import Kernel, Spec


@dataclass(frozen=True)
class BoundKernel:
    """A spec kernel resolved to code."""
    spec: Kernel
    module: Any
    function: Any
    reference: Any


def _module(name: str, spec_dir: Optional[Path], node, key: str):
    """Import `name` (a dotted module, or a .py path relative to the spec's folder)."""
    try:
        if name.endswith(".py"):
            path = Path(name) if Path(name).is_absolute() else (spec_dir or Path.cwd()) / name
            if not path.is_file():
                raise node.fail(f"no file {path} (the path is relative to the spec file)", key)
            folder = str(path.parent.resolve())
            if folder not in sys.path:
                sys.path.insert(0, folder)
            return importlib.import_module(path.stem)
        return importlib.import_module(name)
    except SpecError:
        raise
    except ModuleNotFoundError as e:
        missing = e.name or name
        near = did_you_mean(missing, [m for m in _siblings(missing)])
        raise node.fail(f"no module named '{missing}'" + (f" (while importing '{name}')" if missing != name else ""),
                        key, hint=near) from None
    except Exception as e:  # the user's module raised while importing: say so, where it is named
        raise node.fail(f"importing '{name}' failed: {type(e).__name__}: {str(e).splitlines()[0][:200] if str(e) else ''}",
                        key) from None


def _siblings(dotted: str) -> list[str]:
    """Module names importable beside the last part of `dotted` (for did-you-mean)."""
    import pkgutil
    head, _, _ = dotted.rpartition(".")
    try:
        path = importlib.import_module(head).__path__ if head else None
    except Exception:
        return []
    return [(f"{head}." if head else "") + m.name for m in pkgutil.iter_modules(path)]


def _attribute(module, attr: str, node, key: str):
    obj = module
    for part in attr.split("."):
        if not hasattr(obj, part):
            names = [n for n in dir(obj) if not n.startswith("_")]
            raise node.fail(f"'{getattr(module, '__name__', module)}' has no attribute '{attr}'", key, part,
                            hint=did_you_mean(part, names))
        obj = getattr(obj, part)
    return obj


def resolve(ref: str, spec_dir: Optional[Path], node, key: str) -> Any:
    """The object a "module:attribute" reference names."""
    name, _, attr = ref.rpartition(":")
    return _attribute(_module(name, spec_dir, node, key), attr, node, key)


def spec_dir(spec_path: Optional[Path]) -> Optional[Path]:
    return Path(spec_path).resolve().parent if spec_path is not None else None


def factory(spec: Spec, spec_path: Optional[Path]) -> Any:
    """The implementation's factory (SpecError if the spec names none or it does not resolve)."""
    system = spec.system
    if system.implementation is None:
        raise SpecError(f"system {system.name} names no implementation: add "
                        f"`implementation: \"package.module:Factory\"` (see `looplm init`)", node=system)
    obj = resolve(system.implementation, spec_dir(spec_path), system, "implementation")
    if not callable(obj):
        raise system.fail(f"implementation {system.implementation!r} is not callable", "implementation")
    return obj


def bind(spec: Spec, spec_path: Optional[Path], config: Optional[Path] = None,
         overrides: Optional[Mapping[str, Any]] = None) -> Any:
    """The system under test: factory(config=..., overrides=...)."""
    return factory(spec, spec_path)(config=config, overrides=dict(overrides or {}))


def bind_kernels(spec: Spec, spec_path: Optional[Path]) -> dict[str, BoundKernel]:
    """Every declared kernel's module, function and reference (SpecError where one is missing)."""
    out = {}
    here = spec_dir(spec_path)
    for k in spec.system.kernels:
        mod = _module(k.module, here, k, "module")
        fn = _attribute(mod, k.function, k, "function") if k.function else None
        ref = _attribute(mod, k.reference, k, "reference") if k.reference else None
        out[k.name] = BoundKernel(k, mod, fn, ref)
    return out
