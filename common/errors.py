"""The error a package raises for a config value it cannot use, carrying the key.

Model packages validate their own keys (``family.validate``, ``family.build``) without importing
the engine; they raise ``ConfigValueError(key, problem)``. The engine reads ``err.key`` (to say
which file, ``--opts`` pair or ablation variant set it) instead of parsing the message.
"""
from __future__ import annotations

__all__ = ["ConfigValueError"]


class ConfigValueError(ValueError):
    """``key`` (dotted, e.g. ``MODEL.FOCAL.ST_DESIGN``) holds a value that cannot be used;
    ``problem`` says what is wrong and what to do. ``str(err)`` is ``"key KEY: PROBLEM"``."""

    def __init__(self, key: str, problem: str):
        super().__init__(f"key {key}: {problem}")
        self.key = key
        self.problem = problem

    def __reduce__(self):  # picklable (distributed workers send errors across processes)
        return type(self), (self.key, self.problem)
