"""Support code shared by the tests, imported as ``tests.helpers.<module>``.

- ``shared``: the ``../shared`` folder (golden vectors, real clips, label lists), skipped when
  it is missing unless ``REQUIRE_GOLDEN=1`` (CI) turns the skip into a failure;
- ``tiny``: the one tiny config (synthetic data, a Video-FocalNet or Vita-CLIP of a few thousand
  parameters) as YAML text or ``--opts`` pairs;
- ``faults``: running an entry point in-process, its one error line, folder snapshots;
- ``trained``: tiny models trained once per session for the inference-tool tests;
- ``weights_server``: a local HTTP server standing in for weights hosts.
- ``checkout``: whether the tests run from a git checkout (the ``--baseline`` harnesses need one).

The line-by-line reference ports stay at ``tests/reference_vfn.py`` and
``tests/reference_vita.py``: ``tools/benchmark.py --compare-reference`` imports them too.
"""
