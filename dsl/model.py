"""The typed model of a LoopLM_System spec: what each section may say, and what must hold.

Field-level rules (types, allowed words) are pydantic's; rules that tie one node to
another (a step needing an undefined step, a rule naming an unknown parameter) live in
`System`'s validator, which raises `SpecError` at the offending node.
"""
from __future__ import annotations

import datetime
import re
from typing import Annotated, Any, Iterator, Optional, Union

from pydantic import AfterValidator, Field, PrivateAttr, model_validator

from .errors import SpecError, did_you_mean
from .values import (BoolOp, Choice, Compare, Dotted, Expr, Ident, Node, Not, Range, Ref, Seq,
                     Text, Value, is_ident)

Scalar = Union[bool, int, float, str, datetime.date]
_IMPLEMENTATION = re.compile(r"[^:\s]+:[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*")
Count = Annotated[int, Field(ge=1)]


def _positive(x: float) -> float:
    if isinstance(x, bool) or not x > 0 or x != x or x == float("inf"):
        raise ValueError("must be a finite number > 0")
    return x


Seconds = Annotated[Union[int, float], AfterValidator(_positive)]
ARCHS = ("sm_80", "sm_90", "sm_100", "sm_120")


class Meta(Node):
    """Front matter between `---` lines."""

    title: Optional[Text] = None
    source: Optional[Text] = None
    date: Optional[datetime.date] = None
    version: Optional[Text] = None
    status: Optional[Choice("draft", "active", "frozen", "deprecated")] = None
    tags: Seq(Ident) = ()
    authors: Seq(Text) = ()


class Objective(Node):
    goal: Text
    question: Optional[Text] = None
    hypothesis: Optional[Text] = None
    success: Seq(Text) = ()
    anchors: Seq(Text) = ()
    notes: Optional[Text] = None


_PY_TYPES = {"int": (int,), "float": (int, float), "bool": (bool,), "str": (str,), "enum": (str,),
             "ints": (tuple,)}


class Param(Node):
    """`param NAME: TYPE[?] [= DEFAULT] [in CHOICES|LO..HI] ["doc"]` — one config field.

    TYPE is int, float, bool, str, enum (a closed set of words) or ints (a list of ints,
    each within the range if one is given). No default means the field is optional (None);
    `TYPE?` makes a field with a default optional too (it may be set to null: "no limit").
    """

    name: Ident
    type: Choice("int", "float", "bool", "str", "enum", "ints")
    optional: bool = False
    default: Union[Scalar, Seq(int), None] = None
    allowed: Union[Range, Seq(Scalar), None] = None
    doc: Optional[Text] = None

    @model_validator(mode="before")
    @classmethod
    def _enum_words(cls, data: Any) -> Any:
        # the parser yields bare words as Refs; for enums they are the values themselves
        if isinstance(data, dict):
            data = dict(data)
            for k in ("default", "allowed"):
                v = data.get(k)
                if isinstance(v, Ref):
                    data[k] = v.dotted
                elif isinstance(v, (list, tuple)):
                    data[k] = [x.dotted if isinstance(x, Ref) else x for x in v]
        return data

    def accepts(self, value: Any) -> bool:
        if self.type == "ints":
            return isinstance(value, (tuple, list)) and all(
                isinstance(v, int) and not isinstance(v, bool) for v in value)
        ok = isinstance(value, _PY_TYPES[self.type]) and not (
            isinstance(value, bool) and self.type in ("int", "float"))
        if ok and self.type == "enum":
            ok = is_ident(value)
        return ok

    @model_validator(mode="after")
    def _consistent(self) -> "Param":
        if self.type == "enum" and not isinstance(self.allowed, tuple):
            raise self.fail(f"enum param '{self.name}' needs its choices: `in [a, b, ...]`", "type")
        if self.type in ("bool", "str") and isinstance(self.allowed, Range):
            raise self.fail(f"a range makes no sense for {self.type} param '{self.name}'", "allowed")
        if self.type == "ints" and isinstance(self.allowed, tuple):
            raise self.fail(f"ints param '{self.name}' takes a range for its items", "allowed")
        for v in self.allowed if isinstance(self.allowed, tuple) else ():
            if not self.accepts(v):
                raise self.fail(f"choice {v!r} of param '{self.name}' is not a {self.type}",
                                "allowed", str(v))
        if self.default is not None:
            if not self.accepts(self.default):
                raise self.fail(f"default {self.default!r} of param '{self.name}' is not a {self.type}",
                                "default")
            if not self.allows(self.default):
                raise self.fail(f"default {self.default!r} of param '{self.name}' is outside its "
                                f"allowed values", "default")
        return self

    def allows(self, value: Any) -> bool:
        if not self.accepts(value) or self.allowed is None:
            return self.accepts(value)
        if self.type == "ints":
            return all(v in self.allowed for v in value)
        return value in self.allowed


