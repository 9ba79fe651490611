"""Config errors, carrying the key: what a package raises for a value it cannot use
(``ConfigValueError``), and what the engine reports (``ConfigError``, re-exported by
``engine.config``).

Model packages validate their own keys (``family.validate``, ``family.build``) without importing
the engine; they raise ``ConfigValueError(key, problem)``. The engine reads ``err.key`` (to say
which file, ``--opts`` pair or ablation variant set it) instead of parsing the message.
"""
from __future__ import annotations

__all__ = ["ConfigValueError", "ConfigError"]


class ConfigValueError(ValueError):
    """``key`` (dotted, e.g. ``MODEL.FOCAL.ST_DESIGN``) holds a value that cannot be used;
    ``problem`` says what is wrong and what to do. ``str(err)`` is ``"key KEY: PROBLEM"``."""

    def __init__(self, key: str, problem: str):
        super().__init__(f"key {key}: {problem}")
        self.key = key
        self.problem = problem

    def __reduce__(self):  # picklable (distributed workers send errors across processes)
        return type(self), (self.key, self.problem)


class ConfigError(ValueError):
    """A config file, key or value that cannot be used; the message says where and what to do.
    ``key``: the dotted key at fault, when there is one."""

    def __init__(self, message: str, key: str | None = None):
        super().__init__(message)
        self.key = key

    def __reduce__(self):
        return type(self), (str(self), self.key)
