"""Workflows above the training engine, each using only its public API and the model registry:
ablation runs (``ablation``), model speed benchmarks (``benchmark``), zero-shot protocols
(``zero_shot``)."""
