"""The bug catalog as mutants: does the protocol still catch every bug that cost the user days?

Each mutant is one realistic edit of the real source (the brief's bug, written the way it was
written), applied to a fresh copy of the packages; `looplm verify` then runs the whole
protocol against the copy in a subprocess. A mutant is *caught* when the protocol fails and
the step the catalog names is among the failures. An edit that no longer applies (the code it
targets moved) is an error, never a silent pass.

    from verifier.mutants import MUTANTS, run_mutant
    outcome = run_mutant(MUTANTS[0])
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

PACKAGES = ("dsl", "looplm", "kernels", "verifier", "knowledge_base", "rca")


@dataclass(frozen=True)
class Mutant:
    name: str
    bug: Optional[int]              # the brief's catalog number (None: found while building this)
    file: str                       # relative to the packages' parent
    edits: tuple[tuple[str, str], ...]   # (old, new): old must occur in the file
    expect: str                     # the protocol step that must catch it
    what: str


MUTANTS: tuple[Mutant, ...] = (
    Mutant("random_slicing", 1, "looplm/data.py", ((
        "        yield make_batch(step[rank * batch_size:(rank + 1) * batch_size], fmt)",
        "        # one token stream, cut into windows at random offsets (nanoGPT's get_batch)\n"
        "        rows = [make_batch([p], fmt).idx[0].tolist() for p in step]\n"
        "        flat = [t for r in rows for t in r if t != vocab_pad()]\n"
        "        T = max(len(r) for r in rows)\n"
        "        starts = [rng.randrange(max(1, len(flat) - T)) for _ in range(batch_size)]\n"
        "        b = make_batch(step[rank * batch_size:(rank + 1) * batch_size], fmt)\n"
        "        b.idx[:, :T] = torch.tensor([flat[s:s + T] for s in starts])[:, :b.idx.shape[1]]\n"
        "        yield b"),
        ("def make_batch(", "def vocab_pad() -> int:\n    return ADDITION.pad_id\n\n\ndef make_batch(")),
        "aligned_batches", "batches cut out of a concatenated stream start mid-problem"),
    Mutant("loss_on_prompt", 2, "looplm/data.py", ((
        "        targets[i, pl - 1: len(s) - 1] = row[pl:]",
        "        targets[i, : len(s) - 1] = row[1:]"),),
        "answer_only_targets", "the loss is computed on the prompt too, not only on the answer"),
    Mutant("eval_format_wins", 3, "looplm/evaluate.py", ((
        "    own = model.config.data.format\n",
        "    own = fmt or model.config.data.format   # the eval's format wins\n"),),
        "format_parity", "eval feeds its own format to a model trained on another (the 9.1% illusion)"),
    Mutant("state_detached", 4, "looplm/model.py", ((
        "                h, steps = new, steps + real.int()",
        "                h, steps = new.detach(), steps + real.int()"),),
        "autograd_connectivity", "the state handed to the next loop is cut from the graph: only the last loop learns"),
    Mutant("zero_padded_vocab", 5, "kernels/halting.py", (
        ("padding_mode=ct.PaddingMode.NEG_INF)", "padding_mode=ct.PaddingMode.ZERO)"),
        ("padding_value=-INF)", "padding_value=0.0)"),
        ("real = ct.arange(BLOCK_V, dtype=ct.int32)[None, :] < V ", "real = ct.arange(BLOCK_V, dtype=ct.int32)[None, :] < BLOCK_V ")),
        "padded_vocab_mask", "padded vocab columns filled with 0 count exp(0) = 1 in the softmax sum"),
    Mutant("nan_halt_trap", 6, "kernels/halting.py", ((
        "    ez = ct.sum(ct.where(e > 0.0, e * z, 0.0), axis=1", "    ez = ct.sum(e * z, axis=1"),),
        "nan_guard", "0 * (-inf) = NaN in impossible columns; NaN < threshold halts every token"),
    Mutant("skip_tiles", 7, "kernels/halting.py", ((
        "index=(bid, j)", "index=(bid * BLOCK_M, j)"),),
        "tile_index_probe", "ct.load/ct.store take tile indices; multiplying by the tile size skips tiles"),
    Mutant("unpadded_tiles", 8, "kernels/halting.py", ((
        "    block_v = next_pow2(V)", "    block_v = V"),),
        "kernel_compile", "the vocabulary tile is the vocabulary's size (65, 14): not a power of two"),
    Mutant("non_strict_load", 9, "looplm/checkpoint.py", ((
        "    own = model.state_dict()\n    missing",
        "    own = model.state_dict()\n"
        "    model.load_state_dict({k: v for k, v in state.items() if k in own and v.shape == own[k].shape}, strict=False)\n"
        "    return\n    missing"),),
        "strict_checkpoint_load", "strict=False with mismatched keys dropped: lm_head stays random on a new vocabulary"),
    Mutant("tuple_in_eval", 10, "looplm/model.py", ((
        "        halt = Halting(steps, ent, applications, real.sum() * L, ponder)\n        return Output(logits, loss, halt)",
        "        halt = Halting(steps, ent, applications, real.sum() * L, ponder)\n"
        "        if not self.training:\n            return logits, halt\n        return Output(logits, loss, halt)"),),
        "forward_contract", "forward returns another shape of tuple at inference than in training"),
    Mutant("first_loop_supervised", 11, "looplm/model.py", ((
        "        w = [0.0] * (L - 1) + [1.0]", "        w = [1.0] + [0.0] * (L - 1)"),),
        "supervision_schedule", "'last' supervises loop 0: answers forced before any thinking"),
    Mutant("no_eval_loss", 12, "looplm/model.py", ((
        "            if not self.training:\n                loss = self._ce(logits, targets)",
        "            if not self.training:\n                pass                     # inference needs no loss"),),
        "eval_mode_loss", "the inference path skips the loss: estimate_loss crashes on None"),
    Mutant("stale_weight_cache", None, "kernels/dispatch.py", ((
        "    w = looped_block.weights_of(model)\n",
        "    key = tuple((p.data_ptr(), p._version) for p in model.parameters())\n"
        "    if getattr(model, '_packed_key', None) != key:\n"
        "        model._packed_key, model._packed = key, looped_block.weights_of(model)\n"
        "    w = model._packed\n"),),
        "inference_parity", "packed kernel weights cached by tensor version: fused AdamW does not bump it"),
)


@dataclass
class Outcome:
    name: str
    bug: Optional[int]
    expect: str
    caught: bool
    exit_code: int
    failed_steps: list[str] = field(default_factory=list)
    seconds: float = 0.0
    catch_seconds: Optional[float] = None     # time of the protocol up to the expected step
    message: str = ""


def source_root() -> Path:
    """The directory that holds the packages (a checkout or site-packages)."""
    return Path(__file__).resolve().parent.parent


def mutate(root: Path, m: Mutant) -> None:
    path = root / m.file
    text = path.read_text()
    for old, new in m.edits:
        if old not in text:
            raise ValueError(f"mutant {m.name}: {m.file} no longer contains {old.strip()[:60]!r} (update the catalog)")
        text = text.replace(old, new)
    path.write_text(text)


def copy_packages(dest: Path) -> None:
    src = source_root()
    for pkg in PACKAGES:
        shutil.copytree(src / pkg, dest / pkg, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    for evidence in ("results", "bench"):    # what the knowledge base's claims are checked against
        if (src / evidence).is_dir():
            (dest / evidence).symlink_to(src / evidence, target_is_directory=True)


def run_mutant(m: Optional[Mutant], timeout: float = 600, extra: tuple[str, ...] = ()) -> Outcome:
    """Apply `m` (None: the unmutated code) to a copy and run the whole protocol against it."""
    with tempfile.TemporaryDirectory(prefix="looplm-mutant-") as tmp:
        root = Path(tmp)
        copy_packages(root)
        if m is not None:
            mutate(root, m)
        report = root / "report.json"
        env = {**os.environ, "PYTHONPATH": str(root), "PYTHONDONTWRITEBYTECODE": "1"}
        code = ("import sys, looplm; assert looplm.__file__.startswith(sys.argv[1]), looplm.__file__\n"
                "from looplm.cli import main; sys.argv = ['looplm', *sys.argv[2:]]; main()")
        t0 = time.perf_counter()
        proc = subprocess.run([sys.executable, "-c", code, str(root), "verify", "--json", str(report), *extra],
                              cwd=root, env=env, capture_output=True, text=True, timeout=timeout)
        seconds = time.perf_counter() - t0
        name, bug, expect = (m.name, m.bug, m.expect) if m else ("none", None, "")
        if not report.exists():
            return Outcome(name, bug, expect, False, proc.returncode, seconds=seconds,
                           message=(proc.stderr or proc.stdout).strip()[-500:])
        steps = json.loads(report.read_text())["steps"]
    failed = [s["id"] for s in steps if s["status"] == "fail"]
    upto, elapsed = None, 0.0
    for s in steps:
        elapsed += s["seconds"]
        if s["id"] == expect:
            upto = round(elapsed, 2)
            break
    msg = next((s["message"] for s in steps if s["id"] == expect), "")
    caught = m is not None and proc.returncode == 1 and expect in failed
    return Outcome(name, bug, expect, caught, proc.returncode, failed, round(seconds, 2), upto, msg[:300])
