---
title: "nanoloop"
source: "examples/nanoloop: a looped transformer written apart from LoopLM, to show the verifier on foreign code"
date: 2026-12-01
status: active
tags: [example, looped, packed]
---

// The protocol of the bundled spec, run against another looped system through the same
// contract: its legitimate design differences (packed rows, ignore index -1, max-probability
// halting, last-loop supervision, a constant learning rate) are declared by system.py's
// design() and read by the checks. It has no kernels: the kernel steps are skipped, naming
// the capability.
system nanoloop {
  implementation: "system.py:NanoLoopSystem"

  objective {
    goal: "Learn 1-3 digit addition in packed rows with one looped block"
  }

  architecture {
    param n_embd: int = 64 in 16..1024
    param n_head: int = 4 in 1..16
    param n_loop: int = 6 in 1..64 "block applications per forward"
    param block_size: int = 48 in 16..4096 "tokens per packed row"
    param max_digits: int = 3 in 1..12
    param fmt: enum = reversed in [plain, reversed]
    param batch_size: int = 16 in 1..4096
    param lr: float = 0.003 in 1e-5..1.0
    param steps: int = 1500 in 1..1000000
    param grad_clip: float = 1.0 in 0.0..100.0
    param halt_prob: float = 0.95 in 0.0..1.0 "inference: halt once the top probability passes this"
    param seed: int = 7
  }

  protocol {
    step spec_config_sync {
      check: spec.config_sync
      gates: true
      severity: critical
    }
    step aligned_batches {
      check: data.aligned_batches
      params: {batches: 2, batch_size: 16}
      on_fail: "pack whole examples; never cut a token stream at random offsets"
      gates: true
      bugs: [1]
    }
    step fresh_batches {
      check: data.fresh_batches
      gates: true
      severity: major
    }
    step answer_only_targets {
      check: data.answer_only_targets
      params: {batch_size: 16}
      on_fail: "targets only on answer tokens and ';'"
      gates: true
      bugs: [2]
    }
    step forward_contract {
      check: model.forward_contract
      gates: true
      bugs: [10]
    }
    step eval_mode_loss {
      check: model.eval_mode_loss
      gates: true
      needs: [forward_contract]
      bugs: [12]
    }
    step loop_accounting {
      check: model.loop_accounting
      gates: true
      needs: [forward_contract]
    }
    step autograd_connectivity {
      check: model.autograd_connectivity
      gates: true
      needs: [forward_contract]
      bugs: [4]
    }
    step supervision_schedule {
      check: train.supervision_schedule
      gates: true
      needs: [forward_contract]
      bugs: [11]
    }
    step training_objective {
      check: train.objective
      gates: true
      needs: [supervision_schedule]
    }
    step causality {
      check: model.causality
      gates: true
      needs: [forward_contract]
    }
    step halting_semantics {
      check: model.halting_semantics
      gates: true
      needs: [loop_accounting]
    }
    step train_step_smoke {
      check: train.step_smoke
      params: {steps: 32, batch_size: 8}
      on_fail: "the training loop and the model disagree: fix the loop"
      gates: true
      needs: [forward_contract]
      bugs: [10]
    }
    step strict_checkpoint_load {
      check: checkpoint.strict_load
      gates: true
      bugs: [9]
    }
    step resume_equivalence {
      check: train.resume_equivalence
      params: {first: 5, then: 5}
      gates: true
      needs: [strict_checkpoint_load, train_step_smoke]
    }
    step format_parity {
      check: eval.format_parity
      gates: true
      needs: [strict_checkpoint_load]
      bugs: [3]
    }
    step generation_parity {
      check: eval.generation_parity
      gates: true
      needs: [format_parity]
    }
    step block_parity {
      check: model.block_parity
      gates: true
    }
    step kernel_differential {
      check: kernel.differential
      gates: true
    }
    step inference_parity {
      check: kernel.inference_parity
      gates: true
    }
    step overfit_batch {
      check: train.overfit_batch
      params: {steps: 300, target_loss: 0.1, batch_size: 8}
      gates: true
      needs: [aligned_batches, answer_only_targets, autograd_connectivity, train_step_smoke]
    }
  }
}
