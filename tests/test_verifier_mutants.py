"""Every catalogued bug, written into a copy of the real source, is caught by the protocol step
the catalog names, for the bundled LoopLM and for the independent example system; each
unmutated copy passes (so a catch is the bug's doing, not the copy's)."""
from pathlib import Path

import pytest
from typer.testing import CliRunner

import dsl
from app.cli import app
from verifier.mutants import Catalog, CatalogError, Mutant, catalog_for, load_catalog, mutate, run_mutant

ROOT = Path(__file__).resolve().parents[1]
CATALOGS = {"looplm": load_catalog(catalog_for(dsl.BUNDLED)),
            "nanoloop": load_catalog(catalog_for(ROOT / "examples" / "nanoloop" / "system.dsl"))}
CASES = [(name, m) for name, cat in CATALOGS.items() for m in cat.mutants]


@pytest.mark.parametrize("name", CATALOGS)
def test_unmutated_copy_passes(name):
    o = run_mutant(CATALOGS[name], None)
    assert o.exit_code == 0 and not o.failed_steps, o.message


@pytest.mark.parametrize("name,m", CASES, ids=[f"{n}-{m.name}" for n, m in CASES])
def test_mutant_is_caught_by_its_step(name, m):
    o = run_mutant(CATALOGS[name], m)
    assert o.caught, f"{m.name} (bug {m.bug}) escaped: exit {o.exit_code}, failed {o.failed_steps}: {o.message}"


def test_catalogs_cover_every_bug_of_the_brief():
    assert {m.bug for m in CATALOGS["looplm"].mutants} >= set(range(1, 13))
    # nanoloop has no kernels: bugs 5-8 are kernel bugs
    assert {m.bug for m in CATALOGS["nanoloop"].mutants} >= {1, 2, 3, 4, 9, 10, 11, 12}


def test_an_edit_that_no_longer_applies_is_an_error(tmp_path):
    (tmp_path / "f.py").write_text("x = 1\n")
    with pytest.raises(ValueError, match="update the catalog"):
        mutate(tmp_path, Mutant("gone", None, "f.py", (("y = 2", "y = 3"),), "step", "moved code"))


def test_a_broken_catalog_is_a_clear_error(tmp_path):
    bad = tmp_path / "s.mutants.toml"
    bad.write_text("copy = [\n")
    with pytest.raises(CatalogError, match="not a mutant catalog"):
        load_catalog(bad)
    assert isinstance(CATALOGS["looplm"], Catalog)


def test_cli_rejects_unknown_mutants():
    r = CliRunner().invoke(app, ["mutants", "--only", "no_such_bug"])
    assert r.exit_code == 2 and "no mutant named no_such_bug" in r.stderr