class ParamGroup(Node):
    """`architecture`, `training`, `data` or `halting`: the design space, one param per field."""

    params: Seq(Param) = ()

    @model_validator(mode="after")
    def _unique(self) -> "ParamGroup":
        _unique_names(self.params, "param")
        return self


class Baseline(Node):
    """A comparison model: the same code with `layers` distinct blocks (GPT-L). A step that
    `uses` it (temporal parity) runs that many loops against the unrolled stack."""

    name: Ident
    description: Optional[Text] = None
    layers: Count


def _pow2(n: int) -> bool:
    return n > 0 and n & (n - 1) == 0


class Kernel(Node):
    """A kernel, its PyTorch reference, and the invariants its launch must respect.

    `module` is an importable module ("kernels.halting") or a .py file relative to the spec;
    `function` (the host wrapper) and `reference` name attributes of it with the same signature.
    The verifier resolves them when it binds the spec, and runs one against the other."""

    name: Ident
    module: Text
    function: Optional[Ident] = None
    reference: Optional[Ident] = None
    description: Optional[Text] = None
    dtype: Choice("float32", "bfloat16", "float16") = "float32"
    tiles: dict[str, Count] = {}
    padding: Choice("neg_inf", "zero", "none") = "none"
    reduction: Choice("none", "softmax", "entropy", "attention", "loop") = "none"
    mask_columns_by: Optional[Ident] = None
    index_units: Choice("tiles", "elements") = "tiles"
    shapes: Seq(dict[str, Count]) = ()
    limits: dict[str, Count] = {}
    archs: Seq(Choice(*ARCHS)) = ()

    @model_validator(mode="after")
    def _invariants(self) -> "Kernel":
        for name, size in self.tiles.items():
            if not _pow2(size):
                raise self.fail(f"tile {name} = {size} is not a power of two", "tiles", name,
                                hint="bug 8: cuTile tile shapes must be powers of two; pad, then mask")
        if self.index_units == "elements":
            raise self.fail("index units must be tiles: ct.load/ct.store index= counts tiles",
                            "index_units", hint="bug 7: multiplying a tile index by the tile size skips tiles")
        if self.reduction in ("softmax", "entropy"):
            if self.padding == "zero":
                raise self.fail("zero padding feeds exp(0) = 1 into the softmax sum", "padding",
                                hint="bug 5: pad with neg_inf and mask columns by the real size")
            if self.mask_columns_by is None:
                raise self.fail(f"a {self.reduction} over padded columns needs `mask_columns_by`",
                                "reduction", hint="bug 6: (-inf) - (-inf) = NaN in unmasked padding")
        for shape in self.shapes:
            if self.mask_columns_by and self.mask_columns_by not in shape:
                raise self.fail(f"shape {shape} lacks the masked dimension "
                                f"'{self.mask_columns_by}'", "shapes", self.mask_columns_by)
        return self


class Step(Node):
    """One protocol step: run check `check` with `params`; fail -> `on_fail`. `expect` is shown
    beside a failure; `uses` names the sections the step reads: a kernel check runs on the
    kernels it uses (all declared kernels if it names none), temporal parity on its baseline."""

    name: Ident
    check: Dotted
    description: Optional[Text] = None
    params: dict[str, Value] = {}
    expect: Optional[Text] = None
    on_fail: Optional[Text] = None
    gates: bool = False
    required: bool = True
    severity: Choice("critical", "major", "minor") = "major"
    needs: Seq(Ident) = ()
    uses: Seq(Dotted) = ()
    bugs: Seq(Count) = ()
    timeout: Seconds = 600                  # a hang guard, never a verdict: set it far above the step


class Protocol(Node):
    """Ordered verification steps; a step may only need steps written before it."""

    steps: Seq(Step) = ()

    @model_validator(mode="after")
    def _order(self) -> "Protocol":
        seen: dict[str, Step] = {}
        for step in self.steps:
            if step.name in seen:
                raise step.fail(f"duplicate step id '{step.name}'", item=step.name)
            for need in step.needs:
                if need not in seen:
                    later = any(s.name == need for s in self.steps)
                    msg = (f"step '{step.name}' needs '{need}', which comes later (steps run in order)"
                           if later else f"step '{step.name}' needs undefined step '{need}'")
                    raise step.fail(msg, "needs", need, hint=None if later else did_you_mean(need, seen))
            seen[step.name] = step
        return self


