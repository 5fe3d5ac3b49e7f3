"""What a protocol runs against: the spec, the config being trained, an optional checkpoint."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

import torch

from dsl.model import Spec
from looplm.config import Config
from looplm.tokens import ADDITION, Vocab


@dataclass
class Target:
    spec: Spec
    config: Config = field(default_factory=Config)
    checkpoint: Optional[Path] = None
    device: str = "cpu"
    seed: int = 0

    @property
    def vocab(self) -> Vocab:
        return ADDITION

    def small(self, **model) -> Config:
        """The target's architecture at a size the checks can afford on a CPU in seconds:
        every design choice kept (position scheme, re-injection, halting, supervision)."""
        m = self.config.model
        width = min(m.n_embd, 64)
        heads = next(h for h in range(min(m.n_head, width), 0, -1) if width % h == 0 and (width // h) % 2 == 0)
        over = {"n_embd": width, "n_head": heads, "n_loops": min(m.n_loops, 8), "dropout": 0.0, **model}
        return self.config.override(model=over)

    def generator(self) -> torch.Generator:
        return torch.Generator().manual_seed(self.seed)
