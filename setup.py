"""Install the library packages: `pip install -e .` (dependencies pinned in requirements.txt)."""
from pathlib import Path

from setuptools import find_packages, setup

HERE = Path(__file__).parent


def read_requirements():
    lines = (HERE / "requirements.txt").read_text().splitlines()
    return [line.split("#")[0].strip() for line in lines if line.split("#")[0].strip()]


setup(
    name="video-recognition",
    version="0.1.0",
    description="Video-FocalNet and Vita-CLIP: training, evaluation, zero-shot and ablations",
    long_description=(HERE / "README.md").read_text(encoding="utf-8"),
    long_description_content_type="text/markdown",
    python_requires=">=3.10",
    packages=find_packages(include=["engine*", "video_focalnet*", "vita_clip*", "datasets*"]),
    include_package_data=True,
    install_requires=read_requirements(),
    # Model packages announce themselves to the engine (engine/registry.py); a new model
    # package adds one line here and nothing in engine/.
    entry_points={"video_recognition.models": [
        "video_focalnet = video_focalnet.family:FAMILY",
        "vita_clip = vita_clip.family:FAMILY",
    ]},
    classifiers=["Programming Language :: Python :: 3", "Topic :: Scientific/Engineering"],
)
