"""Importing this package registers every check (see verifier/registry.py)."""
from . import (checkpoint_checks, data_checks, eval_checks, kb_checks, kernel_checks, loop_checks,  # noqa: F401
               loss_checks, model_checks, spec_checks, train_checks)
