"""Install the library packages: `pip install -e .` or `pip install .` (dependencies pinned in
requirements.txt).

Package data: the class lists in datasets/labels/, the published protocol split files in
datasets/protocols/, and the released configs (configs/**/*.yaml),
installed as `engine/configs/` so that `engine.config.load_cfg("configs/...yaml")` finds them
from any working directory (see engine/config.py).
"""
import sys
from importlib import metadata
from pathlib import Path

from setuptools import find_packages, setup

HERE = Path(__file__).parent


def warn_if_hugging_face_datasets_installed():
    """Our data package is the top-level `datasets`, as is Hugging Face's distribution of that
    name: installing one over the other mixes their files, and only one can be imported."""
    try:
        version = metadata.version("datasets")
    except metadata.PackageNotFoundError:
        return
    bar = "!" * 78
    sys.stderr.write(
        f"\n{bar}\nWARNING: Hugging Face's `datasets` {version} is installed in this environment "
        f"({sys.prefix}).\nvideo-recognition's data package is also the top-level package "
        f"`datasets`; the two overwrite each\nother's files. Install video-recognition in a "
        f"virtual environment without it\n(`pip uninstall datasets` there).\n{bar}\n\n")


def read_requirements(name: str = "requirements.txt"):
    lines = (HERE / name).read_text().splitlines()
    return [line.split("#")[0].strip() for line in lines if line.split("#")[0].strip()]


warn_if_hugging_face_datasets_installed()

setup(
    name="video-recognition",
    version="0.1.0",
    description="Video-FocalNet and Vita-CLIP: training, evaluation, zero-shot and ablations",
    long_description=(HERE / "README.md").read_text(encoding="utf-8"),
    long_description_content_type="text/markdown",
    python_requires=">=3.10",
    packages=find_packages(exclude=["tests", "tests.*", "tools", "tools.*"]) + ["engine.configs"],
    package_dir={"engine.configs": "configs"},
    package_data={"datasets": ["labels/*.txt", "labels/*.csv", "labels/*.md",
                               "protocols/*.md", "protocols/*/*.txt", "protocols/*/*.csv"],
                  "engine.configs": ["**/*.yaml"]},
    include_package_data=True,
    install_requires=read_requirements(),
    # `pip install .[deploy]`: the inference runtimes of tools/export.py and --runtime
    # (docs/deploy.md), pinned in requirements-deploy.txt
    extras_require={"deploy": read_requirements("requirements-deploy.txt")},
    # Model packages announce themselves to the engine (engine/registry.py); a new model
    # package adds one line here and nothing in engine/.
    entry_points={"video_recognition.models": [
        "video_focalnet = video_focalnet.family:FAMILY",
        "vita_clip = vita_clip.family:FAMILY",
    ]},
    classifiers=["Programming Language :: Python :: 3", "Topic :: Scientific/Engineering"],
)
