"""This package is called ``datasets``, like Hugging Face's ``datasets`` distribution.

Both install a top-level ``datasets`` folder, so one environment cannot hold both: whichever is
imported shadows the other, and installing one over the other mixes their files. ``DISTRIBUTION``
marks this package (the engine checks it and names both packages when the imported ``datasets``
is someone else's); ``check_distribution`` warns once when another ``datasets`` distribution is
installed next to this one.
"""
from __future__ import annotations

import os
import warnings
from importlib import metadata

__all__ = ["DISTRIBUTION", "OTHER_DISTRIBUTION", "check_distribution", "conflict_message"]

DISTRIBUTION = "video-recognition"  # this project's distribution (setup.py name)
OTHER_DISTRIBUTION = "datasets"  # Hugging Face's distribution, same top-level package name


def conflict_message(version: str | None = None) -> str:
    here = os.path.dirname(os.path.abspath(__file__))
    found = f" {version}" if version else ""
    return (f"Hugging Face's `{OTHER_DISTRIBUTION}` distribution{found} is installed in this "
            f"environment, and its top-level package `datasets` has the same name as this "
            f"project's data package ({DISTRIBUTION}, {here}). Only one of them can be imported; "
            f"install {DISTRIBUTION} in a virtual environment without Hugging Face datasets "
            f"(`pip uninstall {OTHER_DISTRIBUTION}` there).")


def check_distribution() -> None:
    """Warn when Hugging Face's ``datasets`` is installed next to this package."""
    try:
        version = metadata.version(OTHER_DISTRIBUTION)
    except metadata.PackageNotFoundError:
        return
    warnings.warn(conflict_message(version), RuntimeWarning, stacklevel=3)