class Fact(Node):
    """A statement; with `claim` and `evidence` it is re-checked against a results file."""

    name: Ident
    statement: Text
    evidence: Optional[Text] = None
    claim: Optional[Expr] = None
    source: Optional[Text] = None
    status: Choice("measured", "observed", "hypothesis", "refuted") = "observed"

    @model_validator(mode="after")
    def _claim_shape(self) -> "Fact":
        if self.claim is None:
            return self
        if self.evidence is None:
            raise self.fail(f"fact '{self.name}' has a claim but no `evidence` file to check it against",
                            "claim")
        c = self.claim
        if not (isinstance(c, Compare) and isinstance(c.left, Ref) and not isinstance(c.right, Node)):
            raise self.fail("a claim compares a JSON path with a value, e.g. "
                            "`claim: accuracy_by_digits.12 >= 0.99`", "claim")
        return self


class Rule(Node):
    """`when` (an expression over params) holds -> `apply` (advice), because `reason`."""

    name: Ident
    when: Expr
    apply: Text
    reason: Optional[Text] = None
    severity: Choice("error", "warning", "info") = "warning"


class Symptom(Node):
    """A symptom signature: `detector` run over a trace or eval report; what it means."""

    name: Ident
    detector: Ident
    params: dict[str, Value] = {}
    meaning: Text
    suggest: Optional[Text] = None
    bugs: Seq(Count) = ()
    steps: Seq(Ident) = ()


class Knowledge(Node):
    facts: Seq(Fact) = ()
    rules: Seq(Rule) = ()
    symptoms: Seq(Symptom) = ()

    @model_validator(mode="after")
    def _unique(self) -> "Knowledge":
        for group, kind in ((self.facts, "fact"), (self.rules, "rule"), (self.symptoms, "symptom")):
            _unique_names(group, kind)
        return self


class Infrastructure(Node):
    """Where the system runs, in words (documentation: no check reads it)."""

    device: Optional[Text] = None
    python: Optional[Text] = None
    cuda: Optional[Text] = None
    cutile: Optional[Text] = None
    ci: Optional[Text] = None
    notes: Optional[Text] = None


PARAM_GROUPS = ("architecture", "halting", "training", "data")
SECTIONS = ("objective",) + PARAM_GROUPS + ("baseline", "kernel", "protocol", "knowledge", "infrastructure")


class System(Node):
    """`system NAME { ... }`: every section is optional; cross-references are checked here."""

    name: Ident
    implementation: Optional[Text] = None    # "module:attribute" or "file.py:attribute"
    objective: Optional[Objective] = None
    architecture: Optional[ParamGroup] = None
    training: Optional[ParamGroup] = None
    data: Optional[ParamGroup] = None
    halting: Optional[ParamGroup] = None
    baselines: Seq(Baseline) = ()
    kernels: Seq(Kernel) = ()
    protocol: Optional[Protocol] = None
    knowledge: Optional[Knowledge] = None
    infrastructure: Optional[Infrastructure] = None

    # -- lookups used by the verifier and the CLI
    @property
    def params(self) -> dict[str, Param]:
        return {p.name: p for g in PARAM_GROUPS if getattr(self, g) for p in getattr(self, g).params}

    def group_of(self, param: str) -> str | None:
        return next((g for g in PARAM_GROUPS if getattr(self, g) and
                     any(p.name == param for p in getattr(self, g).params)), None)

    @property
    def steps(self) -> tuple[Step, ...]:
        return self.protocol.steps if self.protocol else ()

    def step(self, name: str) -> Step:
        for s in self.steps:
            if s.name == name:
                return s
        raise KeyError(name)

    def kernel(self, name: str) -> Kernel:
        for k in self.kernels:
            if k.name == name:
                return k
        raise KeyError(name)

    @property
    def rules(self) -> tuple[Rule, ...]:
        return self.knowledge.rules if self.knowledge else ()

    @property
    def facts(self) -> tuple[Fact, ...]:
        return self.knowledge.facts if self.knowledge else ()

    @property
    def symptoms(self) -> tuple[Symptom, ...]:
        return self.knowledge.symptoms if self.knowledge else ()

    @model_validator(mode="after")
    def _references(self) -> "System":
        params = self._check_params()
        _unique_names(self.baselines, "baseline")
        _unique_names(self.kernels, "kernel")
        if self.implementation is not None and not _IMPLEMENTATION.fullmatch(self.implementation):
            raise self.fail(f"implementation {self.implementation!r} must look like 'package.module:factory' "
                            f"or 'file.py:factory'", "implementation")
        targets = {f"kernel.{k.name}" for k in self.kernels} | {f"baseline.{b.name}" for b in self.baselines}
        targets |= {s for s in SECTIONS if s not in ("kernel", "baseline")}
        for step in self.steps:
            for use in step.uses:
                if use not in targets:
                    raise step.fail(f"step '{step.name}' uses undefined section '{use}'", "uses",
                                    use.split(".")[-1], hint=did_you_mean(use, targets))
        for rule in self.rules:
            _check_expr(rule.when, params, rule)
        steps = {s.name for s in self.steps}
        for sym in self.symptoms:
            for s in sym.steps:
                if s not in steps:
                    raise sym.fail(f"symptom '{sym.name}' names undefined step '{s}'", "steps", s,
                                   hint=did_you_mean(s, steps))
        return self

    def _check_params(self) -> dict[str, Param]:
        seen: dict[str, Param] = {}
        for g in PARAM_GROUPS:
            for p in getattr(self, g).params if getattr(self, g) else ():
                if p.name in seen:
                    raise p.fail(f"param '{p.name}' is declared twice", item=p.name)
                seen[p.name] = p
        return seen


