"""`pip install .` (a real wheel, not editable) works from a directory outside the checkout.

Builds the wheel from a copy of the sources, installs it with pip into a fresh virtual
environment, and runs the public API there from an empty working directory: every registered
model family builds a tiny model, every dataset layout's bundled class list reads, a released
config loads by its repository path, the published protocol files are there (a protocol
config's list and class files resolve to them), and a tiny Video-FocalNet trains one epoch on a tiny
synthetic set and is tested from its checkpoint.

The new environment reuses the third-party packages of the running one without copying them:
its site-packages holds a ``.pth`` line naming a folder of symlinks to every entry of the current
site-packages *except* this project's packages, its editable-install hooks and its metadata, so
only the installed wheel can provide ``datasets``, ``engine``, ``video_focalnet``, ``vita_clip``.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
import textwrap
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

PROJECT_PACKAGES = ("common", "datasets", "engine", "video_focalnet", "vita_clip")
SOURCES = PROJECT_PACKAGES + ("configs", "setup.py", "README.md", "requirements.txt",
                              "requirements-deploy.txt",
                              "MANIFEST.in")
HIDDEN = set(PROJECT_PACKAGES) | {"tools", "tests", "distutils-precedence.pth"}

# Runs inside the new environment, from an empty directory; prints one JSON line.
SCRIPT = textwrap.dedent("""
    import json, os, sys
    import torch
    torch.set_num_threads(1)
    import common as bottom, datasets, engine, video_focalnet, vita_clip
    from engine import registry
    from engine.build import build_model
    from engine.config import load_cfg
    from engine.evaluation import test
    from engine.trainer import train

    out = {"files": {m.__name__: m.__file__
                     for m in (bottom, datasets, engine, video_focalnet, vita_clip)}}
    out["labels"] = {name: len(datasets.default_class_names(name) or [])
                     for name in datasets.layout_names()}
    released = load_cfg("configs/video_focalnet/kinetics400/tiny.yaml")
    out["released"] = [released.MODEL.TYPE, len(datasets.class_names(released))]
    out["protocols"] = {rel: len(datasets.read_list_file(datasets.bundled_protocol_file(rel)))
                        for rel in ("k600_zero_shot/split3_val.txt",
                                    "few_shot/ssv2_train1_2shot.txt",
                                    "base_to_novel/k400_novel_val.txt")}
    few_shot = load_cfg("configs/vita_clip/few_shot/hmdb51.yaml")
    out["few_shot"] = [datasets.annotation_file(few_shot, "train"),
                       len(datasets.class_names(few_shot))]

    tiny = {"video_focalnet": ["MODEL.TYPE", "videofocalnet_custom",
                               "MODEL.FOCAL.EMBED_DIM", "8", "MODEL.FOCAL.DEPTHS", "[1, 1]",
                               "MODEL.FOCAL.FOCAL_LEVELS", "[1, 1]",
                               "MODEL.FOCAL.FOCAL_WINDOWS", "[3, 3]"],
            "vita_clip": ["MODEL.TYPE", "vita_clip", "MODEL.VITA.FEATURE_DIM", "32",
                          "MODEL.VITA.NUM_HEADS", "2", "MODEL.VITA.NUM_LAYERS", "1",
                          "MODEL.VITA.EMBED_DIM", "16", "MODEL.VITA.TEXT_TRANSFORMER_WIDTH", "16",
                          "MODEL.VITA.TEXT_TRANSFORMER_HEADS", "2",
                          "MODEL.VITA.TEXT_TRANSFORMER_LAYERS", "1",
                          "MODEL.VITA.NUM_GLOBAL_PROMPTS", "2", "MODEL.VITA.TEXT_NUM_PROMPTS", "2",
                          "MODEL.VITA.PATCH_SIZE", "[16, 16]"]}
    common = ["DATA.DATASET", "synthetic", "DATA.NUM_FRAMES", "2", "DATA.IMG_SIZE", "32",
              "DATA.INPUT_SIZE", "32", "MODEL.NUM_CLASSES", "10", "DATA.NUM_CLASSES", "10"]
    out["logits"] = {}
    for family in registry.model_families():
        cfg = load_cfg(None, tiny[family.name] + common)
        model = build_model(cfg, datasets.class_names(cfg)).eval()
        with torch.no_grad():
            logits = model(family.example_input(cfg, batch_size=2))
        out["logits"][family.name] = list(logits.shape)

    run = tiny["video_focalnet"] + common + [
        "DATA.ROOT", "syn", "DATA.SYNTHETIC.NUM_TRAIN", "8", "DATA.SYNTHETIC.NUM_VAL", "4",
        "DATA.SYNTHETIC.NUM_FRAMES", "4", "DATA.SYNTHETIC.SIZE", "32", "DATA.BATCH_SIZE", "4",
        "DATA.NUM_WORKERS", "0", "DATA.DECODER", "pyav", "TEST.BATCH_SIZE", "4",
        "TRAIN.EPOCHS", "1", "TRAIN.WARMUP_EPOCHS", "0", "AUG.MIXUP", "0.0", "AUG.CUTMIX", "0.0",
        "DIST.DEVICE", "cpu", "OUTPUT", "run", "PRINT_FREQ", "1"]
    cfg = load_cfg("configs/demo/base.yaml", run)
    train(cfg)
    result = test(cfg, os.path.join("run", "latest.pth"))
    out["test"] = {k: result[k] for k in ("num_videos", "top1") if k in result}
    out["outputs"] = sorted(os.listdir("run"))
    print("RESULT " + json.dumps(out))
