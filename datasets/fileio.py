"""The project's atomic writes, under their earlier name: they live in ``common/fileio.py``, the
bottom package that every layer imports. New code imports ``common.fileio``."""
from common.fileio import *  # noqa: F401,F403
from common.fileio import __all__  # noqa: F401
