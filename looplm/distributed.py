"""Data parallelism with torch.distributed: what one replica needs to know about the others.

`World.single()` is the one-process case (every collective is the identity), so the training
loop has one code path. Under torchrun, `World.from_env()` joins the process group: NCCL on
GPUs, gloo on CPUs. NVLink multicast stays off (NCCL_NVLS_ENABLE=0): the multi-GPU machines
we use require it.
"""
from __future__ import annotations

import datetime
import os
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist


def launched_by_torchrun() -> bool:
    return "RANK" in os.environ and "WORLD_SIZE" in os.environ


@dataclass
class World:
    rank: int
    size: int
    local_rank: int
    device: torch.device
    ddp: bool

    @classmethod
    def single(cls, device: torch.device | None = None) -> "World":
        return cls(0, 1, 0, device or torch.device("cpu"), False)

    @classmethod
    def from_env(cls, device_pref: str = "auto", timeout_s: float = 120.0) -> "World":
        rank, size = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
        local = int(os.environ.get("LOCAL_RANK", rank))
        cuda = torch.cuda.is_available() and device_pref != "cpu"
        if cuda:
            os.environ.setdefault("NCCL_NVLS_ENABLE", "0")
            torch.cuda.set_device(local)
        dist.init_process_group("nccl" if cuda else "gloo", timeout=datetime.timedelta(seconds=timeout_s))
        return cls(rank, size, local, torch.device(f"cuda:{local}" if cuda else "cpu"), True)

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def wrap(self, model: torch.nn.Module) -> torch.nn.Module:
        if not self.ddp:
            return model
        from torch.nn.parallel import DistributedDataParallel as DDP
        cfg = getattr(model, "config", None)
        # an untied GPT-L trained on fewer loops than blocks leaves blocks without gradients
        unused = bool(cfg and not cfg.model.tied and cfg.train.depth != "fixed")
        return DDP(model, device_ids=[self.local_rank] if self.device.type == "cuda" else None,
                   find_unused_parameters=unused)

    def _reduce(self, value: float, op) -> float:
        if not self.ddp:
            return value
        t = torch.tensor([float(value)], dtype=torch.float64, device=self.device)
        dist.all_reduce(t, op=op)
        return float(t.item())

    def sum(self, value: float) -> float:
        return self._reduce(value, dist.ReduceOp.SUM)

    def mean(self, value: float) -> float:
        return self.sum(value) / self.size

    def agree(self, value: Any, op: str = "broadcast") -> Any:
        """Every rank gets rank 0's value (or the max over ranks, with op='max')."""
        if not self.ddp:
            return value
        if op == "max":
            return type(value)(self._reduce(value, dist.ReduceOp.MAX))
        box = [value]
        dist.broadcast_object_list(box, src=0)
        return box[0]

    def gather(self, value: Any) -> list[Any]:
        """Every rank's value, in rank order (on every rank)."""
        if not self.ddp:
            return [value]
        box: list[Any] = [None] * self.size
        dist.all_gather_object(box, value)
        return box

    def close(self) -> None:
        if self.ddp and dist.is_initialized():
            dist.destroy_process_group()
