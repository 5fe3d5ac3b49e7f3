"""The contract between the verifier and a looped system under test.

A spec names the code it describes:

    implementation: "looplm.system:LoopLMSystem"      // "module:attribute", or "file.py:attribute"
                                                       // with the file relative to the spec

The verifier calls that factory as `factory(config=PATH_OR_NONE, overrides={param: value})`
and checks the object it returns. The object offers *capabilities*, each a few methods (the
`LoopedSystem` protocol below spells out every signature and shape). Every capability is
optional: a step that needs one the system lacks is skipped, and the skip names it; a method
whose body raises `NotImplementedError("not provided: CAPABILITY")` (what `looplm init`
scaffolds) counts as missing. Nothing here has to be imported by an implementation: methods
return plain data (dicts, tuples, tensors), which the verifier validates with the models below.

Shapes: B batch rows, T tokens per row, V vocabulary, L loops.
"""
from __future__ import annotations

from typing import Any, Callable, Iterator, Literal, Mapping, Optional, Protocol, Sequence, Union

from pydantic import BaseModel, ConfigDict, Field, ValidationError

# capability -> the methods it consists of
CAPABILITIES: dict[str, tuple[str, ...]] = {
    "config": ("config_groups", "param_values"),
    "design": ("design",),
    "model": ("build", "forward", "loop_modules"),
    "head": ("head_module",),
    "gate": ("gate_module",),
    "data": ("train_batches", "decode", "encode"),
    "task": ("check_example",),
    "training": ("optimizer", "train_step"),
    "checkpoint": ("save", "load", "load_into"),
    "eval": ("eval_problems", "render", "exact_match", "model_format"),
    "eval_sets": ("eval_sets",),
    "report": ("eval_report",),
    "generate": ("generate",),
    "run": ("train_run",),
    "kernels": ("kernel_cases",),
    "parity": ("block_pair", "unrolled_pair"),
}


class MissingCapability(Exception):
    """A check needs a capability the system does not provide (the step is skipped)."""

    def __init__(self, capability: str, system: Any = None, detail: str = ""):
        methods = ", ".join(CAPABILITIES.get(capability, ()))
        who = type(system).__name__ if system is not None else "the system"
        super().__init__(f"needs capability '{capability}' ({methods}), which {who} does not provide"
                         + (f": {detail}" if detail else ""))
        self.capability = capability


def provides(system: Any, capability: str) -> bool:
    return all(callable(getattr(system, m, None)) for m in CAPABILITIES[capability])


def not_provided(exc: BaseException) -> Optional[str]:
    """The capability a scaffolded method says it lacks (`NotImplementedError("not provided: X")`)."""
    if isinstance(exc, NotImplementedError) and str(exc).startswith("not provided:"):
        return str(exc).removeprefix("not provided:").strip() or "?"
    return None


