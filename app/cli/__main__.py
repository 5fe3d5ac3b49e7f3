"""`python -m app.cli ...` (where the package is not installed, e.g. on the GPU machine)."""
from . import main

main()
