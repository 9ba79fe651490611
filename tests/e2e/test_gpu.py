"""What only a CUDA machine can check (marker ``gpu``; skipped without CUDA, so the normal suite
is unchanged). ``bash scripts/gpu_check.sh`` runs these and reports them in gpu_report.json.

* a training step of each model (tiny sizes) in float32, fp16 with the grad scaler, and bf16;
* a checkpoint saved on the GPU loads back identical, and a resumed run matches one that was
  never interrupted;
* evaluation on the GPU equals evaluation on the CPU to float tolerance;
* the data loader with pin_memory and worker processes;
* torchrun with NCCL on every visible GPU (one included): every video scored exactly once.

``GPU_TESTS_REHEARSE_ON_CPU=1 pytest -m gpu tests/e2e/test_gpu.py`` runs the same tests on the CPU
(gloo and two processes instead of NCCL, no pinned memory): a check of the tests' own logic on a
machine without a GPU, not a GPU check.
"""
from __future__ import annotations

import csv
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from tests.helpers.tiny import run_config, write_yaml

REHEARSAL = os.environ.get("GPU_TESTS_REHEARSE_ON_CPU") == "1"
DEVICE = torch.device("cpu" if REHEARSAL else "cuda")
BACKEND = "gloo" if REHEARSAL else "nccl"
pytestmark = [pytest.mark.gpu,
              pytest.mark.skipif(not (REHEARSAL or torch.cuda.is_available()),
                                 reason="needs a CUDA device")]

REPO = Path(__file__).resolve().parents[2]
NUM_TRAIN, NUM_VAL = 16, 5

# the tiny end-to-end runs of the CPU tests (tests/helpers/tiny.py), on this device
MODELS = {"video_focalnet": "focal", "vita_clip": "vita"}


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    root = tmp_path_factory.mktemp("gpu")
    for name, model in MODELS.items():
        changes = {"DATA.SYNTHETIC.NUM_TRAIN": NUM_TRAIN, "DATA.SYNTHETIC.NUM_VAL": NUM_VAL,
                   "DIST.DEVICE": DEVICE.type}
        if name == "vita_clip":
            changes["DATA.LABEL_LIST"] = f"{root}/syn/classes.txt"
        write_yaml(root / f"{name}.yaml", run_config(model, root, changes))
    from datasets.synthetic import ensure_synthetic, synthetic_settings
    ensure_synthetic(str(root / "syn"), synthetic_settings(NUM_TRAIN, NUM_VAL, 4, 32, 0))
    return root


def _cfg(workdir: Path, model: str, *opts):
    from engine.config import load_cfg
    return load_cfg(str(workdir / f"{model}.yaml"), [str(o) for o in opts])


def _env() -> dict:
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONUNBUFFERED="1",
               CUBLAS_WORKSPACE_CONFIG=":4096:8")  # deterministic cuBLAS for the resume check
    for name in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        env.pop(name, None)
    return env


