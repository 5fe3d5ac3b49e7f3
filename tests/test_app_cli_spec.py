"""`looplm spec ...` through typer's CliRunner: exit codes, messages, never a traceback."""
import json
import random

import pytest
from typer.testing import CliRunner

import dsl
from app.cli import app
from tests.mutations import mutate

runner = CliRunner()


def run(*args):
    return runner.invoke(app, list(map(str, args)))


def test_check_bundled_spec_passes():
    r = run("spec", "check", dsl.BUNDLED)
    assert r.exit_code == 0, r.output
    assert "ok" in r.stdout and f"{len(dsl.load(dsl.BUNDLED).system.steps)} steps" in r.stdout


def test_check_bad_spec_exit_1_with_location(tmp_path):
    p = tmp_path / "bad.dsl"
    p.write_text('system S {\n  protocol { step a { chek: c } }\n}\n')
    r = run("spec", "check", p)
    assert r.exit_code == 1
    assert f"{p}:2:23: unknown key 'chek'" in r.stderr and "did you mean 'check'?" in r.stderr
    assert "^" in r.stderr and "Traceback" not in r.output


def test_missing_file_is_a_usage_error(tmp_path):
    r = run("spec", "check", tmp_path / "nope.dsl")
    assert r.exit_code == 2 and "no such file" in r.stderr


def test_fmt_check_and_rewrite(tmp_path):
    p = tmp_path / "s.dsl"
    p.write_text('system S { protocol { step a { check: c  // why\n gates: true } } }')
    assert run("spec", "fmt", "--check", p).exit_code == 1
    assert run("spec", "fmt", p).exit_code == 0
    text = p.read_text()
    assert "// why" in text and run("spec", "fmt", "--check", p).exit_code == 0
    assert dsl.loads(text).system.steps[0].gates is True


def test_show_prints_canonical_text():
    r = run("spec", "show")
    assert r.exit_code == 0 and "system LoopLM {" in r.stdout


def test_schema_is_json_schema():
    r = run("spec", "schema")
    schema = json.loads(r.stdout)
    assert r.exit_code == 0 and schema["title"] == "Spec" and "system" in schema["properties"]


@pytest.mark.parametrize("seed", range(40))
def test_no_traceback_for_any_bad_input(tmp_path, seed):
    data = mutate(dsl.BUNDLED.read_text(), random.Random(seed))
    p = tmp_path / "m.dsl"
    p.write_bytes(data if isinstance(data, bytes) else data.encode("utf-8", "surrogatepass"))
    for cmd in (["spec", "check", p], ["spec", "show", p], ["spec", "fmt", "--check", p]):
        r = run(*cmd)
        assert r.exit_code in (0, 1), (cmd, r.output)
        assert r.exception is None or isinstance(r.exception, SystemExit), r.exception
        assert "Traceback" not in r.output
