"""Every declared kernel compiles ahead of time for sm_80, sm_90, sm_100 and sm_120 (no GPU
needed), and the spec's tile constants are the code's."""
import pytest
from typer.testing import CliRunner

import dsl
from dsl import model as m
from kernels import aot
from kernels.tile import HAVE_CUTILE
from looplm.cli import app


@pytest.mark.skipif(not HAVE_CUTILE, reason="cuda-tile is not installed")
def test_every_kernel_compiles_for_all_four_architectures():
    # every kernel for all four archs (its first declared shape and signature), and every
    # declared shape and signature for sm_90, the lent H100's: the full cross product (88
    # compiles, ~10 min cold on 2 cores) is `looplm kernels compile` without --quick
    spec = dsl.load(dsl.BUNDLED)
    r = CliRunner().invoke(app, ["kernels", "compile", "--quick", "--arch", "sm_80,sm_90,sm_100,sm_120"])
    assert r.exit_code == 0, r.output
    assert built(r) == 4 * len(list(aot.builds(spec, quick=True))) == 12
    r = CliRunner().invoke(app, ["kernels", "compile", "--arch", "sm_90"])
    assert r.exit_code == 0, r.output
    assert built(r) == len(list(aot.builds(spec, quick=False)))


def built(result) -> int:
    return int(result.stdout.strip().splitlines()[-1].split()[0])


def test_spec_tile_constants_match_the_code():
    assert aot.tile_problems(dsl.load(dsl.BUNDLED)) == []


def test_drift_between_spec_and_code_is_reported():
    spec = dsl.load(dsl.BUNDLED)
    k = spec.system.kernel("halting_update")
    drifted = k.model_copy(update={"tiles": {**k.tiles, "BLOCK_M": 2 * k.tiles["BLOCK_M"]}})
    system = spec.system.model_copy(update={"kernels": (drifted,) + spec.system.kernels[1:]})
    problems = aot.tile_problems(m.Spec(meta=spec.meta, system=system))
    assert problems and f"BLOCK_M = {2 * k.tiles['BLOCK_M']}" in problems[0] and f"uses {k.tiles['BLOCK_M']}" in problems[0]


def test_bad_arch_is_a_usage_error():
    assert CliRunner().invoke(app, ["kernels", "compile", "--arch", "sm_75"]).exit_code == 2
