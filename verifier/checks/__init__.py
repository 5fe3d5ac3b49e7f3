"""Importing this package registers every check (see verifier/registry.py)."""
from . import (checkpoint_checks, data_checks, kb_checks, kernel_checks, loop_checks, model_checks,  # noqa: F401
               spec_checks, train_checks)
