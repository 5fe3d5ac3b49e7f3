"""Plain-words error messages: Lark's parse errors and pydantic's validation errors.

Common mistakes get their own message from `EXAMPLES`, a table of bad inputs matched with
Lark's `match_examples` (the parser state and token of the error identify the mistake);
`tests/test_dsl_errors.py` checks every row of the table.
"""
from __future__ import annotations

import datetime
from typing import Any

from lark import Lark
from lark.exceptions import UnexpectedCharacters, UnexpectedEOF, UnexpectedInput, UnexpectedToken
from lark.lexer import PatternStr
from pydantic import ValidationError

from .errors import SpecError, did_you_mean
from .values import BoolOp, Compare, Not, Range, Ref

# label -> (message, bad inputs that show the mistake). A labelled error's `expected` is the
# closer that fixes it, not LALR's merged lookahead set (which lists every keyword).
EXPECTS = {"missing_brace": ["'}'"], "missing_colon": ["':'"], "missing_comma": ["','"],
           "missing_system": ["'---'", "'system'"], "missing_name": ["a name"]}
EXAMPLES: dict[str, tuple[str, list[str]]] = {
    "missing_brace": ("missing closing brace '}'", [
        'system S { objective { goal: "g" }',
        'system S { protocol { step a { check: c } }',
        'system S { protocol { step a { check: c }',
        'system S { knowledge { rule r { when: a == b apply: "x" }',
        'system S { architecture { param a: int = 1',
        'system S {',
    ]),
    "missing_colon": ("missing ':' between a key and its value", [
        'system S { objective { goal "g" } }',
        'system S { objective { goal 1 } }',
        'system S { objective { goal [1] } }',
        'system S { protocol { step a { check c } } }',
        'system S { kernel k { tiles { A: 1 } } }',
        '---\ntitle "t"\n---\nsystem S {}',
    ]),
    "missing_comma": ("missing comma between items", [
        'system S { objective { success: ["a" "b"] } }',
        'system S { objective { success: [a b] } }',
        'system S { objective { success: [1 2] } }',
        'system S { kernel k { tiles: {A: 1 B: 2} } }',
        'system S { architecture { param a: int in [1 2] } }',
    ]),
    "missing_value": ("missing value after ':'", [
        'system S { objective { goal: } }',
        'system S { objective { goal: ] } }',
        'system S { objective { goal: , } }',
    ]),
    "missing_system": ("a spec is `system NAME { sections }`, after optional front matter", [
        'objective { goal: "g" }',
        'protocol { }',
        'S { }',
        '',
    ]),
    "missing_name": ("missing a name after the keyword (e.g. `step my_step { ... }`)", [
        'system S { protocol { step { check: c } } }',
        'system S { kernel { module: "k.py" } }',
        'system S { knowledge { fact { statement: "s" } } }',
        'system { }',
    ]),
    "bad_step": ("a protocol holds only `step NAME { ... }` blocks", [
        'system S { protocol { check: c } }',
        'system S { protocol { a { } } }',
    ]),
    "bad_param": ("a param group holds only `param NAME: TYPE [= DEFAULT] [in ...] [\"doc\"]` lines", [
        'system S { architecture { n_embd: 64 } }',
        'system S { halting { threshold: 0.1 } }',
    ]),
}

SECTION_WORDS = ("objective", "architecture", "training", "data", "halting", "baseline", "kernel",
                 "protocol", "knowledge", "infrastructure", "implementation")

_WORDS = {"NAME": "a name", "STRING": 'a "string"', "NUMBER": "a number", "DATE": "a date",
          "GROUP": "architecture, training, data or halting", "$END": "end of file",
          "COMP_OP": "a comparison (== != < <= > >=)", "COMMENT": "a comment"}


def describe_terminal(name: str, lark: Lark) -> str:
    if name in _WORDS:
        return _WORDS[name]
    term = lark.get_terminal(name) if name in {t.name for t in lark.terminals} else None
    if term is not None and isinstance(term.pattern, PatternStr):
        return f"'{term.pattern.value}'"
    return name.lower()


def lark_error(e: UnexpectedInput, text: str, lark: Lark, parse_fn) -> SpecError:
    """A Lark parse error -> SpecError with a human message and human `expected` words."""
    expected_names = set(getattr(e, "expected", None) or getattr(e, "allowed", None) or ())
    expected = [describe_terminal(n, lark) for n in expected_names]
    line, col = getattr(e, "line", 1), getattr(e, "column", 1)
    if isinstance(e, UnexpectedEOF) or (isinstance(e, UnexpectedToken) and e.token.type == "$END"):
        lines = text.split("\n")
        line, col = len(lines), len(lines[-1]) + 1
    label = _match(e, parse_fn)
    hint = None
    if isinstance(e, UnexpectedCharacters):
        ch = text[e.pos_in_stream] if e.pos_in_stream < len(text) else ""
        msg = ("unterminated string (a string ends with \" on the same line)" if ch == '"'
               else f"unexpected character {ch!r}")
    elif label:
        msg = EXAMPLES[label][0]
        expected = EXPECTS.get(label, expected)
    else:
        tok = e.token if isinstance(e, UnexpectedToken) else None
        msg, hint = _unexpected(tok, expected_names)
    return SpecError(msg, line=line, column=col, expected=expected, hint=hint)


