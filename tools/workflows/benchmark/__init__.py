"""Speed benchmarks (``tools/benchmark.py``): model steps against the reference port and the
machine's roofline, per instruction set; a before/after guard against another git revision; the
data loader per worker.

Modules, one concern each: ``cli`` (the command), ``models`` (in-process interleaved timing),
``isolated`` (one process per measurement; forced instruction sets), ``guard`` and ``worker``
(this checkout against a revision), ``machine`` (CPU, instruction sets, roofline, matrix work,
per-op profiles), ``revision`` (``git archive`` of a revision), ``loader`` (the loader harness).

Nothing heavy is imported here: a guard worker must put another revision's packages on the import
path before any project module loads.
"""
from __future__ import annotations

__all__ = ["main"]


def main(argv=None) -> int:
    """``tools/benchmark.py``'s entry point (see ``cli``); returns the exit code."""
    from .cli import main as cli_main
    return cli_main(argv)
