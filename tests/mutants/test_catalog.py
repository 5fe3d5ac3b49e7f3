"""Every catalogued bug, written into a copy of the real source, is caught by the protocol step
the catalog names; the unmutated copy passes (so a catch is the bug's doing, not the copy's)."""
import pytest
from typer.testing import CliRunner

from looplm.cli import app
from verifier.mutants import MUTANTS, Mutant, mutate, run_mutant


def test_unmutated_copy_passes():
    o = run_mutant(None)
    assert o.exit_code == 0 and not o.failed_steps, o.message


@pytest.mark.parametrize("m", MUTANTS, ids=[m.name for m in MUTANTS])
def test_mutant_is_caught_by_its_step(m):
    o = run_mutant(m)
    assert o.caught, f"{m.name} (bug {m.bug}) escaped: exit {o.exit_code}, failed {o.failed_steps}: {o.message}"


def test_catalog_covers_every_bug_of_the_brief():
    assert {m.bug for m in MUTANTS} >= set(range(1, 13))


def test_an_edit_that_no_longer_applies_is_an_error(tmp_path):
    (tmp_path / "f.py").write_text("x = 1\n")
    with pytest.raises(ValueError, match="update the catalog"):
        mutate(tmp_path, Mutant("gone", None, "f.py", (("y = 2", "y = 3"),), "step", "moved code"))


def test_cli_rejects_unknown_mutants():
    r = CliRunner().invoke(app, ["mutants", "--only", "no_such_bug"])
    assert r.exit_code == 2 and "no mutant named no_such_bug" in r.stderr
