"""Checkpoints that carry everything needed to use them correctly.

A checkpoint holds the weights, the full config, the data format, the vocabulary and the git
commit, and loads with `torch.load(weights_only=True)`. Loading is strict: a missing or extra
tensor, a shape or vocabulary mismatch is an error that names what differs, never a partial
load that leaves a random head behind (bug 9).
"""
from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

import torch
from pydantic import ValidationError

from .config import Config
from .model import LoopLM
from .provenance import git_commit
from .tokens import Vocab

FORMAT_VERSION = 1


class CheckpointError(Exception):
    """A checkpoint that cannot be used as asked."""


@dataclass
class Loaded:
    model: LoopLM
    config: Config
    vocab: Vocab
    meta: dict[str, Any]
    optimizer: Optional[dict] = None
    rng: Optional[torch.Tensor] = None      # torch's CPU RNG state when saved (exact resume)


def save(path: str | Path, model: LoopLM, *, step: int = 0, optimizer: Optional[dict] = None,
         dtype: Optional[torch.dtype] = None, extra: Optional[dict] = None, rng: Optional[torch.Tensor] = None) -> Path:
    """Write atomically. `dtype=torch.bfloat16` halves the file (weights only)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    state = {k: (v.to(dtype) if dtype is not None and v.is_floating_point() else v).detach().cpu()
             for k, v in model.state_dict().items()}
    payload = {"format_version": FORMAT_VERSION, "model": state, "config": model.config.model_dump(mode="json"),
               "data_format": model.config.data.format, "task": model.config.data.task,
               "vocab": model.vocab.chars, "pad": model.vocab.pad, "git_commit": git_commit(),
               "step": step, "extra": extra or {}}
    if optimizer is not None:
        payload["optimizer"] = optimizer
    if rng is not None:
        payload["rng"] = rng
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    os.close(fd)
    try:
        torch.save(payload, tmp)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def load(path: str | Path, map_location: str = "cpu", *, expect_vocab: Optional[Vocab] = None) -> Loaded:
    """Strictly load a checkpoint into a fresh model built from its own config."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(2, "no such checkpoint", str(path))
    try:
        payload = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as e:
        raise CheckpointError(f"{path}: not a readable checkpoint ({type(e).__name__}: {str(e)[:200]})") from None
    if not isinstance(payload, dict):
        raise CheckpointError(f"{path}: not a LoopLM checkpoint (holds a {type(payload).__name__}, not a dict)")
    for key in ("model", "config", "data_format", "vocab", "pad"):
        if key not in payload:
            raise CheckpointError(f"{path}: checkpoint lacks '{key}' (it cannot say how it must be used)")
    try:
        config = Config.model_validate(payload["config"])
        vocab = Vocab(payload["vocab"], pad=payload["pad"])
    except (ValidationError, ValueError, TypeError) as e:
        raise CheckpointError(f"{path}: the checkpoint's config or vocabulary is invalid ({str(e).splitlines()[0][:200]})") from None
    if expect_vocab is not None and expect_vocab.chars != vocab.chars:
        raise CheckpointError(f"{path}: vocabulary {vocab.chars!r} differs from the expected {expect_vocab.chars!r}")
    if config.data.format != payload["data_format"]:
        raise CheckpointError(f"{path}: config says format {config.data.format}, checkpoint {payload['data_format']}")
    try:
        model = LoopLM(config, vocab).to(map_location)
    except ValueError as e:
        raise CheckpointError(f"{path}: {e}") from None
    if not isinstance(payload["model"], dict):
        raise CheckpointError(f"{path}: its weights are not a state dict")
    load_strict(model, payload["model"], where=str(path))
    return Loaded(model, config, vocab, {k: payload.get(k) for k in ("git_commit", "step", "extra", "format_version")},
                  payload.get("optimizer"), payload.get("rng"))


def load_strict(model: torch.nn.Module, state: dict[str, torch.Tensor], where: str = "state") -> None:
    """load_state_dict(strict=True), with shape mismatches named before torch sees them."""
    own = model.state_dict()
    missing = sorted(set(own) - set(state))
    extra = sorted(set(state) - set(own))
    shapes = [f"{k}: {tuple(state[k].shape)} vs model {tuple(own[k].shape)}"
              for k in sorted(set(own) & set(state)) if state[k].shape != own[k].shape]
    if missing or extra or shapes:
        parts = ([f"missing {missing[:5]}"] if missing else []) + ([f"unexpected {extra[:5]}"] if extra else []) \
            + ([f"shape mismatch {shapes[:5]}"] if shapes else [])
        raise CheckpointError(f"{where}: refusing a partial load: " + "; ".join(parts))
    model.load_state_dict({k: v.to(own[k].dtype) for k, v in state.items()}, strict=True)
