"""Faults found at config load: one line naming the file (or --opts, or the ablation variant),
the key and the fix, exit status 2, before anything is written."""
from __future__ import annotations

import logging

import pytest

from engine.config import ConfigError, load_cfg
from tests.helpers.faults import one_error_line, run_main, snapshot
from tools import train
from tools.workflows.ablation import load_ablation


def _write(tmp_path, name, text):
    path = tmp_path / name
    path.write_text(text)
    return str(path)


def test_a_repeated_section_is_refused_with_both_lines(tmp_path):
    path = _write(tmp_path, "dup.yaml", "TRAIN:\n  EPOCHS: 3\nDATA:\n  NUM_FRAMES: 4\n"
                                        "TRAIN:\n  BASE_LR: 0.1\n")
    with pytest.raises(ConfigError, match=r"dup\.yaml line 5: key 'TRAIN' is given twice in one "
                                          r"mapping \(first on line 1\)"):
        load_cfg(path)
    nested = _write(tmp_path, "nested.yaml", "TRAIN:\n  EPOCHS: 3\n  EPOCHS: 4\n")
    with pytest.raises(ConfigError, match=r"nested\.yaml line 3: key 'EPOCHS'"):
        load_cfg(nested)


@pytest.mark.parametrize("name, content, message", [
    ("empty.yaml", b"", "the config file is empty"),
    ("comments.yaml", b"# nothing here\n\n", "the config file is empty"),
    ("binary.yaml", bytes(range(256)) * 4, "not a YAML config (a binary file"),
    ("nul.yaml", b"DATA:\x00\x01\x02", "not a YAML config (a binary file"),
])
def test_empty_and_binary_files_stop_at_load(tmp_path, capsys, name, content, message):
    path = tmp_path / name
    path.write_bytes(content)
    out = tmp_path / "out"
    code, _, err = run_main(train.main, ["--cfg", path, "--opts", "OUTPUT", out], capsys)
    assert code == 2 and message in one_error_line(err) and name in err
    assert not out.exists()


def test_a_directory_as_cfg_says_so(tmp_path, capsys):
    code, _, err = run_main(train.main, ["--cfg", tmp_path], capsys)
    assert code == 2 and one_error_line(err) == (f"error: config file {tmp_path} is a directory; "
                                                 f"give the path of a YAML file")


def test_fractional_epochs_stop_at_load_and_name_their_source(tmp_path):
    path = _write(tmp_path, "half.yaml", "TRAIN:\n  EPOCHS: 2.5\n")
    with pytest.raises(ConfigError, match=r"half\.yaml: key TRAIN\.EPOCHS: expected a whole "
                                          r"number, got 2\.5"):
        load_cfg(path)
    good = _write(tmp_path, "good.yaml", "TRAIN:\n  EPOCHS: 3\n")
    with pytest.raises(ConfigError, match=r"^--opts: key TRAIN\.EPOCHS: expected a whole number"):
        load_cfg(good, ["TRAIN.EPOCHS", "2.5"])
    # a fraction of an epoch is a number of updates where the key allows it
    assert load_cfg(good, ["TRAIN.WARMUP_EPOCHS", "0.5"]).TRAIN.WARMUP_EPOCHS == 0.5


def test_zero_epochs_is_refused_before_anything_is_written(tmp_path, capsys):
    out = tmp_path / "out"
    code, _, err = run_main(train.main, ["--cfg", _write(tmp_path, "c.yaml", "SEED: 1\n"),
                                         "--opts", "TRAIN.EPOCHS", "0", "OUTPUT", out], capsys)
    assert code == 2 and "key TRAIN.EPOCHS: 0 epochs leave nothing to train" in one_error_line(err)
    assert not out.exists()


def test_zero_synthetic_frames_stop_at_load(tmp_path, capsys):
    cfg = _write(tmp_path, "syn.yaml", "DATA:\n  DATASET: synthetic\n  ROOT: " +
                 str(tmp_path / "syn") + "\n")
    code, _, err = run_main(train.main, ["--cfg", cfg, "--opts", "DATA.SYNTHETIC.NUM_FRAMES", "0",
                                         "OUTPUT", tmp_path / "out"], capsys)
    assert code == 2
    assert one_error_line(err) == ("error: --opts: key DATA.SYNTHETIC.NUM_FRAMES: must be at "
                                   "least 1, got 0")
    assert not (tmp_path / "syn").exists() and not (tmp_path / "out").exists()
    odd = _write(tmp_path, "odd.yaml", "DATA:\n  SYNTHETIC:\n    SIZE: 33\n")
    with pytest.raises(ConfigError, match=r"odd\.yaml: key DATA\.SYNTHETIC\.SIZE: must be even"):
        load_cfg(odd)