def _unexpected(tok: Any, expected: set[str]) -> tuple[str, str | None]:
    if tok is None or tok.type == "$END":
        return "unexpected end of file", None
    if tok.type == "NAME" and ("OBJECTIVE" in expected or "GROUP" in expected):
        return f"unknown section '{tok}'", did_you_mean(str(tok), SECTION_WORDS)
    if tok.type == "NAME" and expected & {"STEP", "FACT", "RULE", "SYMPTOM", "IDEA", "PARAM"}:
        return f"unexpected '{tok}'", None
    if "NAME" in expected and tok.type not in ("NAME", "STRING", "NUMBER"):
        if str(tok).isidentifier():
            return f"'{tok}' is a reserved word and cannot be used as a name here", None
    shown = str(tok) if len(str(tok)) <= 40 else str(tok)[:37] + "..."
    return f"unexpected {shown!r}", None


def _match(e: UnexpectedInput, parse_fn) -> str | None:
    """The EXAMPLES label whose bad inputs fail in the same parser state on the same kind of
    token as this error (Lark's `match_examples` would also accept a state-only match, which
    mislabels e.g. an unknown section as a missing brace)."""
    if not isinstance(e, UnexpectedToken):
        return None
    for label, (_, examples) in EXAMPLES.items():
        for example in examples:
            try:
                parse_fn(example)
            except UnexpectedToken as ut:
                if ut.state == e.state and ut.token.type == e.token.type:
                    return label
            except Exception:  # an example failing some other way says nothing here
                continue
    if e.token.type == "$END" and "RBRACE" in e.expected:
        return "missing_brace"
    return None


# ---- pydantic -> words --------------------------------------------------------------------
_EXPECTS = {
    "string_type": 'a "quoted string"', "int_type": "an integer", "float_type": "a number",
    "bool_type": "true or false", "date_type": "a date (YYYY-MM-DD)", "dict_type": "a map { key: value }",
    "tuple_type": "a list [ ... ]", "list_type": "a list [ ... ]", "missing": "a value",
    "model_type": "a different kind of value", "is_instance_of": "a condition such as `a == b`",
    "int_from_float": "an integer", "date_from_datetime_inexact": "a date",
}


def describe_value(v: Any) -> str:
    if isinstance(v, Ref):
        return f"the name {v.dotted}"
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, str):
        return f'the string "{v}"' if len(v) < 40 else "a string"
    if isinstance(v, (int, float)):
        return repr(v)
    if isinstance(v, datetime.date):
        return f"the date {v.isoformat()}"
    if isinstance(v, list):
        return "a list"
    if isinstance(v, dict):
        return "a map"
    if isinstance(v, Range):
        return f"the range {v.lo}..{v.hi}"
    if isinstance(v, (Compare, BoolOp, Not)):
        return "a condition"
    return type(v).__name__


def _expects(err: dict) -> str:
    t = err["type"]
    if t == "literal_error":
        return "one of " + str(err.get("ctx", {}).get("expected", "")).replace("'", "")
    if t in ("greater_than_equal", "greater_than", "less_than_equal", "too_short"):
        return err["msg"].replace("Input should be ", "").replace("Value should have", "at least")
    if t in ("model_type", "model_attributes_type") and len(err["loc"]) > 1:
        return {"Range": "a range lo..hi", "Compare": "a condition such as `a == b`"}.get(
            str(err["loc"][-1]), "a different kind of value")
    return _EXPECTS.get(t, err["msg"])


def humanize_validation(e: ValidationError, text: str, where: str, keys: dict, start: int) -> SpecError:
    """The first error of a ValidationError, as a SpecError at the offending key's value."""
    errors = e.errors()
    err = errors[0]
    loc = [p for p in err["loc"] if not (isinstance(p, str) and p[:1].isupper() or "[" in str(p))]
    key = next((str(p) for p in loc if str(p) in keys), None)
    if loc and loc[0] == "space" and len(loc) > 1:
        key = str(loc[1])
    offset = keys[key][1] if key in keys else start
    line = text.count("\n", 0, offset) + 1
    col = offset - (text.rfind("\n", 0, offset) + 1) + 1
    if err["type"] == "missing":
        msg = f"{where}: missing required key '{loc[0]}'"
    elif err["type"] == "value_error":
        msg = f"{where}: {str(err['msg']).removeprefix('Value error, ')}"
    else:
        same = [x for x in errors if x["loc"][:1] == err["loc"][:1]]
        wanted = " or ".join(dict.fromkeys(_expects(x) for x in same))
        wanted = wanted.replace("an integer or a number", "a number")
        field = key or (str(loc[0]) if loc else "value")
        msg = f"{where}: '{field}' expects {wanted}, got {describe_value(err['input'])}"
    return SpecError(msg, line=line, column=col)
