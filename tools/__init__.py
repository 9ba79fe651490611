"""Command-line entry points (``python tools/train.py ...``) and, in ``tools.workflows``, the
workflows built on the engine's public API: ablations, zero-shot protocols, benchmarks."""