def test_model_checks_name_the_source_of_the_bad_value(tmp_path):
    base = _write(tmp_path, "base.yaml", "MODEL:\n  FOCAL:\n    FOCAL_WINDOWS: [3, 3, 3, 3]\n")
    with pytest.raises(ConfigError, match=r"^--opts: key MODEL\.FOCAL\.FOCAL_WINDOWS"):
        load_cfg(base, ["MODEL.FOCAL.FOCAL_WINDOWS", "[3, 4, 3, 3]"])
    bad = _write(tmp_path, "bad.yaml", "MODEL:\n  FOCAL:\n    FOCAL_WINDOWS: [3, 4, 3, 3]\n")
    with pytest.raises(ConfigError, match=r"bad\.yaml: key MODEL\.FOCAL\.FOCAL_WINDOWS"):
        load_cfg(bad)
    # a value set by a base file is named by that file, not by the child
    child = _write(tmp_path, "child.yaml", "_BASE_: bad.yaml\nSEED: 3\n")
    with pytest.raises(ConfigError, match=r"bad\.yaml: key MODEL\.FOCAL\.FOCAL_WINDOWS"):
        load_cfg(child)
    with pytest.raises(ConfigError, match=r"^--opts: key TEST\.NUM_CROP"):
        load_cfg(base, ["TEST.NUM_CROP", "2"])


def test_an_ablation_variant_is_named_not_the_base_file(tmp_path):
    base = _write(tmp_path, "base.yaml", "TRAIN:\n  EPOCHS: 2\n")
    ablation = _write(tmp_path, "abl.yaml", "variants:\n  - name: ok\n    opts: {TRAIN.EPOCHS: 1}\n"
                                            "  - name: half\n    opts: {TRAIN.EPOCHS: 2.5}\n"
                                            "  - name: crop\n    opts: {TEST.NUM_CROP: 2}\n")
    with pytest.raises(ConfigError) as err:
        load_ablation(ablation, base)
    assert str(err.value) == (f"{ablation}: variant 1 (half): key TRAIN.EPOCHS: expected a whole "
                              f"number, got 2.5; use e.g. 2")
    assert "base.yaml" not in str(err.value)


def test_img_size_and_input_size_follow_each_other(tmp_path, caplog):
    only_img = _write(tmp_path, "img.yaml", "DATA:\n  IMG_SIZE: 112\n")
    cfg = load_cfg(only_img)
    assert (cfg.DATA.IMG_SIZE, cfg.DATA.INPUT_SIZE) == (112, 112)
    cfg = load_cfg(None, ["DATA.INPUT_SIZE", "96"])
    assert (cfg.DATA.IMG_SIZE, cfg.DATA.INPUT_SIZE) == (96, 96)
    assert load_cfg(None).DATA.INPUT_SIZE == 224  # neither set: the defaults, unchanged
    with caplog.at_level(logging.WARNING, logger="engine.config"):
        cfg = load_cfg(only_img, ["DATA.INPUT_SIZE", "128"])
    assert (cfg.DATA.IMG_SIZE, cfg.DATA.INPUT_SIZE) == (112, 128)
    said = [r.getMessage() for r in caplog.records if "differ" in r.getMessage()]
    assert len(said) == 1 and "img.yaml" in said[0] and "--opts" in said[0]


def test_a_bad_config_writes_nothing_into_an_existing_run(tmp_path, capsys):
    out = tmp_path / "out"
    out.mkdir()
    (out / "config.yaml").write_text("previous\n")
    (out / "log.txt").write_text("previous\n")
    before = snapshot(out)
    cfg = _write(tmp_path, "c.yaml", f"OUTPUT: {out}\nTRAIN:\n  EPOCHS: 1.5\n")
    code, _, err = run_main(train.main, ["--cfg", cfg], capsys)
    assert code == 2 and "TRAIN.EPOCHS" in one_error_line(err)
    assert snapshot(out) == before
