"""Helpers of the fault tests (tests/test_faults_*.py): tiny configs, generated files, running an
entry point in-process, and a snapshot of a folder to prove that nothing in it changed."""
from __future__ import annotations

from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

# A Video-FocalNet of a few thousand parameters on the synthetic set (8 + 4 clips, 4 frames,
# 32 px): one epoch trains in a second or two on one CPU core.
TINY_FOCAL = """
DATA:
  DATASET: synthetic
  ROOT: {root}/syn
  NUM_FRAMES: 4
  IMG_SIZE: 32
  BATCH_SIZE: 2
  NUM_WORKERS: 0
  SYNTHETIC:
    NUM_TRAIN: 8
    NUM_VAL: 4
    NUM_FRAMES: 4
    SIZE: 32
AUG:
  MIXUP: 0.0
  CUTMIX: 0.0
TRAIN:
  EPOCHS: 1
  WARMUP_EPOCHS: 0
  BASE_LR: 0.01
TEST:
  BATCH_SIZE: 2
PRINT_FREQ: 100
OUTPUT: {root}/run
MODEL:
  TYPE: videofocalnet_custom
  NUM_CLASSES: 10
  DROP_PATH_RATE: 0.0
  FOCAL:
    EMBED_DIM: 8
    DEPTHS: [1, 1]
    FOCAL_LEVELS: [1, 1]
    FOCAL_WINDOWS: [3, 3]
"""


def write_tiny_config(root: Path, name: str = "tiny.yaml", extra: str = "") -> Path:
    """The tiny config under ``root`` (DATA.ROOT root/syn, OUTPUT root/run) plus ``extra`` YAML."""
    path = root / name
    path.write_text(TINY_FOCAL.format(root=root) + extra)
    return path


def make_synthetic(root: Path) -> Path:
    """The synthetic set of TINY_FOCAL, generated once into root/syn."""
    from datasets.synthetic import ensure_synthetic, synthetic_settings
    ensure_synthetic(str(root / "syn"), synthetic_settings(8, 4, 4, 32, 0))
    return root / "syn"


def snapshot(folder: Path) -> dict:
    """Every file under ``folder`` with its bytes and modification time."""
    return {str(p.relative_to(folder)): (p.read_bytes(), p.stat().st_mtime_ns)
            for p in sorted(folder.rglob("*")) if p.is_file()}


def run_main(main, argv, capsys) -> tuple[int, str, str]:
    """(exit code, stdout, stderr) of an entry point's ``main(argv)`` run in this process."""
    capsys.readouterr()
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def one_error_line(err: str) -> str:
    """The single ``error: ...`` line of a failed entry point (asserts there is nothing else)."""
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and "Traceback" not in err, err
    assert lines[0].startswith("error: "), err
    return lines[0]
