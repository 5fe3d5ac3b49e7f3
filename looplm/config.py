"""One validated config for train, eval, checkpoints and the spec's design space.

Each sub-model mirrors one param group of the bundled spec (`architecture`, `halting`,
`training`, `data`); the verifier's `spec.config_sync` check fails if they drift apart.
Defaults train a tiny LoopLM on a 2-core CPU in minutes.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Literal, Optional

from pydantic import BaseModel, ConfigDict, Field, model_validator


class _Frozen(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ModelConfig(_Frozen):
    vocab_size: int = Field(14, ge=2)            # addition: 0-9 + = $ and pad
    n_embd: int = Field(64, ge=8)
    n_head: int = Field(4, ge=1)
    n_loops: int = Field(8, ge=1)                # L: block applications per forward
    tied: bool = True                            # one shared block; False = GPT-L (L blocks)
    mlp_ratio: int = Field(4, ge=1)
    dropout: float = Field(0.0, ge=0.0, lt=1.0)
    reinject: Literal["none", "add", "adapter"] = "add"      # x0 anchor each loop
    step_embedding: bool = False                 # add a learned loop-index vector each loop
    position: Literal["learned", "rope", "nope", "abacus", "relative", "windowed"] = "windowed"
    window: int = Field(1, ge=0)                 # windowed: digits attend within +-window places
    relative_clip: int = Field(3, ge=1)          # relative: bias buckets clipped at +-clip
    max_seq_len: int = Field(64, ge=4)           # learned positions / abacus indices
    abacus_max_offset: int = Field(32, ge=0)     # abacus: random index offset while training
    prefix_bidirectional: bool = False           # prompt tokens attend both ways (normal order)
    operators_top: bool = False                  # normal order: '+' and '=' sit at the carry-out column
    answer_isolated: bool = False                # answer tokens attend to the prompt and themselves only
    downward_window: bool = False                # windowed digits see only digits of their own or lower significance

    @model_validator(mode="after")
    def _heads(self) -> "ModelConfig":
        if self.n_embd % self.n_head:
            raise ValueError(f"n_embd {self.n_embd} is not divisible by n_head {self.n_head}")
        if self.position == "rope" and (self.n_embd // self.n_head) % 2:
            raise ValueError("rope needs an even head size")
        return self


class HaltingConfig(_Frozen):
    mode: Literal["fixed", "entropy", "wait", "gate"] = "fixed"
    threshold: float = Field(0.05, ge=0.0)       # halt when prediction entropy (nats) < this
    wait_threshold: float = Field(0.005, ge=0.0) # stricter threshold at/after the trigger token
    trigger: str = "="
    min_loops: int = Field(1, ge=1)
    gate_beta: float = Field(0.01, ge=0.0)       # weight of KL(halting || geometric prior)
    gate_prior: float = Field(0.2, gt=0.0, lt=1.0)   # geometric prior's per-loop halt prob
    gate_threshold: float = Field(0.5, gt=0.0, lt=1.0)  # halt once cumulative P(halt) passes


class TrainConfig(_Frozen):
    depth: Literal["fixed", "curriculum", "random"] = "fixed"
    curriculum: tuple[int, ...] = (2, 4, 8)      # loop counts, spread evenly over max_iters
    random_min_loops: int = Field(4, ge=1)       # Huginn-style: loops ~ U[min, max] per step
    random_max_loops: int = Field(12, ge=1)
    tbptt: int = Field(0, ge=0)                  # 0 = full BPTT, k = backprop last k loops
    supervision: Literal["last", "half", "all", "weighted"] = "last"
    # Bansal et al. 2022 (arXiv 2202.05826): loss = (1 - a) * the step's loss + a * the loss of k
    # loops run from the state after n loops taken without gradient (n, k drawn per step); 0 = off
    progressive: float = Field(0.0, ge=0.0, le=1.0)
    # each token keeps its state instead of taking a training loop's update with this probability
    # (asynchronous updates, as neural cellular automata train: Mordvintsev et al. 2020); 0 = off
    update_skip: float = Field(0.0, ge=0.0, le=0.9)
    batch_size: int = Field(128, ge=1)
    lr: float = Field(3e-3, gt=0.0)
    min_lr_ratio: float = Field(0.1, ge=0.0, le=1.0)
    warmup_iters: int = Field(50, ge=0)
    max_iters: int = Field(2500, ge=1)
    weight_decay: float = Field(0.1, ge=0.0)
    grad_clip: float = Field(1.0, ge=0.0)        # 0 = no clipping
    seed: int = 1337
    eval_interval: int = Field(100, ge=1)
    eval_problems: int = Field(1024, ge=1)
    target_accuracy: Optional[float] = Field(0.999, gt=0.0, le=1.0)  # stop once reached
    time_limit_s: Optional[float] = Field(None, gt=0.0)
    device: Literal["auto", "cpu", "cuda"] = "auto"
    dtype: Literal["auto", "float32", "bfloat16"] = "auto"   # auto: bf16 on GPU, fp32 on CPU

    @model_validator(mode="after")
    def _loops(self) -> "TrainConfig":
        if self.random_min_loops > self.random_max_loops:
            raise ValueError("random_min_loops > random_max_loops")
        if not self.curriculum or min(self.curriculum) < 1:
            raise ValueError("curriculum needs loop counts >= 1")
        return self


class DataConfig(_Frozen):
    task: Literal["addition", "chars"] = "addition"
    format: Literal["reversed", "normal"] = "reversed"   # reversed: both operands and sum LSB first
    min_digits: int = Field(1, ge=1)
    max_digits: int = Field(4, ge=1)
    chain_share: float = Field(0.0, ge=0.0, le=0.9)  # training problems drawn as carry chains / decoys
    text_path: Optional[str] = None              # chars: a local UTF-8 text file
    block_size: int = Field(64, ge=2)            # chars: tokens per training row

    @model_validator(mode="after")
    def _digits(self) -> "DataConfig":
        if self.min_digits > self.max_digits:
            raise ValueError("min_digits > max_digits")
        if self.task == "chars" and not self.text_path:
            raise ValueError("task 'chars' needs text_path")
        return self


class Config(_Frozen):
    model: ModelConfig = ModelConfig()
    halting: HaltingConfig = HaltingConfig()
    train: TrainConfig = TrainConfig()
    data: DataConfig = DataConfig()

    @model_validator(mode="after")
    def _consistent(self) -> "Config":
        need = max((self.train.random_max_loops if self.train.depth == "random" else 0),
                   (max(self.train.curriculum) if self.train.depth == "curriculum" else 0))
        if need > self.model.n_loops and not self.model.tied:
            raise ValueError(f"GPT-L has {self.model.n_loops} blocks; training asks for {need} loops")
        if self.model.operators_top and (self.data.format != "normal" or self.data.task != "addition"):
            raise ValueError("operators_top places '+' and '=' at a normal-order answer's top column: it needs "
                             "task addition in format normal")
        if self.model.downward_window and self.model.position != "windowed":
            raise ValueError("downward_window narrows the windowed scheme's window: it needs position windowed")
        if self.train.progressive and (not self.model.tied or self.halting.mode == "gate"):
            raise ValueError("progressive resumes the shared block from a mid-run state: it needs tied weights "
                             "and a loss that is not the learned gate's")
        if self.model.answer_isolated and self.data.task != "addition":
            raise ValueError("answer_isolated separates a problem's answer from its prompt: it needs task addition")
        return self

    @classmethod
    def load(cls, path: str | Path) -> "Config":
        """A JSON file of overrides: {"model": {"n_loops": 12}, "train": {...}}."""
        return cls.model_validate(json.loads(Path(path).read_text()))

    def override(self, **sections: dict) -> "Config":
        """A copy with some fields of some sections replaced (validated again)."""
        data = self.model_dump()
        for section, fields in sections.items():
            data[section] = {**data[section], **fields}
        return Config.model_validate(data)

    def with_params(self, values: dict) -> "Config":
        """A copy with fields replaced by their spec param names ({"max_iters": 10, "device":
        "cpu"}): the one way command-line and experiment overrides reach a config."""
        sections: dict[str, dict] = {}
        for name, value in values.items():
            section = SECTION_OF_FIELD.get(name)
            if section is None:
                raise ValueError(f"no config field named {name!r}")
            sections.setdefault(section, {})[name] = value
        return self.override(**sections) if sections else self

    def values(self) -> dict:
        """Every field by its spec param name (what the spec's ranges and rules are checked on)."""
        return {name: getattr(getattr(self, section), name) for name, section in SECTION_OF_FIELD.items()}


# the spec's param groups <-> the config's sections
GROUPS = {"architecture": ModelConfig, "halting": HaltingConfig, "training": TrainConfig,
          "data": DataConfig}
SECTION_OF = {"architecture": "model", "halting": "halting", "training": "train", "data": "data"}
SECTION_OF_FIELD = {name: SECTION_OF[group] for group, model in GROUPS.items() for name in model.model_fields}