def _tool(tool: str, *args: str, nproc: int = 0, timeout: int = 300) -> subprocess.CompletedProcess:
    """tools/<tool> as a user runs it: plain python, or torchrun when ``nproc`` is given."""
    launch = ([sys.executable, "-m", "torch.distributed.run", "--standalone",
               "--nproc_per_node", str(nproc)] if nproc else [sys.executable])
    proc = subprocess.run(launch + [str(REPO / "tools" / tool), *args], cwd=REPO, env=_env(),
                          capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, f"{tool} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    return proc


def _processes() -> int:
    """One per visible GPU, at most 8 (the training set gives 8 batches of 2); two gloo
    processes in a CPU rehearsal."""
    return 2 if REHEARSAL else min(torch.cuda.device_count(), NUM_TRAIN // 2)


def _max_memory_allocated() -> int:
    return 1 if REHEARSAL else torch.cuda.max_memory_allocated()


def _weights(path: Path) -> dict:
    return torch.load(path, weights_only=True, map_location="cpu")["model"]


# ------------------------------------------------------------------------------------------------
# Training steps
# ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("precision", ["off", "fp16", "bf16"])
@pytest.mark.parametrize("model_name", sorted(MODELS))
def test_training_step(workdir, model_name, precision):
    from datasets import build_loader
    from engine.build import (build_criterion, build_grad_scaler, build_model, build_optimizer,
                              build_scheduler)
    from engine.trainer import TrainState, train_one_epoch

    cfg = _cfg(workdir, model_name, *(["TRAIN.AMP", precision] if precision != "off" else []))
    device = DEVICE
    torch.manual_seed(0)
    model = build_model(cfg).to(device)
    # the whole (small) epoch: fp16 starts at a loss scale of 65536, and the scaler skips the
    # first updates whose scaled gradients overflow before it settles
    batches = list(build_loader(cfg, "train"))
    before = {k: v.detach().clone() for k, v in model.named_parameters() if v.requires_grad}
    optimizer = build_optimizer(cfg, model)
    scheduler = build_scheduler(cfg, optimizer, steps_per_epoch=len(batches))
    scaler = build_grad_scaler(cfg, device)
    assert scaler.is_enabled() == (precision == "fp16")
    if not REHEARSAL:
        torch.cuda.reset_peak_memory_stats()
    stats = train_one_epoch(cfg, model, batches, optimizer, scheduler, scaler,
                            build_criterion(cfg), device, TrainState(), show_progress=False)
    assert stats["iterations"] == len(batches) == NUM_TRAIN // 2 and stats["skipped_steps"] == 0
    assert stats["loss"] == stats["loss"] and 0 < stats["loss"] < 20  # finite, not exploded
    assert _max_memory_allocated() > 0
    moved = 0
    for name, param in model.named_parameters():
        if param.requires_grad:
            assert param.device.type == DEVICE.type and torch.isfinite(param).all(), name
            moved += int(not torch.equal(param.detach(), before[name]))
    assert moved > 0
    if precision == "fp16":
        assert scaler.get_scale() > 0
    with torch.no_grad(), torch.autocast(DEVICE.type, dtype=torch.bfloat16,
                                         enabled=precision == "bf16"):
        logits = model(batches[0][0].to(device))
    assert logits.shape == (2, 10) and torch.isfinite(logits).all()


# ------------------------------------------------------------------------------------------------
# Checkpoints
# ------------------------------------------------------------------------------------------------
def test_checkpoint_saved_on_gpu_loads_back_identical(workdir, tmp_path):
    from engine.build import build_model, build_optimizer
    from engine.checkpoint import build_checkpoint, load_model_weights, safe_load, save_checkpoint

    cfg = _cfg(workdir, "video_focalnet")
    torch.manual_seed(1)
    model = build_model(cfg).to(DEVICE)
    optimizer = build_optimizer(cfg, model)
    model(torch.randn(2, 4, 3, 32, 32, device=DEVICE)).sum().backward()
    optimizer.step()
    ckpt = build_checkpoint(model, optimizer, epoch=0, iteration=1, max_accuracy=0.0,
                            config_yaml=cfg.dump())
    save_checkpoint(ckpt, str(tmp_path), epoch=0, save_freq=1, is_best=False, last_epoch=True)
    torch.manual_seed(2)
    fresh = build_model(cfg).to(DEVICE)
    load_model_weights(fresh, safe_load(str(tmp_path / "latest.pth")), strict=True)
    assert model.state_dict().keys() == fresh.state_dict().keys()
    for (name, a), (_, b) in zip(model.state_dict().items(), fresh.state_dict().items()):
        assert b.device.type == DEVICE.type and torch.equal(a, b), name


def test_resumed_gpu_run_matches_uninterrupted(workdir):
    """Two epochs straight, and the same run restarted from its own epoch-0 checkpoint."""
    deterministic = ["TRAIN.DETERMINISTIC", "True"]
    straight, resumed = workdir / "straight", workdir / "resumed"
    _tool("train.py", "--cfg", str(workdir / "video_focalnet.yaml"), "--output", str(straight),
          "--opts", *deterministic)
    resumed.mkdir()
    shutil.copyfile(straight / "ckpt_epoch_0.pth", resumed / "latest.pth")
    _tool("train.py", "--cfg", str(workdir / "video_focalnet.yaml"), "--output", str(resumed),
          "--opts", *deterministic)
    assert "resumed from" in (resumed / "log.txt").read_text()
    info = json.loads((straight / "run_info.json").read_text())
    assert info["device"].startswith(DEVICE.type) and (REHEARSAL or info["gpu"])
    a, b = _weights(straight / "latest.pth"), _weights(resumed / "latest.pth")
    assert a.keys() == b.keys()
    for key in a:
        torch.testing.assert_close(b[key], a[key], rtol=1e-5, atol=1e-6)


# ------------------------------------------------------------------------------------------------
# Evaluation
# ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("model_name", sorted(MODELS))
def test_gpu_evaluation_equals_cpu(workdir, model_name):
    from datasets import build_loader
    from engine.build import build_model
    from engine.evaluation import evaluate

    cfg = _cfg(workdir, model_name, "TEST.NUM_CLIP", 2, "TEST.NUM_CROP", 3)
    torch.manual_seed(3)
    model = build_model(cfg).eval()
    loader = build_loader(cfg, "val")
    tf32 = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    try:
        cpu = evaluate(model, loader, torch.device("cpu"), show_progress=False)
        gpu = evaluate(model.to(DEVICE), loader, DEVICE, show_progress=False)
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = tf32
    assert gpu["indices"].tolist() == cpu["indices"].tolist() == list(range(NUM_VAL))
    assert torch.equal(gpu["labels"], cpu["labels"])
    torch.testing.assert_close(gpu["scores"], cpu["scores"], rtol=1e-4, atol=1e-5)
    assert gpu["metrics"]["views"] == 6


# ------------------------------------------------------------------------------------------------
# Data loader
# ------------------------------------------------------------------------------------------------
def test_loader_pin_memory_and_workers(workdir):
    from datasets import build_loader

    cfg = _cfg(workdir, "video_focalnet", "DATA.NUM_WORKERS", 3, "DATA.PIN_MEMORY", True)
    loader = build_loader(cfg, "train")
    assert loader.pin_memory != REHEARSAL and loader.num_workers == 3
    serial = build_loader(_cfg(workdir, "video_focalnet", "DATA.NUM_WORKERS", 0), "train")
    count = 0
    for (video, label), (video0, label0) in zip(loader, serial):
        assert REHEARSAL or (video.is_pinned() and label.is_pinned())
        on_device = video.to(DEVICE, non_blocking=True)
        if not REHEARSAL:
            torch.cuda.synchronize()
        assert torch.equal(on_device.cpu(), video0) and torch.equal(label, label0)
        count += 1
    assert count == len(serial) == NUM_TRAIN // 2


# ------------------------------------------------------------------------------------------------
# torchrun + NCCL
# ------------------------------------------------------------------------------------------------
def _predictions(path: Path) -> list[dict]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def test_torchrun_nccl_scores_every_video_once(workdir):
    """Train and test under torchrun on every visible GPU (DIST.BACKEND nccl; with one GPU the
    engine runs without a process group), then the same evaluation gathered through an NCCL
    process group of one rank per GPU, one GPU included."""
    gpus = _processes()
    cfg = str(workdir / "video_focalnet.yaml")
    run, evaluated = workdir / "nccl_run", workdir / "nccl_eval"
    _tool("train.py", "--cfg", cfg, "--output", str(run), "--opts", "TRAIN.EPOCHS", "1",
          "DIST.BACKEND", BACKEND, nproc=gpus)
    info = json.loads((run / "run_info.json").read_text())
    assert info["world_size"] == gpus and info["backend"] == (BACKEND if gpus > 1 else None)
    _tool("test.py", "--cfg", cfg, "--checkpoint", str(run / "latest.pth"), "--output",
          str(evaluated), "--opts", "DIST.BACKEND", BACKEND, "TEST.NUM_CLIP", "2", nproc=gpus)
    result = json.loads((evaluated / "eval_results.json").read_text())
    assert result["num_videos"] == NUM_VAL
    assert sorted(int(r["index"]) for r in _predictions(evaluated / "predictions.csv")) == \
        list(range(NUM_VAL))
    # the gather itself through NCCL, also with a single GPU
    out = workdir / "nccl_gather.json"
    launch = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node",
              str(gpus), str(REPO / "tests" / "gpu_nccl_eval.py"), cfg, str(run / "latest.pth"),
              str(out), BACKEND]
    proc = subprocess.run(launch, cwd=REPO, env=_env(), capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    gathered = json.loads(out.read_text())
    assert gathered["backend"] == BACKEND and gathered["world_size"] == gpus
    assert gathered["indices"] == list(range(NUM_VAL))
    assert gathered["top1"] == pytest.approx(result["top1"])


def test_tensorrt_engine_matches_eager(tmp_path):
    """tools/export.py --format tensorrt's engine under RuntimeModel gives eager's logits within
    1e-4 (float32, TF32 off); skipped where tensorrt is not installed."""
    if not torch.cuda.is_available():
        pytest.skip("TensorRT needs a CUDA device")
    pytest.importorskip("tensorrt", reason="tensorrt is not installed (pip install tensorrt)")
    pytest.importorskip("onnx", reason="the deploy extra is not installed (pip install "
                                       "'.[deploy]')")
    from engine.build import build_model_without_init
    from engine.config import load_cfg
    from engine.export import export_model
    from engine.runtime import RuntimeModel
    from tests.helpers.tiny import EXPORT_FOCAL_OPTS
    cfg = load_cfg(str(REPO / "configs" / "ablations" / "designs" / "parallel.yaml"),
                   EXPORT_FOCAL_OPTS)
    torch.manual_seed(0)
    model = build_model_without_init(cfg).eval()
    engine_file = export_model(model, cfg, str(tmp_path / "m.pth"), "tensorrt", str(tmp_path))
    exported = RuntimeModel(engine_file, "tensorrt")
    video = torch.randn(3, 4, 3, 32, 32)
    with torch.no_grad():
        logits = model(video)
    got = exported(video.cuda())
    assert got.device.type == "cuda" and got.shape == logits.shape
    assert float((got.cpu() - logits).abs().max()) < 1e-4
