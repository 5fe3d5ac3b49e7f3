"""Round trips: loads(dumps(x)) == x for generated specs; fmt is a fixed point."""
from hypothesis import given, settings

import dsl
from tests.strategies import specs, values
from dsl import model as m


@settings(max_examples=150)
@given(specs())
def test_loads_dumps_roundtrip(spec):
    text = dsl.dumps(spec)
    again = dsl.loads(text)
    assert again == spec, text
    assert dsl.dumps(again) == text


@settings(max_examples=300)
@given(values)
def test_every_value_roundtrips(value):
    step = m.Step(name="s", check="c", params={"v": value})
    spec = m.Spec(system=m.System(name="S", protocol=m.Protocol(steps=[step])))
    text = dsl.dumps(spec)
    assert dsl.loads(text).system.steps[0].params["v"] == step.params["v"], text


def test_equality_is_type_strict():
    def spec(v):
        return m.Spec(system=m.System(name="S", protocol=m.Protocol(
            steps=[m.Step(name="s", check="c", params={"v": v})])))
    assert spec(True) != spec(1)
    assert spec(1) != spec(1.0)
    assert spec("x") == spec("x")


def test_bundled_spec_is_formatted():
    text = dsl.BUNDLED.read_text()
    assert dsl.dumps(dsl.loads(text)) == text


def test_fmt_is_a_fixed_point_and_keeps_comments():
    src = """// head
system S { // after brace
  protocol {
    /* before a */ step a { check: c  // about check
      gates: true }
    step b { check: d needs: [a] }   // after b
    // before close
  }
}
// tail
"""
    once = dsl.dumps(dsl.loads(src))
    assert dsl.dumps(dsl.loads(once)) == once
    for comment in ("// head", "// after brace", "/* before a */", "// about check", "// after b",
                    "// before close", "// tail"):
        assert comment in once, comment
    assert dsl.loads(once) == dsl.loads(src)


def test_an_optional_param_with_a_default_takes_null_only_when_declared():
    from verifier.ranges import problem
    text = 'system S {{ training {{ param stop: {} = 0.9 in 0.0..1.0 }} }}'
    strict, optional = (dsl.loads(text.format(t)).system.params["stop"] for t in ("float", "float?"))
    assert optional.optional and not strict.optional
    assert problem(optional, None) is None and "no value" in problem(strict, None)
    assert "float? = 0.9" in dsl.dumps(dsl.loads(text.format("float?")))
