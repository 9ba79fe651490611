"""``python -m tools.workflows.benchmark``: the child processes of ``--runs`` and ``--isa``."""
import sys

from tools.workflows.benchmark.cli import main

sys.exit(main())
