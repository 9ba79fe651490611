"""The config tree: defaults, YAML merging with bases, overrides, validation errors."""
from __future__ import annotations

import os
import sys
import textwrap

import pytest

from engine.config import ConfigError, get_cfg, load_cfg, merge_opts

# The official Video-FocalNets K400-tiny file, key for key (spec section 3.2).
OFFICIAL_K400_TINY = """\
DATA:
    ROOT: ''
    TRAIN_FILE: '../datasets/kinetics-dataset/k400_resized_1/annotations_svt/train.csv'
    VAL_FILE: '../datasets/kinetics-dataset/k400_resized_1/annotations_svt/val.csv'
    DATASET: kinetics400
    NUM_FRAMES: 8
    NUM_CLASSES: 400
    LABEL_LIST: 'labels/kinetics_400_labels.csv'
    BATCH_SIZE: 8
MODEL:
  TYPE: videofocalnet_tiny
  NAME: video-focalnet_tiny
  DROP_PATH_RATE: 0.2
  NUM_CLASSES: 400
  FOCAL:
    EMBED_DIM: 96
    DEPTHS: [2, 2, 6, 2]
    FOCAL_LEVELS: [2, 2, 2, 2]
    FOCAL_WINDOWS: [3, 3, 3, 3]
  LABEL_SMOOTHING: 0.1
TRAIN:
  BASE_LR: 0.1
  WARMUP_LR: 0.001
  MIN_LR: 0.001
  EPOCHS: 120
  WEIGHT_DECAY: 1e-4
  OPTIMIZER:
    NAME: "sgd"
  WARMUP_EPOCHS: 20
  PRETRAINED_PATH: './pretrained/focalnet_tiny_srf.pth'
AUG:
  FRAME_INTERVAL: 4
  FLIP_RATIO: 0.5
  COLOR_JITTER: 0.8
  GRAY_SCALE: 0.2
  MIXUP: 0.8
  MIXUP_PROB: 0.5
SAVE_FREQ: 10
"""


def write(tmp_path, name, text):
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return str(path)


def test_defaults_are_fresh_copies():
    a, b = get_cfg(), get_cfg()
    a.DATA.NUM_FRAMES = 3
    assert b.DATA.NUM_FRAMES == 32
    assert b.MODEL.FOCAL.ST_DESIGN == "parallel"
    assert b.MODEL.VITA.NUM_GLOBAL_PROMPTS == 8


def test_official_file_loads_unchanged(tmp_path):
    cfg = load_cfg(write(tmp_path, "tiny.yaml", OFFICIAL_K400_TINY))
    assert cfg.is_frozen()
    import datasets  # LABEL_LIST 'labels/kinetics_400_labels.csv' reads the bundled list
    assert len(datasets.class_names(cfg)) == 400
    assert cfg.MODEL.TYPE == "videofocalnet_tiny"
    assert cfg.TRAIN.WEIGHT_DECAY == pytest.approx(1e-4)  # "1e-4" is a string to PyYAML
    assert isinstance(cfg.TRAIN.WEIGHT_DECAY, float)
    assert cfg.TRAIN.OPTIMIZER.NAME == "sgd"
    assert cfg.AUG.FRAME_INTERVAL == 4 and cfg.SAVE_FREQ == 10
    assert list(cfg.MODEL.FOCAL.DEPTHS) == [2, 2, 6, 2]


def test_base_inheritance_and_opts(tmp_path):
    base = write(tmp_path, "base.yaml", OFFICIAL_K400_TINY)
    child = write(tmp_path, "child.yaml", """\
        _BASE_: base.yaml
        DATA:
          NUM_FRAMES: 16
        """)
    cfg = load_cfg(child, ["TRAIN.BASE_LR", "0.05", "MODEL.FOCAL.ST_DESIGN", "joint",
                           "TRAIN.OPTIMIZER.BETAS", "(0.8, 0.9)"])
    assert cfg.DATA.NUM_FRAMES == 16  # child wins
    assert cfg.DATA.NUM_CLASSES == 400  # from the base
    assert cfg.TRAIN.BASE_LR == pytest.approx(0.05)
    assert cfg.MODEL.FOCAL.ST_DESIGN == "joint"
    assert tuple(cfg.TRAIN.OPTIMIZER.BETAS) == (0.8, 0.9)
    assert base  # the base file is read through the child


