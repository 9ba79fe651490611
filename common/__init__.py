"""The bottom layer: what every package of the project needs, written once.

- ``common.fileio``: atomic file writes and the project's one temporary-file naming;
- ``common.safe_load``: reading ``.pth`` files without executing code, with one error type
  (``CheckpointError``, ``UnsafeCheckpointError``) and one wording for a file that cannot be used;
- ``common.modules``: ``unwrap_model`` (DDP / torch.compile wrappers);
- ``common.errors``: ``ConfigValueError(key, problem)``, what a package raises for a config value
  it cannot use (the engine reads the key from it);
- ``common.weights``: ``Weights``, the record by which a model package declares a released file,
  and the cache folder of downloaded files.

It imports only the standard library and torch; every other package may import it.
"""
