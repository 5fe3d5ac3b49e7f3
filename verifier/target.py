"""What a protocol runs against: the spec, the system it binds to, an optional checkpoint.

    target = load_target(Path("dsl/specs/looplm_system.dsl"))     # spec -> system, validated
    report = verifier.run(target)
"""
from __future__ import annotations

import functools
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Optional

import torch

import dsl
from dsl.model import Spec

from . import binding
from .contract import CAPABILITIES, Design, MissingCapability, provides, validated

DEVICES = ("cpu", "cuda")


class DeviceUnavailable(Exception):
    """--device cuda where no usable GPU (CUDA and cuda.tile) is present: refused, not emulated."""


@dataclass
class Target:
    spec: Spec
    system: Any
    spec_path: Optional[Path] = None
    checkpoint: Optional[Path] = None
    device: str = "cpu"          # where the kernel checks run: cpu (the emulator) or cuda (cuTile)
    seed: int = 0
    kernels: dict = field(default_factory=dict)     # spec kernel name -> binding.BoundKernel
    only_kernels: Optional[tuple[str, ...]] = None  # kernel steps check only these (a GPU test's shard)
    differential_part: Optional[str] = None         # 'declared', 'declared:N' or 'drawn' shapes only (a GPU test's shard)
    memo: dict = field(default_factory=dict)        # what several steps of one run share (verifier.checks.taught)
    config: Optional[Path] = None                   # the system's config file and overrides, as bound
    overrides: dict = field(default_factory=dict)

    def need(self, capability: str) -> Any:
        """The system, if it provides `capability` (else the step is skipped, naming it)."""
        if capability not in CAPABILITIES:
            raise KeyError(capability)
        if not provides(self.system, capability):
            raise MissingCapability(capability, self.system)
        return self.system

    def variant(self, overrides: Mapping[str, Any]) -> Any:
        """The system bound again with `overrides` (spec param names) on top of this target's:
        a check that needs the architecture at another point of its declared ranges."""
        return binding.bind(self.spec, self.spec_path, config=self.config, overrides={**self.overrides, **overrides})

    @functools.cached_property
    def design(self) -> Design:
        return validated(Design, self.need("design").design(), "design()")

    @property
    def where(self) -> str:
        """Where kernels ran, in words for messages: never a GPU claim for an emulated run."""
        return "cuTile on the GPU" if self.device == "cuda" else "the CPU emulator"

    def torch_device(self) -> torch.device:
        return torch.device(self.device)

    def generator(self) -> torch.Generator:
        return torch.Generator().manual_seed(self.seed)


def check_device(device: str) -> None:
    """Refuse a device that cannot be honoured (one line, no silent fallback to the emulator)."""
    if device not in DEVICES:
        raise DeviceUnavailable(f"--device must be one of {', '.join(DEVICES)}, not {device!r}")
    if device == "cuda":
        if not torch.cuda.is_available():
            raise DeviceUnavailable("--device cuda: no CUDA GPU is visible here (the kernel checks would run on "
                                    "the CPU emulator; use --device cpu for that)")
        try:
            import cuda.tile  # noqa: F401
        except Exception as e:
            raise DeviceUnavailable(f"--device cuda: cuda.tile does not import ({type(e).__name__}: {e})") from None


def validate_spec(spec_path: Path) -> Spec:
    """Everything `load_target` checks of the spec itself, without building the system: syntax,
    types, cross-references, check names and params, symptom detectors, and that the
    implementation and every kernel function and reference resolve. SpecError, located."""
    from .runner import validate
    spec_path = Path(spec_path)
    spec = dsl.loads(spec_path.read_bytes(), file=str(spec_path))
    try:
        validate(spec)
        binding.factory(spec, spec_path)
        binding.bind_kernels(spec, spec_path)
    except dsl.SpecError as e:
        raise spec.error(e) from None
    return spec


def load_target(spec_path: Path, *, config: Optional[Path] = None, checkpoint: Optional[Path] = None,
                device: str = "cpu", overrides: Optional[Mapping[str, Any]] = None, seed: int = 0) -> Target:
    """Read, validate and bind a spec; refuse a device that cannot run and a config outside the
    spec's declared ranges. Raises SpecError located in the spec file, ConfigRefused or
    DeviceUnavailable; a missing spec file is FileNotFoundError."""
    from .ranges import refuse_out_of_range
    from .runner import validate
    check_device(device)
    spec_path = Path(spec_path)
    spec = dsl.loads(spec_path.read_bytes(), file=str(spec_path))
    try:
        validate(spec)
        system = binding.bind(spec, spec_path, config=config, overrides=overrides)
        kernels = binding.bind_kernels(spec, spec_path)
    except dsl.SpecError as e:
        raise spec.error(e) from None
    target = Target(spec, system, spec_path, checkpoint, device, seed, kernels, config=config,
                    overrides=dict(overrides or {}))
    refuse_out_of_range(target)
    return target