def test_official_base_list_key(tmp_path):
    write(tmp_path, "a.yaml", "DATA:\n  NUM_FRAMES: 4\n")
    child = write(tmp_path, "b.yaml", "BASE: ['a.yaml']\nTRAIN:\n  EPOCHS: 3\n")
    cfg = load_cfg(child)
    assert cfg.DATA.NUM_FRAMES == 4 and cfg.TRAIN.EPOCHS == 3


def test_unknown_key_names_file_and_suggests(tmp_path):
    path = write(tmp_path, "bad.yaml", "TRAIN:\n  BASE_LRR: 0.1\n")
    with pytest.raises(ConfigError) as err:
        load_cfg(path)
    message = str(err.value)
    assert "bad.yaml" in message and "TRAIN.BASE_LRR" in message
    assert "TRAIN.BASE_LR" in message.replace("TRAIN.BASE_LRR", "")


def test_unknown_override_suggests():
    with pytest.raises(ConfigError, match="MODEL.FOCAL.ST_DESIGN"):
        load_cfg(None, ["MODEL.FOCAL.ST_DESING", "joint"])


def test_wrong_type(tmp_path):
    path = write(tmp_path, "bad.yaml", "DATA:\n  NUM_FRAMES: eight\n")
    with pytest.raises(ConfigError, match=r"bad.yaml.*DATA.NUM_FRAMES.*expected int"):
        load_cfg(path)
    with pytest.raises(ConfigError, match="is a section"):
        load_cfg(None, ["MODEL.FOCAL", "3"])


@pytest.mark.parametrize("opts, key", [
    (["MODEL.TYPE", "videofocalnet_huge"], "MODEL.TYPE"),
    (["DATA.DATASET", "kinetics700"], "DATA.DATASET"),
    (["MODEL.FOCAL.ST_DESIGN", "serial"], "MODEL.FOCAL.ST_DESIGN"),
    (["MODEL.FOCAL.FOCAL_WINDOWS", "[3, 4, 3, 3]"], "MODEL.FOCAL.FOCAL_WINDOWS"),
    (["MODEL.FOCAL.FOCAL_LEVELS", "[2, 2]"], "MODEL.FOCAL.FOCAL_LEVELS"),
    (["DATA.NUM_FRAMES", "9", "MODEL.TUBELET_SIZE", "2"], "DATA.NUM_FRAMES"),
    (["MODEL.FOCAL.USE_CONV_EMBED", "True", "MODEL.TUBELET_SIZE", "2", "DATA.NUM_FRAMES", "8"],
     "MODEL.FOCAL.USE_CONV_EMBED"),
    (["DATA.IMG_SIZE", "16"], "DATA.IMG_SIZE"),
    (["TEST.NUM_CROP", "2"], "TEST.NUM_CROP"),
    (["AUG.FLIP_RATIO", "1.5"], "AUG.FLIP_RATIO"),
    (["TRAIN.AMP", "fp8"], "TRAIN.AMP"),
    (["DATA.NUM_FRAMES", "0"], "DATA.NUM_FRAMES"),
])
def test_out_of_range_values(opts, key):
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        load_cfg(None, opts)


def test_unknown_model_type_suggests_closest():
    with pytest.raises(ConfigError, match="videofocalnet_tiny"):
        load_cfg(None, ["MODEL.TYPE", "videofocalnet_tinny"])


