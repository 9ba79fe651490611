"""tools/extract_features.py end to end: the features are the model's pre-logit features of
evaluation's views, a re-run resumes, other settings are refused, an undecodable video is left
out, and two torchrun processes give what one process gives."""
from __future__ import annotations

import csv
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

import datasets
from engine.config import load_cfg
from engine.inference import load_trained_model
from tests.helpers.trained import focal, long_video, vita  # noqa: F401  (fixtures)
from tools.extract_features import main as extract

pytestmark = pytest.mark.slow
REPO = Path(__file__).resolve().parents[2]


def _index(path: Path) -> list[dict]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def _expected(run, videos) -> np.ndarray:
    """Pre-logit features of the test Dataset's views, averaged over the views."""
    cfg = load_cfg(str(run.cfg))
    model = load_trained_model(cfg, str(run.checkpoint))
    dataset = datasets.VideoDataset([(str(v), 0) for v in videos], cfg, "test")
    rows = []
    with torch.no_grad():
        for i in range(len(dataset)):
            views = dataset[i][0]
            if hasattr(model, "encode_video"):
                feats = model.encode_video(views)
            else:
                feats = model.forward_head(model.forward_features(views), pre_logits=True)
            rows.append(feats.mean(0).numpy())
    return np.stack(rows)


@pytest.mark.parametrize("model,dim", [("focal", 16), ("vita", 16)])
def test_features_are_the_models_pre_logit_features(model, dim, request, tmp_path, capsys):
    run = request.getfixturevalue(model)
    out = tmp_path / "feats"
    assert extract(["--cfg", str(run.cfg), "--checkpoint", str(run.checkpoint),
                    "--input", str(run.data / "val.csv"), "--out", str(out)]) == 0
    features = np.load(out / "features.npy")
    assert features.shape == (6, dim) and features.dtype == np.float32
    index = _index(out / "index.csv")
    assert [r["video"] for r in index] == [str(v) for v in run.val_videos]
    assert [int(r["row"]) for r in index] == list(range(6))
    np.testing.assert_allclose(features, _expected(run, run.val_videos), rtol=1e-5, atol=1e-6)
    assert "6 videos, 0 done earlier" in capsys.readouterr().out


def test_resume_refusal_and_bad_videos(focal, tmp_path, capsys):
    out = tmp_path / "feats"
    bad = tmp_path / "broken.mp4"
    bad.write_bytes(b"not a video at all")
    listing = tmp_path / "list.txt"
    listing.write_text("\n".join([str(v) for v in focal.val_videos[:3]] + [str(bad)]) + "\n")
    argv = ["--cfg", str(focal.cfg), "--checkpoint", str(focal.checkpoint),
            "--input", str(listing), "--out", str(out)]
    assert extract(argv) == 1  # the broken video is reported and left out
    printed = capsys.readouterr().out
    assert "could not be decoded" in printed and str(bad) in printed
    assert f"{bad}: {bad}:" not in printed  # the path once, then the decoders' reasons
    assert "(3 videos)" in printed
    first = np.load(out / "features.npy")
    assert first.shape == (3, 16) and len(list((out / "parts").glob("*.npz"))) == 3

    # resume: one part lost and a temporary left by a killed writer
    parts = sorted((out / "parts").glob("*.npz"))
    parts[0].unlink()
    (out / "parts" / "x.npz.tmp-4242-abcd").write_bytes(b"half")
    listing.write_text("\n".join(str(v) for v in focal.val_videos[:3]) + "\n")
    assert extract(argv) == 0
    assert "3 videos, 2 done earlier; extracting 1" in capsys.readouterr().out
    np.testing.assert_array_equal(np.load(out / "features.npy"), first)
    assert not list((out / "parts").glob("*.tmp-*"))

    # other settings are refused, not mixed in
    code = extract(argv + ["--opts", "TEST.NUM_CLIP", "1"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "holds features made with other settings" in err[0]
    code = extract(argv[:-1] + [str(tmp_path / "other"), "--stride", "1"])
    assert code == 2 and "--stride needs --window" in capsys.readouterr().err


def test_torchrun_windows_match_one_process(focal, tmp_path):
    video = long_video(tmp_path / "long.mp4")
    listing = tmp_path / "list.txt"
    listing.write_text("\n".join([str(video)] + [str(v) for v in focal.val_videos[:3]]) + "\n")
    args = ["--cfg", str(focal.cfg), "--checkpoint", str(focal.checkpoint), "--input",
            str(listing), "--window", "0.64", "--stride", "0.32"]
    assert extract(args + ["--out", str(tmp_path / "one")]) == 0
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONUNBUFFERED="1")
    env.pop("RANK", None)
    env.pop("WORLD_SIZE", None)
    proc = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone",
                           "--nproc_per_node", "2", str(REPO / "tools" / "extract_features.py"),
                           *args, "--out", str(tmp_path / "two")], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert "extracting 4 over 2 process(es)" in proc.stdout
    one = np.load(tmp_path / "one" / "features.npy")
    two = np.load(tmp_path / "two" / "features.npy")
    assert one.shape == (4, 5, 16)  # 5 windows of the long video; 1 of each 16-frame clip
    assert np.isnan(one[1:, 1:]).all() and not np.isnan(one[0]).any()
    np.testing.assert_allclose(two, one, rtol=1e-5, atol=1e-6, equal_nan=True)
    index = _index(tmp_path / "two" / "index.csv")
    assert index == _index(tmp_path / "one" / "index.csv") and len(index) == 8
    assert [(r["start_frame"], r["end_frame"]) for r in index[:5]] == \
        [("0", "16"), ("8", "24"), ("16", "32"), ("24", "40"), ("32", "48")]
    assert len(list((tmp_path / "two" / "parts").glob("*.npz"))) == 4