""")


def _site_packages() -> Path:
    return Path(sysconfig.get_paths()["purelib"])


def _hidden(name: str) -> bool:
    return (name in HIDDEN or name.startswith(("video_recognition", "__editable__"))
            or name.endswith(".pth") or name == "__pycache__")


@pytest.fixture(scope="module")
def venv(tmp_path_factory, repo_root):
    base = tmp_path_factory.mktemp("wheel")
    src = base / "src"
    src.mkdir()
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info")
    for name in SOURCES:
        path = repo_root / name
        if path.is_dir():
            shutil.copytree(path, src / name, ignore=ignore)
        else:
            shutil.copy2(path, src / name)
    wheels = base / "wheels"
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
                    "--disable-pip-version-check", "-q", "-w", str(wheels), str(src)],
                   check=True, cwd=base)
    (wheel,) = wheels.glob("video_recognition-*.whl")

    env_dir = base / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(env_dir)], check=True)
    python = env_dir / "bin" / "python"
    purelib = subprocess.run([str(python), "-c", "import sysconfig; "
                              "print(sysconfig.get_paths()['purelib'])"], check=True,
                             capture_output=True, text=True).stdout.strip()
    deps = base / "deps"  # the current environment's packages, minus this project
    deps.mkdir()
    for entry in _site_packages().iterdir():
        if not _hidden(entry.name):
            (deps / entry.name).symlink_to(entry)
    Path(purelib, "_deps.pth").write_text(f"{deps}\n")
    subprocess.run([str(python), "-m", "pip", "install", "--no-deps", "--no-index",
                    "--disable-pip-version-check", "-q", str(wheel)], check=True,
                   env=_clean_env())
    return env_dir


def _clean_env() -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    env.update(OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", PYTHONWARNINGS="ignore")
    return env


def test_wheel_works_outside_the_checkout(venv, tmp_path):
    work = tmp_path / "work"
    work.mkdir()
    proc = subprocess.run([str(venv / "bin" / "python"), "-c", SCRIPT], cwd=work,
                          env=_clean_env(), capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-4000:]
    line = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")][-1]
    out = json.loads(line[len("RESULT "):])

    for module, path in out["files"].items():  # the installed copy, not the checkout
        assert Path(path).resolve().is_relative_to(venv.resolve()), (module, path)
    assert out["labels"] == {"csv": 0, "kinetics400": 400, "kinetics600": 600, "ssv2": 174,
                             "hmdb51": 51, "ucf101": 101, "diving48": 48, "activitynet": 200,
                             "synthetic": 10}
    assert out["released"] == ["videofocalnet_tiny", 400]
    assert out["protocols"] == {"k600_zero_shot/split3_val.txt": 14136,
                                "few_shot/ssv2_train1_2shot.txt": 348,
                                "base_to_novel/k400_novel_val.txt": 9933}
    train_list, num_classes = out["few_shot"]  # a protocol config's files, from the wheel
    assert Path(train_list).resolve().is_relative_to(venv.resolve()) and num_classes == 51
    assert out["logits"] == {"video_focalnet": [2, 10], "vita_clip": [2, 10]}
    assert out["test"]["num_videos"] == 4 and 0.0 <= out["test"]["top1"] <= 100.0
    assert {"latest.pth", "config.yaml", "eval_results.json"} <= set(out["outputs"])
    assert not (work / "run").joinpath("latest.pth").is_symlink()
