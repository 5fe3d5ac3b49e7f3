"""Robustness: mutated versions of the bundled spec raise SpecError or parse; nothing else."""
from hypothesis import given, settings
from hypothesis import strategies as st

import dsl
from tests.mutations import mutate

BUNDLED = dsl.BUNDLED.read_text()


def outcome(data):
    """'ok', or the SpecError; any other exception propagates and fails the test."""
    try:
        dsl.loads(data, file="fuzz.dsl")
        return "ok"
    except dsl.SpecError as e:
        assert e.line >= 1 and e.column >= 1 and e.message.strip(), repr(e)
        assert "Traceback" not in str(e) and "__ANON" not in str(e)
        return e


@settings(max_examples=250)
@given(st.randoms(use_true_random=False))
def test_mutated_bundled_spec_raises_only_spec_errors(rng):
    outcome(mutate(BUNDLED, rng))


@settings(max_examples=150)
@given(st.binary(max_size=300) | st.text(max_size=300))
def test_arbitrary_input_raises_only_spec_errors(data):
    outcome(data)
