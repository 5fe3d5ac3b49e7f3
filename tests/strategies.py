"""Hypothesis strategies for spec values and whole valid specs (one module, one size cap)."""
from __future__ import annotations

import string

from hypothesis import strategies as st

from dsl import model as m
from dsl.values import RESERVED, BoolOp, Compare, Not, Range, Ref

MAX = 4  # cap on list sizes and recursion breadth, so examples stay small and fast

idents = st.from_regex(r"[a-z_][a-z0-9_]{0,8}", fullmatch=True).filter(lambda s: s not in RESERVED)
texts = st.text(st.characters(exclude_categories=("Cs",)), max_size=24)
ints = st.integers(-10**15, 10**15)
floats = st.floats(allow_nan=False, allow_infinity=False)
numbers = ints | floats
scalars = st.booleans() | numbers | texts | st.dates()
refs = st.builds(lambda head, tail: Ref(parts=[head, *tail]), idents,
                 st.lists(idents | st.integers(0, 999), max_size=2))
ranges = st.tuples(numbers, numbers).map(lambda p: Range(lo=min(p), hi=max(p)))
map_keys = idents | st.text(string.printable, max_size=8)


def _extend(children):
    return (st.lists(children, max_size=MAX)
            | st.dictionaries(map_keys, children, max_size=MAX)
            | st.builds(lambda a, op, b: Compare(left=a, op=op, right=b), children,
                        st.sampled_from(["==", "!=", "<", "<=", ">", ">=", "in"]), children)
            | st.builds(lambda op, xs: BoolOp(op=op, operands=xs), st.sampled_from(["and", "or"]),
                        st.lists(children, min_size=2, max_size=3))
            | st.builds(lambda x: Not(operand=x), children))


values = st.recursive(scalars | refs | ranges, _extend, max_leaves=8)


@st.composite
def params(draw, name: str) -> m.Param:
    kind = draw(st.sampled_from(["int", "float", "bool", "str", "enum", "ints", "opt"]))
    doc = draw(st.none() | texts)
    if kind == "int":
        lo = draw(st.integers(-100, 100))
        hi = lo + draw(st.integers(0, 100))
        return m.Param(name=name, type="int", default=draw(st.integers(lo, hi)),
                       allowed=Range(lo=lo, hi=hi), doc=doc)
    if kind == "float":
        return m.Param(name=name, type="float", optional=draw(st.booleans()), default=draw(floats), doc=doc)
    if kind == "bool":
        return m.Param(name=name, type="bool", default=draw(st.booleans()), doc=doc)
    if kind == "str":
        return m.Param(name=name, type="str", default=draw(texts), doc=doc)
    if kind == "ints":
        return m.Param(name=name, type="ints", default=draw(st.lists(st.integers(0, 9), max_size=3)),
                       allowed=Range(lo=0, hi=9))
    if kind == "opt":
        return m.Param(name=name, type="float", doc=doc)
    words = draw(st.lists(idents, min_size=1, max_size=MAX, unique=True))
    return m.Param(name=name, type="enum", default=draw(st.sampled_from(words)), allowed=words)


def _unique(draw, n_max: int, taken: set[str]) -> list[str]:
    names = draw(st.lists(idents.filter(lambda s: s not in taken), max_size=n_max, unique=True))
    taken.update(names)
    return names


@st.composite
def specs(draw) -> m.Spec:
    """A valid spec: every cross-reference points at something that exists."""
    taken: set[str] = set()
    groups = {g: [draw(params(n)) for n in _unique(draw, 3, taken)] for g in m.PARAM_GROUPS}
    all_params = [p for ps in groups.values() for p in ps]
    kernels = [m.Kernel(name=n, module=draw(texts), tiles={"BLOCK": 2 ** draw(st.integers(0, 10))},
                        reduction="softmax", padding="neg_inf", mask_columns_by="V",
                        shapes=[{"V": draw(st.integers(1, 10**6))}])
               for n in _unique(draw, 2, set())]
    baselines = [m.Baseline(name=n, layers=draw(st.integers(1, 48)), description=draw(st.none() | texts))
                 for n in _unique(draw, 2, set())]
    steps: list[m.Step] = []
    targets = [f"kernel.{k.name}" for k in kernels] + ["objective", "knowledge"]
    for n in _unique(draw, 4, set()):
        steps.append(m.Step(
            name=n, check=draw(st.lists(idents, min_size=1, max_size=2).map(".".join)),
            params=draw(st.dictionaries(idents, values, max_size=2)),
            expect=draw(st.none() | texts), gates=draw(st.booleans()),
            severity=draw(st.sampled_from(["critical", "major", "minor"])),
            needs=draw(st.lists(st.sampled_from([s.name for s in steps]), max_size=2, unique=True)) if steps else [],
            uses=draw(st.lists(st.sampled_from(targets), max_size=2)),
            bugs=draw(st.lists(st.integers(1, 12), max_size=2)),
            timeout=draw(st.integers(1, 600) | st.floats(0.5, 600))))
    rules = []
    for n in _unique(draw, 2, set()) if all_params else []:
        p = draw(st.sampled_from(all_params))
        right = Ref(parts=[draw(st.sampled_from(p.allowed))]) if p.type == "enum" else draw(numbers)
        cond = Compare(left=Ref(parts=[p.name]), op=draw(st.sampled_from(["==", "!="])), right=right)
        if draw(st.booleans()):
            cond = BoolOp(op=draw(st.sampled_from(["and", "or"])), operands=[cond, Not(operand=cond)])
        rules.append(m.Rule(name=n, when=cond, apply=draw(texts)))
    facts = [m.Fact(name=n, statement=draw(texts), evidence="results/x.json",
                    claim=Compare(left=draw(refs), op=">=", right=draw(numbers)))
             for n in _unique(draw, 2, set())]
    symptoms = [m.Symptom(name=n, detector=draw(idents), meaning=draw(texts),
                          steps=draw(st.lists(st.sampled_from([s.name for s in steps]), max_size=2)) if steps else [])
                for n in _unique(draw, 2, set())]
    system = m.System(
        name=draw(idents),
        objective=draw(st.none() | st.builds(m.Objective, goal=texts, success=st.lists(texts, max_size=2))),
        baselines=baselines, kernels=kernels,
        protocol=m.Protocol(steps=steps) if steps else None,
        knowledge=m.Knowledge(facts=facts, rules=rules, symptoms=symptoms),
        infrastructure=draw(st.none() | st.builds(m.Infrastructure, device=texts, notes=st.none() | texts)),
        implementation=draw(st.none() | st.builds(lambda a, b: f"{a}.mod:{b}", idents, idents)),
        **{g: m.ParamGroup(params=ps) for g, ps in groups.items() if ps})
    meta = draw(st.none() | st.builds(m.Meta, title=texts, date=st.dates(), tags=st.lists(idents, max_size=3)))
    return m.Spec(meta=meta, system=system)
