"""Errors a person can act on: the table of common mistakes, semantic errors at the right line."""
import pytest

import dsl
from dsl.messages import EXAMPLES


@pytest.mark.parametrize("label,example", [(k, ex) for k, (_, exs) in EXAMPLES.items() for ex in exs])
def test_every_example_in_the_table_gets_its_message(label, example):
    with pytest.raises(dsl.SpecError) as info:
        dsl.loads(example, file="bad.dsl")
    e = info.value
    assert e.message == EXAMPLES[label][0]
    assert e.line >= 1 and e.column >= 1
    assert "__ANON" not in str(e) and "^" in str(e)
    assert str(e).startswith(f"bad.dsl:{e.line}:{e.column}: ")


# (source, words the message must contain, line, column)
SEMANTIC = [
    ('system S { objective { goal: "abc } }', "unterminated string", 1, 30),
    ('system S {\n  protocl { }\n}', "unknown section 'protocl' (did you mean 'protocol'?)", 2, 3),
    ('system S { protocol {\n  step a { check: c }\n  step a { check: d }\n} }', "duplicate step id 'a'", 3, 8),
    ('system S { protocol { step a { check: c\n timeout: "soon" } } }', "'timeout' expects a number, got the string \"soon\"", 2, 11),
    ('system S { baseline g {\n layers: "12" } }', "'layers' expects an integer", 2, 10),
    ('system S { protocol { step a {\n  chek: c } } }', "unknown key 'chek' in step 'a' (did you mean 'check'?)", 2, 3),
    ('system S { protocol { step a { check: c\n needs: [x, b] } } }', "step 'a' needs undefined step 'x'", 2, 10),
    ('system S { protocol {\n step a { check: c needs: [b] }\n step b { check: c } } }', "which comes later", 2, 28),
    ('system S { protocol { step a { check: c\n uses: [kernel.halt] } } }', "uses undefined section 'kernel.halt'", 2, 16),
    ('system S { kernel k { module: "k.py"\n tiles: {A: 64, B: 96} } }', "tile B = 96 is not a power of two", 2, 17),
    ('system S { kernel k { module: "k.py" reduction: softmax\n padding: zero mask_columns_by: V } }', "exp(0) = 1", 2, 11),
    ('system S { kernel k { module: "k.py" reduction: entropy padding: neg_inf } }', "needs `mask_columns_by`", 1, 49),
    ('system S { kernel k { module: "k.py"\n index_units: elements } }', "index units must be tiles", 2, 15),
    ('system S {\n implementation: "no colon" }', "must look like 'package.module:factory'", 2, 18),
    ('system S {\n implementation: "a:B"\n implementation: "c:D" }', "duplicate 'implementation'", 3, 2),
    ('system S { architecture { param position: enum = rope in [rope, nope] }\n'
     ' knowledge { rule r { when: postion == rope apply: "x" } } }', "unknown param 'postion' (did you mean 'position'?)", 2, 29),
    ('system S { architecture { param position: enum = rope in [rope, nope] }\n'
     ' knowledge { rule r { when: position == rpoe apply: "x" } } }', "'rpoe' is not a value of param 'position'", 2, 41),
    ('system S { architecture { param n: int = 99 in 1..64 } }', "outside its allowed values", 1, 42),
    ('system S { objective { goal: learn } }', "'goal' expects a \"quoted string\", got the name learn", 1, 30),
    ('system S { objective {\n goal: "a"\n goal: "b" } }', "duplicate key 'goal'", 3, 2),
    ('system S { objective { goal: "a" }\n objective { goal: "b" } }', "duplicate section 'objective'", 2, 2),
    ('---\ndate: 2026-13-45\n---\nsystem S {}', "not a valid date", 2, 7),
    ('system S { objective { goal: "a\\q" } }', "bad escape", 1, 32),
    ('system S { objective { goal: ' + "[" * 60 + "]" * 60 + ' } }', "nesting deeper", 1, 76),
    ('system S { knowledge { fact f { statement: "s" claim: a.b >= 1 } } }', "no `evidence` file", 1, 55),
    ('system S { objective { goal: "g" success: [1, 2] } }', "'success' expects", 1, 43),
    # found by bench/dsl_fuzz.py: huge numbers, reserved words as choices, empty ranges
    ('system S { objective { goal: ' + "9" * 5000 + ' } }', "number with more than", 1, 30),
    ('system S { architecture { param p: enum = a in [a, in] } }', "'in' is a reserved word", 1, 52),
    ('system S { architecture { param p: int = 3 in 5..1 } }', "range 5..1 is empty", 1, 47),
]


@pytest.mark.parametrize("src,words,line,col", SEMANTIC)
def test_semantic_errors_point_at_the_offending_node(src, words, line, col):
    with pytest.raises(dsl.SpecError) as info:
        dsl.loads(src, file="s.dsl")
    e = info.value
    assert words in str(e), str(e)
    assert (e.line, e.column) == (line, col), str(e)
    assert str(e).splitlines()[-1].strip() and "^" in str(e)


def test_non_utf8_file_reports_position(tmp_path):
    p = tmp_path / "bad.dsl"
    p.write_bytes(b'system S {\n  objective { goal: "caf\xe9" } }')
    with pytest.raises(dsl.SpecError) as info:
        dsl.load(p)
    assert "not UTF-8" in info.value.message and (info.value.line, info.value.column) == (2, 25)


def test_expected_words_are_human():
    with pytest.raises(dsl.SpecError) as info:
        dsl.loads("system S { objective { goal: ")
    text = str(info.value)
    assert "a \"string\"" in text and "a number" in text and "__ANON" not in text
