---
title: "LoopLM System"
source: "LoopLM_System_v3.dsl, root.md and plan.md (seeds), made executable"
date: 2026-12-01
version: "5.0"
status: active
tags: [looplm, cutile, addition, verification]
---

// The user's system: a looped (weight-tied) transformer whose depth comes from time,
// trained on multi-digit addition, with cuTile kernels for looped inference.
// `looplm verify` runs the protocol below against the real code; `looplm train` refuses
// to start while a gating step fails.
system LoopLM {
  implementation: "looplm.system:LoopLMSystem"

  objective {
    goal: "Learn the addition algorithm from 1-4 digit operands and generalize to much longer numbers"
    question: "Does depth through time (one shared block applied L times) learn the algorithm where depth in space (GPT-L) memorizes?"
    hypothesis: "A looped block with digit-significance attention extrapolates in length; more loops at test time help when the carry must travel through the loop"
    success: [
      "format parity: >= 99% exact match on the trained 1-4 digit range before any OOD number is believed",
      "reversed order: >= 99% exact match at 100 and 1000 digits, trained on 1-4 digits only",
      "normal order: >= 99% at 12 digits and >= 90% at 32 digits, adversarial carry chains included",
      "looped inference through cuTile kernels measured side by side against eager, torch.compile and CUDA graphs",
    ]
    anchors: [
      "seeds: best LoopLM 100% (1-4), 95.2% (5-6), 2.6% (8), 0% (10, 12); GPT-12L 0% at 8",
      "McLeish et al. 2024 (arXiv 2405.17399): looped + Abacus, <=20 -> 100 digits at ~99%",
      "Cho et al. 2024 (arXiv 2405.20671): position coupling, <=30 -> 200 digits",
    ]
  }

  architecture {
    param vocab_size: int = 14 in 2..65536 "addition: digits, + = $ and pad"
    param n_embd: int = 64 in 8..4096 "width of the residual stream"
    param n_head: int = 4 in 1..64
    param n_loops: int = 8 in 1..256 "L: applications of the block per forward"
    param tied: bool = true "one shared block (LoopLM); false = L distinct blocks (GPT-L)"
    param mlp_ratio: int = 4 in 1..16
    param dropout: float = 0.0 in 0.0..0.9
    param reinject: enum = add in [none, add, adapter] "x0 anchor: h = block(h + x0) each loop"
    param step_embedding: bool = false "add a learned loop-index vector each loop"
    param position: enum = windowed in [learned, rope, nope, abacus, relative, windowed]
    param window: int = 1 in 0..64 "windowed: digits attend only within +-window significance places"
    param relative_clip: int = 3 in 1..64
    param max_seq_len: int = 64 in 4..1048576
    param abacus_max_offset: int = 32 in 0..100000
    param prefix_bidirectional: bool = false "prompt tokens attend both ways (normal order)"
    param operators_top: bool = false "normal order: '+' and '=' take the carry-out column's significance"
    param answer_isolated: bool = false "answer tokens attend to the prompt and themselves, not to each other"
    param downward_window: bool = false "windowed digits see only digits of their own or lower significance"
  }

  halting {
    param mode: enum = fixed in [fixed, entropy, wait, gate]
    param threshold: float = 0.05 in 0.0..100.0 "halt a token once its prediction entropy (nats) is below"
    param wait_threshold: float = 0.005 in 0.0..100.0 "wait-to-think: stricter threshold at and after the trigger"
    param trigger: str = "="
    param min_loops: int = 1 in 1..256
    param gate_beta: float = 0.01 in 0.0..10.0 "learned exit gate: weight of KL(halting || geometric prior)"
    param gate_prior: float = 0.2 in 0.001..0.999
    param gate_threshold: float = 0.5 in 0.001..0.999
  }

  training {
    param depth: enum = fixed in [fixed, curriculum, random]
    param curriculum: ints = [2, 4, 8] in 1..256 "loop counts, spread evenly over training"
    param random_min_loops: int = 4 in 1..256
    param random_max_loops: int = 12 in 1..256
    param tbptt: int = 0 in 0..256 "0 = full BPTT through every loop (bug 4)"
    param supervision: enum = last in [last, half, all, weighted] "which loops' outputs carry the loss (bug 11)"
    param progressive: float = 0.0 in 0.0..1.0 "weight of the progressive loss: k loops from a no-gradient state after n (Bansal et al. 2022)"
    param update_skip: float = 0.0 in 0.0..0.9 "chance a token keeps its state through a training loop (asynchronous updates)"
    param batch_size: int = 128 in 1..65536
    param lr: float = 0.003 in 1e-6..1.0
    param min_lr_ratio: float = 0.1 in 0.0..1.0
    param warmup_iters: int = 50 in 0..1000000
    param max_iters: int = 2500 in 1..10000000
    param weight_decay: float = 0.1 in 0.0..10.0
    param grad_clip: float = 1.0 in 0.0..1000.0
    param seed: int = 1337
    param eval_interval: int = 100 in 1..1000000
    param eval_problems: int = 1024 in 1..1000000
    param target_accuracy: float? = 0.999 in 0.0..1.0 "stop once held-out accuracy reaches it"
    param time_limit_s: float
    param device: enum = auto in [auto, cpu, cuda]
    param dtype: enum = auto in [auto, float32, bfloat16] "auto: bf16 autocast on GPU, fp32 on CPU"
  }

  data {
    param task: enum = addition in [addition, chars]
    param format: enum = reversed in [reversed, normal] "reversed: operands and sum least significant digit first"
    param min_digits: int = 1 in 1..100000
    param max_digits: int = 4 in 1..100000
    param chain_share: float = 0.0 in 0.0..0.9 "training problems drawn as carry chains and decoys (same lengths)"
    param text_path: str
    param block_size: int = 64 in 2..1048576
  }

  baseline gpt12 {
    description: "GPT-12L: the same code with 12 distinct blocks (tied: false, n_loops: 12), same width and training budget"
    layers: 12
  }

  baseline gpt12_tied {
    description: "GPT-12L whose blocks all hold the shared block's weights (x0 re-injection and step embedding off): must equal LoopLM-12"
    layers: 12
  }

  kernel halting_update {
    module: "kernels.halting"
    function: halting_update_cutile
    reference: halting_update_reference
    description: "entropy of each row's softmax over the real vocabulary; update active mask, step counters and state"
    dtype: float32
    tiles: {BLOCK_M: 64, MAX_BLOCK_D: 128}
    padding: neg_inf
    reduction: entropy
    mask_columns_by: V
    index_units: tiles
    shapes: [
      {M: 64, V: 14, D: 64},
      {M: 4096, V: 14, D: 64},
      {M: 4096, V: 65, D: 384},
      {M: 1024, V: 1000, D: 256},
    ]
    archs: [sm_80, sm_90, sm_100, sm_120]
  }

  kernel loop_attention {
    module: "kernels.attention"
    function: loop_attention_cutile
    reference: loop_attention_reference
    description: "causal attention with digit-significance bias and hard window, online softmax"
    dtype: bfloat16
    tiles: {MAX_TILE: 64, MIN_TILE: 16}
    padding: neg_inf
    reduction: attention
    index_units: tiles
    shapes: [
      {B: 8, H: 4, T: 48, D: 16},
      {B: 1024, H: 4, T: 40, D: 32},
      {B: 16, H: 4, T: 3000, D: 32},
      {B: 2, H: 2, T: 64, D: 128},
    ]
    archs: [sm_80, sm_90, sm_100, sm_120]
  }

  kernel looped_block {
    module: "kernels.looped_block"
    function: looped_block_cutile
    reference: looped_block_reference
    description: "persistent: all L loops of the shared block for a group of short sequences in one launch"
    dtype: bfloat16
    tiles: {ROWS: 64, MAX_ROWS: 128, CHUNK: 128}
    padding: neg_inf
    reduction: loop
    index_units: tiles
    shapes: [
      {B: 64, T: 40, D: 64, H: 4, V: 14},
      {B: 1024, T: 40, D: 128, H: 4, V: 14},
      {B: 256, T: 99, D: 128, H: 4, V: 14},
    ]
    limits: {T: 128, D: 128}
    archs: [sm_80, sm_90, sm_100, sm_120]
  }

  kernel packed_mask {
    module: "kernels.packed_mask"
    function: packed_mask_cutile
    reference: packed_attention_mask
    description: "the persistent block's attention mask: own sequence only, position scheme and relative bias, built once per forward"
    dtype: float32
    tiles: {MASK_ROWS: 32, MIN_ROWS: 16}
    padding: none
    reduction: none
    index_units: tiles
    shapes: [{G: 342, R: 128, H: 4}, {G: 16, R: 64, H: 4}, {G: 256, R: 128, H: 1}]
    archs: [sm_80, sm_90, sm_100, sm_120]
  }

  kernel looped_tiled {
    module: "kernels.looped_tiled"
    function: looped_tiled_cutile
    reference: looped_tiled_reference
    description: "long rows: one launch per loop over 64-row query tiles, attention only over the key tiles the mask reaches"
    dtype: bfloat16
    tiles: {TILE: 64, KEY_TILE: 64, CHUNK: 128}
    padding: neg_inf
    reduction: loop
    index_units: tiles
    shapes: [{B: 64, T: 303, D: 128, H: 4, V: 14}, {B: 8, T: 3003, D: 128, H: 4, V: 14}]
    limits: {D: 128, V: 128}
    archs: [sm_80, sm_90, sm_100, sm_120]
  }

  // Steps run in this order. Budgets are steps and samples, never seconds: a `timeout` is only
  // a hang guard (default 600 s). The general properties (loop accounting, causality, halting
  // semantics, the real training step, resume, kernel differential tests) hold for every
  // correct looped system; the catalogued steps name the bugs of the seeds.
  protocol {
    step spec_config_sync {
      check: spec.config_sync
      description: "every param of the spec is a field of the system's config with the same type, default and choices"
      expect: "no drift between the spec and the code"
      on_fail: "update the spec or the config so that they agree"
      gates: true
      severity: critical
    }
    step design_rules {
      check: spec.rules
      description: "the knowledge base's rules evaluated against the architecture being trained"
      expect: "no rule of severity error fires"
      on_fail: "change the architecture as the rule advises, or record why not"
      gates: true
      severity: major
      uses: [knowledge, architecture]
    }
    step aligned_batches {
      check: data.aligned_batches
      description: "print one decoded batch; every row starts at a problem boundary and holds whole problems"
      params: {batches: 4, batch_size: 64}
      expect: "every row decodes to whole, correct a+b=c problems from position 0"
      on_fail: "build batches from whole padded problems; never slice a token stream (loss stalls at ~1.28)"
      gates: true
      severity: critical
      bugs: [1]
    }
    step fresh_batches {
      check: data.fresh_batches
      params: {batches: 16, batch_size: 16}
      expect: "the first 16 training batches differ; the same seed repeats them, another seed draws others"
      on_fail: "seed the batch generator from (seed, step, rank), never from a truncated or constant value"
      gates: true
      severity: major
    }
    step answer_only_targets {
      check: data.answer_only_targets
      params: {batch_size: 64}
      expect: "targets are the answer digits and the end token; everything else is the ignore index"
      on_fail: "mask prompt and padding targets with -100"
      gates: true
      severity: critical
      bugs: [2]
    }
    step forward_contract {
      check: model.forward_contract
      expect: "forward(idx, targets) returns (logits, loss, steps) in train and eval mode alike"
      on_fail: "keep one return shape; put new outputs into the named halting result"
      gates: true
      severity: critical
      bugs: [10]
    }
    step eval_mode_loss {
      check: model.eval_mode_loss
      expect: "model.eval() with targets still returns the cross-entropy of its logits"
      on_fail: "compute the loss on the inference path too"
      gates: true
      severity: major
      needs: [forward_contract]
      bugs: [12]
    }
    step loop_accounting {
      check: model.loop_accounting
      expect: "forward(loops=k) runs the block k times; steps count exactly the loops each token ran"
      on_fail: "count loops per token where the loop runs; halted tokens stop counting"
      gates: true
      severity: critical
      needs: [forward_contract]
    }
    step autograd_connectivity {
      check: model.autograd_connectivity
      expect: "the final prediction's loss has a non-zero gradient w.r.t. the state entering every loop"
      on_fail: "keep the loop's states out of in-place writes and detach(); append to a trajectory instead"
      gates: true
      severity: critical
      needs: [forward_contract]
      bugs: [4]
    }
    step supervision_schedule {
      check: train.supervision_schedule
      expect: "the loss reaches the predictions of the loops the declared schedule names and no others"
      on_fail: "supervise the later loops only (half) unless you mean otherwise"
      gates: true
      severity: major
      needs: [forward_contract]
      bugs: [11]
    }
    step training_objective {
      check: train.objective
      expect: "the training loss equals the declared objective recomputed from each loop's prediction (and the learned gate's logits)"
      on_fail: "write the loss as declared: the supervision's weights, or PonderNet's expected loss + beta * KL to the geometric prior"
      gates: true
      severity: major
      needs: [supervision_schedule]
    }
    step causality {
      check: model.causality
      expect: "outputs at or before t ignore later tokens and other rows, halting off and on, on every path"
      on_fail: "mask attention to later positions and to other sequences; halt from a token's own prediction"
      gates: true
      severity: critical
      needs: [forward_contract]
    }
    step halting_semantics {
      check: model.halting_semantics
      expect: "a token halts at the first loop its entropy is below the threshold, then keeps its state; kernel = reference"
      on_fail: "update the state with a mask: h = where(active, new, h); compare the kernel's decisions with the reference"
      gates: true
      severity: major
      needs: [loop_accounting]
    }
    step block_parity {
      check: model.block_parity
      params: {tolerance: 1e-5}
      expect: "one loop of the shared block equals a reference pre-LN block (max diff ~0)"
      on_fail: "diff the block against the reference op by op"
      gates: true
      severity: major
    }
    step temporal_parity {
      check: model.temporal_parity
      params: {tolerance: 1e-5}
      expect: "LoopLM with L loops equals GPT-L whose L blocks hold the shared weights"
      on_fail: "the loop adds something the stack does not (x0, step embedding) or loses the graph"
      gates: true
      severity: major
      uses: [baseline.gpt12_tied]
    }
    step train_step_smoke {
      check: train.step_smoke
      params: {steps: 32, batch_size: 16}
      expect: "the real training step: finite falling loss, every parameter trained, clipped, scheduled as declared"
      on_fail: "the training loop and the model disagree (a stale caller, a missing parameter, a lost clip): fix the loop"
      gates: true
      severity: critical
      needs: [forward_contract]
      bugs: [10]
    }
    step strict_checkpoint_load {
      check: checkpoint.strict_load
      expect: "a checkpoint round-trips exactly; a vocab or shape mismatch is refused, never loaded partially"
      on_fail: "load with strict=True; reset a head only on purpose and say so"
      gates: true
      severity: critical
      bugs: [9]
    }
    step resume_equivalence {
      check: train.resume_equivalence
      params: {first: 6, then: 6}
      expect: "N steps, a checkpoint and M more steps equal N + M straight steps"
      on_fail: "save and restore the optimizer, the step, the RNG and the data position with the weights"
      gates: true
      severity: major
      needs: [strict_checkpoint_load, train_step_smoke]
    }
    step format_parity {
      check: eval.format_parity
      params: {min_accuracy: 0.99, problems: 200}
      expect: "the checkpoint's data format equals the eval format, and accuracy on the trained range is >= 99%"
      on_fail: "store the format in the checkpoint; refuse mismatched evals; never believe an OOD number before this passes"
      gates: true
      severity: critical
      needs: [strict_checkpoint_load]
      bugs: [3]
    }
    step eval_sets {
      check: eval.problem_sets
      description: "each eval set a research figure reports on (plain, carry chains, decoys, unequal operands) is what it is named for, seeded, correct, and disjoint from training"
      expect: "every drawn problem is a correct example meeting its set's stated property; no held-out problem in the training batches"
      on_fail: "fix the set's generator (or its claim); a figure on a wrong set measures something else"
      gates: false
      severity: major
    }
    step generation_parity {
      check: eval.generation_parity
      expect: "the eval's teacher-forced exact match equals real greedy generation"
      on_fail: "evaluate with the function that generates; no shortcut that sees the answer"
      gates: true
      severity: major
      needs: [format_parity]
    }
    step eval_report {
      check: eval.report_consistency
      description: "the figures the eval command reports are the means of the eval's own per-problem verdicts"
      expect: "every reported group's accuracy is the mean of exact match over that group's problems, on a model that answers some"
      on_fail: "aggregate the per-problem verdicts you scored (no floor division, no dropped or relabelled group)"
      gates: true
      severity: major
      needs: [generation_parity]
    }
    step padded_vocab_mask {
      check: kernel.padded_vocab_mask
      params: {vocab: [14, 65, 1000]}
      expect: "with a vocabulary padded to a power of two, the kernel equals its unpadded reference"
      on_fail: "mask padded columns by the real vocab size before exp"
      gates: true
      severity: critical
      uses: [kernel.halting_update]
      bugs: [5]
    }
    step nan_guard {
      check: kernel.nan_guard
      expect: "rows of -inf, +-1e30 and mixed logits give finite entropy and the reference's halt decisions"
      on_fail: "guard (-inf) - (-inf); never compare NaN with a threshold"
      gates: true
      severity: critical
      uses: [kernel.halting_update]
      bugs: [6]
    }
    step tile_index_probe {
      check: kernel.tile_index_probe
      expect: "distinct inputs over several tiles in every dimension, outputs poisoned: every element comes back in place"
      on_fail: "ct.load/ct.store index= counts tiles; do not multiply by the tile size"
      gates: true
      severity: critical
      uses: [
        kernel.halting_update,
        kernel.loop_attention,
        kernel.looped_block,
        kernel.packed_mask,
        kernel.looped_tiled,
      ]
      bugs: [7]
    }
    step kernel_differential {
      check: kernel.differential
      params: {examples: 6}
      expect: "every kernel equals its reference at the declared shapes and at drawn multi-tile shapes"
      on_fail: "reproduce the failing shape with the printed call and diff the kernel against the reference"
      gates: true
      severity: critical
      uses: [
        kernel.halting_update,
        kernel.loop_attention,
        kernel.looped_block,
        kernel.packed_mask,
        kernel.looped_tiled,
      ]
    }
    step kernel_compile {
      check: kernel.compile
      params: {archs: [sm_90]}
      expect: "every declared kernel compiles for its declared shapes; every tile is a power of two"
      on_fail: "pad to a power of two, then slice"
      gates: true
      severity: critical
      uses: [
        kernel.halting_update,
        kernel.loop_attention,
        kernel.looped_block,
        kernel.packed_mask,
        kernel.looped_tiled,
      ]
      bugs: [8]
    }
    step inference_parity {
      check: kernel.inference_parity
      params: {
        variants: [{n_embd: 48, n_head: 3}, {n_embd: 64, n_head: 8}, {n_embd: 32, n_head: 2}],
      }
      expect: "the kernel inference path predicts what the reference path predicts, also after the weights change"
      on_fail: "never cache weight copies across optimizer steps; compare against the reference path"
      gates: true
      severity: critical
    }
    step overfit_batch {
      check: train.overfit_batch
      params: {steps: 300, target_loss: 0.1, batch_size: 16}
      expect: "a single fixed batch is driven below loss 0.1 within 300 steps of the real training step"
      on_fail: "there is a bug: fix it, do not tune"
      gates: true
      severity: critical
      needs: [aligned_batches, answer_only_targets, autograd_connectivity, train_step_smoke]
    }
    step claims {
      check: kb.claims
      expect: "every knowledge-base claim agrees with its evidence file"
      on_fail: "a contradicted claim is a believed number: fix the claim or the evidence"
      gates: false
      required: false
      severity: major
      uses: [knowledge]
    }
  }

  knowledge {
    fact unigram_plateau {
      statement: "A loss stuck near 1.28 on addition is the digits' unigram entropy: the model sees no usable context"
      source: "seeds 001: random slicing + missing answer mask"
      status: observed
    }
    fact no_carry_illusion {
      statement: "Seven different models scoring exactly 9.1% (1-4 digits) was the probability of a carry-free sum: eval fed normal-order problems to reversed-order models"
      source: "seeds 003"
      status: observed
    }
    fact windowed_bias_generalizes {
      statement: "Digit significance as a relative attention bias with a hard +-1 window, x0 re-injected, no position embedding: 100% from 5 to 400 digits after 1-4 digit training"
      source: "experiments issue, H100 pilot, one seed"
      status: hypothesis
    }
    fact headline_length_generalization {
      statement: "LoopLM-12 (shared block, windowed digit-significance bias, x0 re-injected, every loop supervised) trained on 1-4 digit reversed addition scores >= 99% at 1000 digits"
      evidence: "results/length_generalization.json"
      claim: models.looplm_reversed_all_loops.accuracy_by_digits.1000 >= 0.99
      source: "looplm experiment run experiments/looplm_reversed_all_loops.json (H100), then looplm report results --runs runs"
      status: observed
    }
    fact gpt_stack_does_not_extrapolate {
      statement: "GPT-12L with the same windowed bias and the same data falls to <= 5% at 100 digits: depth in space does not extrapolate"
      evidence: "results/length_generalization.json"
      claim: models.gpt12_reversed_windowed.accuracy_by_digits.100 <= 0.05
      source: "experiments/gpt12_reversed_windowed.json (H100)"
      status: observed
    }
    fact fused_loop_kernel_meets_goal {
      statement: "Without halting at L=12 (batch 1024, 12 digits), the persistent cuTile path replayed as a CUDA graph is at least 1.5x faster than the best of torch.compile and CUDA-graphed eager"
      evidence: "bench/results/kernels-h100.json"
      claim: loop_inference.0.speedup_vs_best_other >= 1.5
      source: "python -m bench.kernels_gpu on an H100"
      status: observed
    }
    fact fused_loop_kernel_with_halting {
      statement: "With entropy halting at L=32, the persistent kernel (halting in-kernel) is more than 1.5x faster than the best of torch.compile and CUDA-graphed eager"
      evidence: "bench/results/kernels-h100.json"
      claim: loop_inference.5.speedup_vs_best_other >= 1.5
      source: "python -m bench.kernels_gpu on an H100"
      status: observed
    }
    fact halting_update_near_copy_speed {
      statement: "The halting update (one launch) moves its bytes at 80% or more of the measured device copy bandwidth"
      evidence: "bench/results/kernels-h100.json"
      claim: halting.bandwidth_fraction >= 0.8
      source: "python -m bench.kernels_gpu on an H100"
      status: observed
    }
    fact catalog_caught {
      statement: "Every bug of the catalog, written into a copy of the source, is caught by the protocol"
      evidence: "bench/results/mutants.json"
      claim: detected == 14
      source: "python -m bench.mutants"
      status: observed
    }
    fact persistent_speedup_unmeasured {
      statement: "The seeds' 40% and 3x loop speed-ups were never measured side by side"
      source: "seeds 002"
      status: observed
    }
    rule rope_with_x0 {
      when: position == rope and reinject != none
      apply: "turn x0 re-injection off, or use a position scheme that is not a rotation of the state"
      reason: "x0 carries no rotary phase; adding it each loop dilutes the relative phase RoPE built (seeds 001)"
      severity: warning
    }
    rule loop_index_without_tied {
      when: step_embedding == true and tied == false
      apply: "a step embedding only makes sense for a shared block"
      reason: "distinct blocks already know their depth"
      severity: info
    }
    rule early_supervision_deep_loops {
      when: supervision == all and n_loops > 8
      apply: "supervise the later half of the loops"
      reason: "loss on the first loops forces answers before thinking and makes the loss oscillate (bug 11)"
      severity: warning
    }
    rule dropout_in_loop {
      when: tied == true and dropout > 0.2
      apply: "use little or no dropout inside a looped block"
      reason: "the same dropout noise compounds over every loop"
      severity: info
    }
    rule normal_order_counts_its_place {
      when: format == normal and position == windowed and downward_window == false
      apply: "open the window downward only (downward_window) and put + and = in the carry-out column (operators_top)"
      reason: "1-4 digit normal-order models counted their distance from the top and ended long answers by it (0% at 8 digits); with both, 91% at 12 (results/normal_order.json)"
      severity: info
    }
    rule normal_order_needs_prefix {
      when: format == normal and prefix_bidirectional == false and position == windowed
      apply: "let prompt tokens attend both ways so the carry can travel through the loop"
      reason: "in normal order the first answer digit depends on every lower digit's carry"
      severity: warning
    }
    symptom loss_plateau_unigram {
      detector: loss_plateau
      params: {window: 5, tolerance: 0.08}
      meaning: "loss flat at the answer digits' unigram entropy: batches are misaligned or targets unmasked"
      suggest: "print one decoded batch; mask everything but the answer"
      bugs: [1, 2]
      steps: [aligned_batches, answer_only_targets]
    }
    symptom carry_free_accuracy {
      detector: carry_free_accuracy
      params: {tolerance: 0.02}
      meaning: "per-length accuracy equals the probability that a sum has no carry: format mismatch between training and eval"
      suggest: "compare the checkpoint's format with the eval's"
      bugs: [3]
      steps: [format_parity]
    }
    symptom halt_at_zero {
      detector: halt_at_step_zero
      params: {fraction: 0.95}
      meaning: "every token halts at its first loop: NaN in the halting comparison"
      suggest: "guard the entropy against (-inf) - (-inf)"
      bugs: [6]
      steps: [nan_guard]
    }
    symptom periodic_zeros {
      detector: periodic_zeros
      params: {min_period: 4}
      meaning: "a trace with a run of values followed by zeros, repeating: tiles skipped by an element-scaled tile index"
      suggest: "ct.load index= counts tiles"
      bugs: [7]
      steps: [tile_index_probe]
    }
    symptom memorization {
      detector: memorization
      params: {train_loss: 0.05, ood_accuracy: 0.05}
      meaning: "train loss near zero while out-of-distribution accuracy is near zero: memorized, not learned"
      suggest: "change the positional scheme or the format, not the budget"
    }
    symptom loops_do_not_help {
      detector: loops_do_not_help
      params: {tolerance: 0.01}
      meaning: "accuracy does not change between 1 and L loops: the loop is disconnected from the loss"
      bugs: [4]
      steps: [autograd_connectivity]
    }
  }

  infrastructure {
    device: "NVIDIA H200 (sm_90; earlier an H100), torch 2.11 + CUDA 13.0; seeds used an RTX 5070 (sm_120)"
    python: "3.10+"
    cuda: "13.0 driver; tileiras 13.4 with its own ptxas and libnvvm"
    cutile: "cuda-tile 1.7.0"
    ci: "bash .ci/run on a CPU: tests, spec check, AOT kernel compile"
  }
}
