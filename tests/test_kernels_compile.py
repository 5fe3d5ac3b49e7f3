"""Every declared kernel compiles ahead of time for sm_80, sm_90, sm_100 and sm_120 (no GPU
needed), and the spec's tile constants are the code's."""
import pytest
from typer.testing import CliRunner

import dsl
from app.cli import app
from verifier import binding, kernel_build


def bound(spec=None):
    spec = spec or dsl.load(dsl.BUNDLED)
    return list(binding.bind_kernels(spec, dsl.BUNDLED).values())


@pytest.mark.skipif(not kernel_build.cutile_installed(), reason="cuda-tile is not installed")
def test_every_kernel_compiles_for_all_four_architectures():
    # every kernel for its declared archs (the four; its first declared shape and signature),
    # and every declared shape and signature for sm_90, the lent H200's: the full cross product
    # (~90 compiles, ~10 min cold on 2 cores) is `looplm kernels compile` without --quick
    r = CliRunner().invoke(app, ["kernels", "compile", "--quick"])
    assert r.exit_code == 0, r.output
    assert built(r) == 4 * len(list(kernel_build.builds(bound(), quick=True))) == 20
    # a quick compile builds each kernel's own body, not a helper kernel listed before it
    assert {k.__name__ for _, _, k, _ in kernel_build.builds(bound(), quick=True)} == {
        "halting_update_kernel", "loop_attention_kernel", "looped_block_kernel", "loop_tile_kernel",
        "packed_mask_kernel"}
    r = CliRunner().invoke(app, ["kernels", "compile", "--arch", "sm_90"])
    assert r.exit_code == 0, r.output
    assert built(r) == len(list(kernel_build.builds(bound(), quick=False)))


def built(result) -> int:
    return int(result.stdout.strip().splitlines()[-1].split()[0])


def test_spec_tile_constants_match_the_code():
    assert kernel_build.tile_problems(bound()) == []


def test_drift_between_spec_and_code_is_reported():
    spec = dsl.load(dsl.BUNDLED)
    k = spec.system.kernel("halting_update")
    drifted = k.model_copy(update={"tiles": {**k.tiles, "BLOCK_M": 2 * k.tiles["BLOCK_M"]}})
    bk = next(b for b in bound() if b.spec.name == "halting_update")
    problems = kernel_build.tile_problems([binding.BoundKernel(drifted, bk.module, bk.function, bk.reference)])
    assert problems and f"BLOCK_M = {2 * k.tiles['BLOCK_M']}" in problems[0] and f"uses {k.tiles['BLOCK_M']}" in problems[0]


def test_bad_arch_is_a_usage_error():
    assert CliRunner().invoke(app, ["kernels", "compile", "--arch", "sm_75"]).exit_code == 2


@pytest.mark.skipif(not kernel_build.cutile_installed(), reason="cuda-tile is not installed")
def test_worker_warps_past_eight_only_with_bytecode_13_5(monkeypatch):
    """16 worker warps compile only to 13.5 bytecode: with a toolchain below it (cuda-tile's own
    `tileiras` extra, this machine's and CI's) or LOOPLM_BYTECODE=13.4, a kernel asking for 16
    gets 8, and options without warps are left alone."""
    from kernels import tile
    try:
        for env in ("13.4", None):
            tile.bytecode_13_5.cache_clear()
            if env:
                monkeypatch.setenv("LOOPLM_BYTECODE", env)
            else:
                monkeypatch.delenv("LOOPLM_BYTECODE", raising=False)
            wide = tile.bytecode_13_5()
            assert wide is False if env else isinstance(wide, bool)
            assert tile.compile_options({"num_worker_warps": 16, "occupancy": 1}) == {
                "num_worker_warps": 16 if wide else 8, "occupancy": 1}
            assert tile.compile_options({"num_worker_warps": 8}) == {"num_worker_warps": 8}
            assert tile.compile_options({}) == {}
    finally:
        tile.bytecode_13_5.cache_clear()


@pytest.mark.skipif(not kernel_build.cutile_installed(), reason="cuda-tile is not installed")
def test_tiled_loop_kernel_compiles_at_its_domains_narrow_edge():
    """The verifier's inference_parity also runs the model at its `variants` (other widths and
    head counts), and the differential draws widths down to MIN_D: there the tiled loop kernel
    must compile too, with and without halting. At D = 32, H = 2 (a parity variant) a 128-column
    MLP chunk inside the halting body's tile skip made tileiras 13.4 exit with code 5 on the H200;
    the declared shapes (all D = 128) did not show it. D = 32 is now outside the domain, so this
    compiles the variants' supported widths and D = MIN_D with the smallest head (16)."""
    from kernels import looped_tiled as LT
    spec = dsl.load(dsl.BUNDLED)
    shape = next(k for k in spec.system.kernels if k.name == "looped_tiled").shapes[0]
    widths = [(v["n_embd"], v["n_head"]) for v in spec.system.step("inference_parity").params["variants"]]
    widths += [(LT.MIN_D, LT.MIN_D // 16)]
    ran = []
    for D, H in widths:
        if not LT.supported(shape["B"], shape["T"], D, H, shape["V"]):
            continue
        for kernel, params in LT.aot_signatures(**{**shape, "D": D, "H": H}):
            if kernel is LT.loop_tile_kernel:
                # with the constraints a JIT launch has: without them the crash did not show
                assert kernel.export(kernel_build.jit_like(params), "sm_90", cache=False), (D, H)
                ran.append((D, H))
    assert (LT.MIN_D, LT.MIN_D // 16) in ran and not LT.supported(64, 303, 32, 2, 14)   # D = 32: outside