def test_missing_files(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        load_cfg(str(tmp_path / "nope.yaml"))
    child = write(tmp_path, "child.yaml", "_BASE_: missing.yaml\n")
    with pytest.raises(ConfigError, match="missing.yaml"):
        load_cfg(child)


def test_invalid_yaml_names_line(tmp_path):
    path = write(tmp_path, "broken.yaml", "DATA:\n  NUM_FRAMES: [1, 2\nMODEL:\n  TYPE: x\n")
    with pytest.raises(ConfigError, match=r"broken.yaml line \d+"):
        load_cfg(path)


def test_odd_number_of_overrides():
    with pytest.raises(ConfigError, match="KEY VALUE pairs"):
        load_cfg(None, ["TRAIN.EPOCHS"])


def test_apex_level_is_mapped(tmp_path, caplog):
    path = write(tmp_path, "amp.yaml", "AMP_OPT_LEVEL: O1\n")
    with caplog.at_level("WARNING"):
        cfg = load_cfg(path)
    assert cfg.TRAIN.AMP == "fp16"
    assert "AMP_OPT_LEVEL" in caplog.text
    cfg = get_cfg()
    merge_opts(cfg, ["AMP_OPT_LEVEL", "O0"])
    assert cfg.TRAIN.AMP == "off"


def test_circular_bases(tmp_path):
    write(tmp_path, "a.yaml", "_BASE_: b.yaml\n")
    b = write(tmp_path, "b.yaml", "_BASE_: a.yaml\n")
    with pytest.raises(ConfigError, match="circular"):
        load_cfg(b)


def test_every_shipped_config_loads(repo_root):
    files = sorted((repo_root / "configs").rglob("*.yaml"))
    ablation_like = [f for f in files if "variants" in f.read_text()]
    for path in files:
        if path in ablation_like:
            continue
        cfg = load_cfg(str(path))
        assert cfg.MODEL.TYPE


def test_empty_string_override_stays_a_string():
    cfg = load_cfg(None, ["DATA.VAL_FILE", "", "OUTPUT", "runs/x"])
    assert cfg.DATA.VAL_FILE == "" and cfg.OUTPUT == "runs/x"


# ---------------------------------------------------------------------------------------------
# Released configs from any directory, normalisation from the model family, the data package
# ---------------------------------------------------------------------------------------------
def test_released_config_found_from_another_directory(tmp_path, monkeypatch):
    from engine.config import find_config_file
    monkeypatch.chdir(tmp_path)
    for spelling in ("configs/video_focalnet/kinetics400/tiny.yaml",
                     "./configs/video_focalnet/kinetics400/tiny.yaml",
                     "video_focalnet/kinetics400/tiny.yaml"):
        found = find_config_file(spelling)
        assert os.path.isfile(found) and found.endswith("kinetics400/tiny.yaml"), spelling
    cfg = load_cfg("configs/demo/spatial.yaml")  # a bundled file with a relative _BASE_
    assert cfg.DATA.DATASET == "synthetic"
    with pytest.raises(ConfigError, match="configs/nope.yaml.*released configs"):
        load_cfg("configs/nope.yaml")


def test_a_local_file_wins_over_the_released_one(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "configs" / "demo").mkdir(parents=True)
    (tmp_path / "configs" / "demo" / "base.yaml").write_text("TRAIN:\n  EPOCHS: 7\n")
    assert load_cfg("configs/demo/base.yaml").TRAIN.EPOCHS == 7


@pytest.mark.parametrize("model_type, mean", [("videofocalnet_tiny", (0.485, 0.456, 0.406)),
                                              ("vita_clip", (0.48145466, 0.4578275, 0.40821073))])
def test_empty_mean_std_come_from_the_model_family(model_type, mean):
    from engine.registry import model_family
    cfg = load_cfg(None, ["MODEL.TYPE", model_type])
    assert tuple(cfg.DATA.MEAN) == pytest.approx(mean)
    assert (tuple(cfg.DATA.MEAN), tuple(cfg.DATA.STD)) == tuple(
        tuple(v) for v in model_family(model_type).normalization(cfg))
    cfg = load_cfg(None, ["MODEL.TYPE", model_type, "DATA.MEAN", "[0.5, 0.5, 0.5]"])
    assert list(cfg.DATA.MEAN) == [0.5, 0.5, 0.5] and len(cfg.DATA.STD) == 3  # own kept


def test_foreign_datasets_package_is_named(monkeypatch):
    import types
    from engine.config_checks import data_package
    assert data_package().DISTRIBUTION == "video-recognition"
    impostor = types.ModuleType("datasets")
    impostor.__file__ = "/site-packages/datasets/__init__.py"
    monkeypatch.setitem(sys.modules, "datasets", impostor)
    with pytest.raises(ConfigError, match="(?s)/site-packages/datasets.*Hugging Face.*"
                                          "video-recognition"):
        load_cfg(None, [])


def test_hugging_face_distribution_warns(monkeypatch):
    from importlib import metadata
    from datasets import _guard
    monkeypatch.setattr(metadata, "version", lambda name: "2.19.0" if name == "datasets" else
                        (_ for _ in ()).throw(metadata.PackageNotFoundError(name)))
    with pytest.warns(RuntimeWarning, match="(?s)Hugging Face.s `datasets` distribution 2.19.0.*"
                                            "video-recognition"):
        _guard.check_distribution()