class _Decl(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Layout(_Decl):
    """How examples sit in a batch row, and which positions are targets."""
    packed: bool = False                # several whole examples per row, back to back
    prompt_end: str                     # the last token of a prompt ("=")
    end: str                            # the token that ends an example's answer ("$")
    pad: str                            # the padding token after the last example
    ignore_index: int = -100            # the target of positions that carry no loss
    bidirectional_prompt: bool = False  # prompt positions attend to later prompt positions
    # targets: position t holds the token at t + 1 when that token is an answer token or the
    # end token, else ignore_index (answer-only next-token prediction)


class HaltingDecl(_Decl):
    """How a token halts at inference: once score(prediction) crosses the threshold."""
    score: Literal["entropy", "max_prob", "learned"]   # learned: a gate the logits do not show
    halts_when: Literal["below", "above"] = "below"
    min_loops: int = Field(1, ge=1)
    # the eval and generation halt by default (else they run fixed depth, as forward() does with
    # threshold None); a fixed-depth pass is then another function than generation's
    by_default: bool = False


class Schedule(_Decl):
    """The learning rate the optimizer holds at step s (0-based)."""
    kind: Literal["constant", "warmup_cosine"]
    lr: float = Field(gt=0)
    warmup: int = Field(0, ge=0)        # linear from lr/warmup to lr over the first `warmup` steps
    total: int = Field(1, ge=1)         # cosine from lr down to min_lr at step `total`
    min_lr: float = Field(0.0, ge=0)


class Depth(_Decl):
    """The loops the training step runs at step s (0-based) of a `total`-step schedule."""
    kind: Literal["fixed", "curriculum", "random"] = "fixed"
    loops: int = Field(1, ge=1)          # fixed
    stages: list[int] = []               # curriculum: stage i over steps [i*total/n, (i+1)*total/n)
    total: int = Field(1, ge=1)
    low: int = Field(1, ge=1)            # random: uniform over low..high, drawn anew each step
    high: int = Field(1, ge=1)


class Progressive(_Decl):
    """Bansal et al.'s progressive loss (arXiv 2202.05826) in the training step: with L the step's
    depth, n in 0..L-1 loops run without gradient, then k in 1..L-n loops run on from that state;
    the step's loss is (1 - weight) * the forward's objective over L loops + weight * the same
    objective over the k loops. Each step thus runs the loop L + n + k times (n + k with weight 1,
    where the full pass is left out)."""
    weight: float = Field(gt=0, le=1)


class Corpus(_Decl):
    """A text the training rows are windows of: its file, and the final share of it held out for
    validation (training reads only the text before the cut at len(text) * (1 - held_out))."""
    path: str
    held_out: float = Field(0.0, ge=0, lt=1)


class Ponder(_Decl):
    """A learned halting gate's training loss (PonderNet, Banino et al. 2021, arXiv 2107.05407).
    With g_k the gate's logit after loop k (k = 0..L-1) and ce_k a target position's
    cross-entropy of loop k's prediction: lambda_k = sigmoid(g_k), lambda_(L-1) = 1 (the last loop
    halts everything left); p_k = lambda_k * prod_(j<k) (1 - lambda_j); the loss is the mean over
    target positions of sum_k p_k ce_k + beta * KL(p || q), q the geometric(prior) distribution
    over the L loops, renormalised."""
    beta: float = Field(ge=0)
    prior: float = Field(gt=0, lt=1)


class Design(_Decl):
    """What the system declares about itself; checks compare the code against it, so a
    legitimate design choice (packing, last-loop supervision, max-prob halting) is no alarm."""
    loops: int = Field(ge=1)                       # L of a model from build()
    supervision: Union[Literal["last", "half", "all", "weighted"], list[int]] = "last"
    # the training loss is sum_k w_k CE_k over loop k's prediction's mean target cross-entropy,
    # w normalised to sum 1 from: 'last' loop L-1 only; 'half' loops L//2..L-1 alike; 'all' every
    # loop alike; 'weighted' loop k in proportion to k+1; a list, those loops alike. A learned
    # gate's loss is `ponder` instead (then supervision names the loops it reads: all of them)
    ponder: Optional[Ponder] = None
    tbptt: int = Field(0, ge=0)                     # only the last k loops get gradient (0: all)
    progressive: Optional[Progressive] = None       # None: the step's loss is the forward's
    halting: Optional[HaltingDecl] = None           # None: no halting at inference
    layout: Optional[Layout] = None
    row_tokens: Optional[int] = Field(None, ge=1)   # every training row's length (a corpus window); None: varies
    corpus: Optional[Corpus] = None                  # the text a language-model run trains on (None: no corpus)
    grad_clip: Optional[float] = Field(None, gt=0)  # total gradient norm after clipping <= this
    schedule: Optional[Schedule] = None
    depth: Optional[Depth] = None                   # None: every step runs `loops`
    # the training loop ends at its first evaluation whose accuracy reaches this (None: never early)
    stop_accuracy: Optional[float] = Field(None, gt=0, le=1)
    frozen: list[str] = []                          # parameters the optimizer must not change
    # the dtype the check-size training (train_step, train_run(small=True), on the CPU) computes
    # in: float32, or a half type under autocast (None: not declared)
    compute_dtype: Optional[Literal["float32", "bfloat16", "float16"]] = None
    trained_format: Optional[str] = None            # the data format the configured run trains on
    formats: list[str] = []                         # every data format the system can write
    check_size: str = ""                            # what build() shrinks, and why
    # train_run(small=True) evaluates after every k-th step and after the schedule's last (None:
    # only the last is required)
    eval_every: Optional[int] = Field(None, ge=1)


class KernelCase(BaseModel):
    """How to feed one declared kernel (by its spec name); the spec names the function and
    reference. `make(shape, seed, kind)` returns (args, kwargs) for both, with kind one of
    'random', 'extreme' (inf/-inf/1e30 entries, whole rows impossible) or 'arange'
    (distinct values, to see every element land where it belongs)."""
    model_config = ConfigDict(extra="forbid", frozen=True, arbitrary_types_allowed=True)
    dims: dict[str, tuple[int, int]]                # each shape dim's range to draw from
    make: Callable[..., Any]
    compare: Optional[Callable[..., Optional[str]]] = None   # (got, want, args) -> problem or None
    # the default comparison's atol relative to max |want| (a composite whose rounding grows with
    # its outputs' magnitude, e.g. logits through near one-hot attention)
    scaled: bool = False
    kinds: list[str] = ["random", "extreme", "arange"]
    # (model, idx, threshold) -> whether the system's kernel inference path launches this kernel
    # there, stated from the kernel's declared domain rather than by asking the dispatcher
    # (inference_parity counts the launches and compares); None: not stated
    runs: Optional[Callable[..., bool]] = None


def validated(model: type[BaseModel], data: Any, what: str) -> Any:
    """`model.model_validate(data)` with a one-line error naming the method that returned it."""
    try:
        return model.model_validate(data)
    except ValidationError as e:
        first = e.errors()[0]
        where = ".".join(str(x) for x in first["loc"]) or "value"
        raise ContractError(f"{what} returned an invalid {model.__name__}: {where}: {first['msg']}") from None


class ContractError(Exception):
    """A system returned something the contract does not allow (a failure of that system)."""


class LoopedSystem(Protocol):
    """Every method a system may offer, grouped by capability. A model is a torch.nn.Module."""

    # ---- config: the config being verified, against the spec's param groups
    def config_groups(self) -> Mapping[str, type]:
        """spec param group ('architecture', 'training', ...) -> the config class (pydantic model
        or dataclass) whose fields that group declares."""

    def param_values(self) -> Mapping[str, Any]:
        """Every declared param's value in the config being verified (by param name)."""

    # ---- design: declarations the checks read
    def design(self) -> Mapping[str, Any]:
        """A dict that validates as `Design`."""

    # ---- model
    def build(self, seed: int = 0, extra_vocab: int = 0) -> Any:
        """The configured architecture at a size a CPU checks in seconds (Design.check_size),
        initialised from `seed`; `extra_vocab` more tokens in its vocabulary (a new task)."""

    def forward(self, model: Any, idx: Any, targets: Any = None, *, loops: Optional[int] = None,
                threshold: Optional[float] = None, backend: str = "reference") -> tuple:
        """idx (B, T) int64 -> (logits (B, T, V), loss, steps (B, T) int). The loss is a scalar
        whenever targets (B, T) are given, in train and eval mode alike (else None); steps counts
        the loops each token ran. `loops` overrides L; `threshold` turns halting on at inference
        with the declared score (None: fixed depth); backend 'kernel' runs the system's kernels
        (inference only: the GPU where the tensors are on it, else an emulator)."""

    def loop_modules(self, model: Any) -> Sequence[Any]:
        """The module(s) applied once per loop, in loop order (a shared block: one module)."""

    def head_module(self, model: Any) -> Any:
        """The module that maps a loop's state to logits (one call per prediction)."""

    def gate_module(self, model: Any) -> Any:
        """A learned halting gate (Design.ponder): the module that maps a loop's state to its
        halting logit (B, T) or (B, T, 1), one call per loop in training."""

    # ---- data
    def train_batches(self, batch_size: int, seed: int, rank: int = 0, world: int = 1) -> Iterator[Any]:
        """The training loop's own batches of steps 0, 1, ...: objects with .idx and .targets
        (B, T), or pairs. `rank` of `world` data-parallel ranks: that rank's batch of each step
        (a pipeline that shards nothing may leave rank and world out of its signature)."""

    def decode(self, ids: Sequence[int]) -> str: ...

    def encode(self, text: str) -> list[int]: ...

    # ---- task: an oracle for one example
    def check_example(self, prompt: str, answer: str) -> bool:
        """Is `answer` (without the end token) a correct answer to `prompt` (ending with prompt_end)?"""

    def held_out(self, prompt: str) -> bool:
        """Optional: does the example with this prompt belong to the held-out split (the plain
        eval set draws only such problems; training never does)? Stated from the split's rule,
        not by asking the sampler."""

    # ---- training: the real step, the one the system's own training loop calls
    def optimizer(self, model: Any) -> Any: ...

    def train_step(self, model: Any, optimizer: Any, batch: Any, step: int) -> float:
        """One optimizer step on `batch` at 0-based `step`; returns the loss."""

    # ---- checkpoint
    def save(self, model: Any, path: Any) -> None: ...

    def load(self, path: Any) -> Any:
        """A model from a checkpoint file, strictly (refuses a partial load)."""

    def load_into(self, model: Any, path: Any) -> None:
        """A checkpoint's weights into `model`, strictly (refuses a shape or key mismatch)."""

    # ---- eval: the system's own evaluation path
    def eval_problems(self, n: int, seed: int, model: Any = None) -> list:
        """n held-out problems (opaque objects) from the trained range of `model` (None: of the
        configured run)."""

    def render(self, problem: Any, fmt: Optional[str] = None) -> tuple[str, str]:
        """(prompt, answer + end token) of a problem in data format `fmt` (None: configured)."""

    def exact_match(self, model: Any, problems: list, fmt: Optional[str] = None) -> list[bool]:
        """The eval's exact match per problem, fed in `fmt` (None: the model's own format);
        a format other than the model's must be refused (raise)."""

    def model_format(self, model: Any) -> str:
        """The data format `model` was trained on, as its checkpoint records it."""

    def eval_sets(self) -> Mapping[str, Mapping[str, Any]]:
        """The problem sets research figures are reported on: name -> {'draw': (n, seed) -> n
        problems that `render` takes, 'claim': problem -> None, or why it is not a member,
        optionally 'spread': problems -> None, or what a few hundred draws fail to vary that the
        set claims to (a set can meet its claim and still be narrower than its name)}. Each
        claim states the set's defining property from its definition (not by calling the
        generator); 'random' names the plain held-out set, which must never meet training, and
        may state 'share', the fraction of the problem space its split holds out, with
        'population': (n, seed) -> n problems drawn from the whole space (either side)."""

    def eval_report(self, model: Any, n: int, seed: int) -> Mapping[str, Any]:
        """The figures the system's own eval command reports for `model`, on n held-out problems
        per group (digit count, say) of its trained range drawn at `seed`:
        {'accuracy': {group: fraction exactly right}, 'problems': {group: the n problems scored}},
        and optionally the other figures it prints, each recomputed by the check from `forward`:
        'counts' {group: problems scored}; 'claim' (group, problem) -> None, or why the problem
        is not what the group is named for (stated from the definition, like an eval set's); and, where 'threshold' states the report's halting in
        forward's terms (None: fixed depth) with 'loops' its L, 'loss' {group: mean answer-token
        cross-entropy}, 'steps_answer' {group: mean over problems of the mean loops run on its
        target positions (target != ignore_index)}, 'steps_prompt' (the same over all problems, on
        the other non-pad positions), 'applications_saved' (1 - loops run on non-pad tokens /
        (non-pad tokens x L)). A problem's row is its prompt and answer without the last token."""

    def generate(self, model: Any, prompts: list[str], max_new: int) -> list[str]:
        """Greedy decoding: each prompt's continuation, up to and including the end token."""

    # ---- run: the system's own training loop
    def train_run(self, out_dir: Any, *, small: bool = False, steps: Optional[int] = None,
                  stop_after: Optional[int] = None, resume: bool = False,
                  progress: Optional[Callable[..., None]] = None) -> Mapping[str, Any]:
        """Train into out_dir (small: at the check size, on a small batch); `steps` the
        schedule's length, `stop_after` ends this call early, `resume` continues from out_dir.
        `progress(step=s, total=N, loss=...)` follows each training step s (1-based, N the
        schedule's length) and `progress(step=s, total=N, accuracy=...)` each evaluation; a call
        that ends the schedule evaluates its final weights. Resuming a run whose schedule has
        ended raises: there is nothing to train, and a silent no-op reads as success. Returns a
        summary whose 'checkpoint' is a path `load` reads and, optionally, whose 'log' is the
        JSON-lines record the run keeps of its evaluations (one object with a 'step' per
        evaluation, appended across resumed calls): what a user later plots must be what ran.
        Optional summary figures are checked too: 'time_s' (this call's seconds) and
        'peak_memory_mb' (the process's peak, in MiB)."""

    # ---- kernels: (kernel, reference) pairs named in the spec
    def kernel_cases(self) -> Mapping[str, Mapping[str, Any]]:
        """spec kernel name -> a dict that validates as `KernelCase`."""

    # ---- parity: independent references of the loop
    def block_pair(self, model: Any, idx: Any) -> tuple[Any, Any]:
        """(one application of the loop block, the same computed by a reference written from
        the definition) on the same input state."""

    def unrolled_pair(self, seed: int, loops: int) -> tuple[Any, Any]:
        """(a looped model, a stack of `loops` distinct blocks holding its weights) that must
        compute the same logits."""