def _unique_names(nodes: Any, kind: str) -> None:
    seen: set[str] = set()
    for n in nodes:
        if n.name in seen:
            raise n.fail(f"duplicate {kind} '{n.name}'", item=n.name)
        seen.add(n.name)


def _known(name: str, params: dict[str, Param], node: Node, key: str, what: str) -> Param:
    if name not in params:
        raise node.fail(f"{what} '{name}'", key, name, hint=did_you_mean(name, params))
    return params[name]


def _check_expr(expr: Any, params: dict[str, Param], rule: Rule) -> None:
    """Names in a rule's condition must be params; enum comparisons must use known words."""
    if isinstance(expr, BoolOp):
        for e in expr.operands:
            _check_expr(e, params, rule)
    elif isinstance(expr, Not):
        _check_expr(expr.operand, params, rule)
    elif isinstance(expr, Ref):
        _known(expr.dotted, params, rule, "when", "rule condition names unknown param")
    elif isinstance(expr, Compare):
        if not isinstance(expr.left, Ref):
            raise rule.fail("a rule condition compares a param with a value: `param == value`", "when")
        p = _known(expr.left.dotted, params, rule, "when", "rule condition names unknown param")
        rights = expr.right if isinstance(expr.right, list) else [expr.right]
        for r in rights:
            word = r.dotted if isinstance(r, Ref) else r
            if p.type == "enum" and isinstance(p.allowed, tuple) and word not in p.allowed:
                raise rule.fail(f"'{word}' is not a value of param '{p.name}'", "when", str(word),
                                hint=did_you_mean(str(word), p.allowed))


class Spec(Node):
    """A whole spec file: optional front matter and one system. It remembers the text and file
    it was read from, so that code checking it later can point at a line (`where`)."""

    meta: Optional[Meta] = None
    system: System
    _text: Optional[str] = PrivateAttr(None)
    _file: Optional[str] = PrivateAttr(None)

    def where(self, node: Node, key: Optional[str] = None) -> str:
        """`FILE:LINE:COL` of a node of this spec (or of one of its keys)."""
        if self._text is None:
            return self._file or "<spec>"
        line, col = node.locate(self._text, key)
        return f"{self._file or '<spec>'}:{line}:{col}"

    def error(self, err: "SpecError") -> "SpecError":
        """A SpecError raised against this spec's nodes, located in its text."""
        return err.locate(self._text or "", self._file)

    def walk(self) -> Iterator[Node]:
        """Every structural node, depth first (used to attach comments)."""
        yield from _walk(self)


def _walk(node: Any) -> Iterator[Node]:
    if isinstance(node, Node) and not isinstance(node, (Ref, Range, Compare, BoolOp, Not)):
        yield node
        for k in type(node).model_fields:
            v = getattr(node, k)
            for child in (v if isinstance(v, tuple) else (v,)):
                yield from _walk(child)
