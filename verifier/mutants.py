"""A system's bug catalog as mutants: does the protocol still catch every bug that cost days?

A catalog is a TOML file beside its spec (`SPEC.mutants.toml`):

    root = "../.."                 # the folder the paths below are relative to (from this file)
    copy = ["looplm", "kernels"]   # the system's code: copied, then mutated, one mutant at a time
    spec = "dsl/specs/looplm_system.dsl"

    [[mutant]]
    name = "loss_on_prompt"
    bug = 2                        # the brief's catalog number (leave out for others)
    file = "looplm/data.py"
    expect = "answer_only_targets" # the protocol step that must catch it
    what = "the loss is computed on the prompt too"
    edit = [{old = "...", new = "..."}]   # each `old` must occur in the file

Each mutant is one realistic edit of the real source, applied to a fresh copy of `copy`; the
whole protocol then runs against the copy in a subprocess (`looplm verify`, the copy first on
PYTHONPATH, so the spec binds to the mutated code; the report says which file it bound). A
mutant is *caught* when the protocol fails and the expected step is among the failures. An
edit that no longer applies is an error, never a silent pass.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

TOOLKIT = Path(__file__).resolve().parent.parent     # the folder holding app/, verifier/, dsl/ ...


@dataclass(frozen=True)
class Mutant:
    name: str
    bug: Optional[int]
    file: str                                # relative to the catalog's root
    edits: tuple[tuple[str, str], ...]       # (old, new): old must occur in the file
    expect: str
    what: str


@dataclass(frozen=True)
class Catalog:
    path: Path
    root: Path
    copy: tuple[str, ...]
    spec: str
    mutants: tuple[Mutant, ...]

    def named(self, names: Optional[set[str]]) -> list[Mutant]:
        if names:
            unknown = sorted(names - {m.name for m in self.mutants})
            if unknown:
                raise KeyError(f"no mutant named {', '.join(unknown)} "
                               f"(mutants: {', '.join(m.name for m in self.mutants)})")
        return [m for m in self.mutants if not names or m.name in names]


class CatalogError(Exception):
    """A catalog file that cannot be read as a mutant catalog."""


def catalog_for(spec: Path) -> Path:
    return Path(spec).with_suffix(".mutants.toml")


def load_catalog(path: Path) -> Catalog:
    try:
        data = tomllib.loads(Path(path).read_text(encoding="utf-8"))
        mutants = tuple(Mutant(m["name"], m.get("bug"), m["file"], tuple((e["old"], e["new"]) for e in m["edit"]),
                               m["expect"], m.get("what", "")) for m in data.get("mutant", []))
        return Catalog(Path(path), (Path(path).parent / data.get("root", ".")).resolve(), tuple(data["copy"]),
                       data["spec"], mutants)
    except (tomllib.TOMLDecodeError, KeyError, TypeError) as e:
        raise CatalogError(f"{path}: not a mutant catalog ({type(e).__name__}: {e})") from None


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


def mutate(root: Path, m: Mutant) -> None:
    path = root / m.file
    text = path.read_text()
    for old, new in m.edits:
        if old not in text:
            raise ValueError(f"mutant {m.name}: {m.file} no longer contains {old.strip()[:60]!r} (update the catalog)")
        text = text.replace(old, new)
    path.write_text(text)


def copy_system(cat: Catalog, dest: Path) -> None:
    for rel in cat.copy:
        src = cat.root / rel
        if src.is_dir():
            shutil.copytree(src, dest / rel, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        else:
            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / rel)


def spec_in(cat: Catalog, dest: Path) -> Path:
    """The spec to verify: the copy's, where the spec lies inside a copied folder."""
    inside = any(cat.spec == c or cat.spec.startswith(c.rstrip("/") + "/") for c in cat.copy)
    return dest / cat.spec if inside else cat.root / cat.spec


_CHILD = "import sys\nfrom app.cli import main\nsys.argv = ['looplm', *sys.argv[1:]]\nmain()"


def run_mutant(cat: Catalog, m: Optional[Mutant], timeout: float = 900, extra: tuple[str, ...] = ()) -> Outcome:
    """Apply `m` (None: the unmutated code) to a copy and run the whole protocol against it."""
    with tempfile.TemporaryDirectory(prefix="looplm-mutant-") as tmp:
        root = Path(tmp)
        copy_system(cat, root)
        if m is not None:
            mutate(root, m)
        report = root / "report.json"
        env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(root), str(TOOLKIT)]), "PYTHONDONTWRITEBYTECODE": "1"}
        t0 = time.perf_counter()
        proc = subprocess.run([sys.executable, "-c", _CHILD, "verify", "--spec", str(spec_in(cat, root)),
                               "--json", str(report), *extra], cwd=root, env=env, capture_output=True, text=True,
                              timeout=timeout)
        seconds = time.perf_counter() - t0
        name, bug, expect = (m.name, m.bug, m.expect) if m else ("none", None, "")
        if not report.exists():
            return Outcome(name, bug, expect, False, proc.returncode, seconds=seconds,
                           message=(proc.stderr or proc.stdout).strip()[-500:])
        data = json.loads(report.read_text())
        if not str(data.get("system_file", "")).startswith(str(root)):
            raise RuntimeError(f"the protocol verified {data.get('system_file')!r}, not the mutated copy in {root}")
    return _outcome(m, data["steps"], proc.returncode, seconds)


def _outcome(m: Optional[Mutant], steps: list[dict], code: int, seconds: float) -> Outcome:
    name, bug, expect = (m.name, m.bug, m.expect) if m else ("none", None, "")
    failed = [s["id"] for s in steps if s["status"] == "fail"]
    upto, elapsed = None, 0.0
    for s in steps:
        elapsed += s["seconds"]
        if s["id"] == expect:
            upto = round(elapsed, 2)
            break
    msg = next((s["message"] for s in steps if s["id"] == expect), "")
    caught = m is not None and code == 1 and expect in failed
    return Outcome(name, bug, expect, caught, code, failed, round(seconds, 2), upto, msg[:300])
