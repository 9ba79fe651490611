"""The CPU demo: does adding time to focal modulation matter? (`bash scripts/demo.sh`)

Generates the synthetic motion set (10 classes in five time-reversed pairs), trains a tiny
Video-FocalNet with the official parallel spatio-temporal design and one with the spatial-only
design (configs/demo/{parallel,spatial}.yaml), tests both with multi-view testing, and prints a
table (also written to OUTPUT/summary.csv). Then the parallel model predicts a few validation
clips (tools/predict.py) and shows its spatial and temporal modulators on one of them
(tools/visualize.py: PNG grid and GIF under OUTPUT/visualize). Re-running reuses the data and
the finished runs.

    python tools/demo.py                      # full demo, ~10 min on 2 CPU cores
    python tools/demo.py --quick              # smaller, for a smoke test (~2 min)
    python tools/demo.py --output DIR --data-root DIR --opts KEY VALUE ...
"""
from __future__ import annotations

import os
import sys
import time

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO_ROOT)

from tools._cli import make_main, new_parser  # noqa: E402

DEMO_DIR = os.path.join(REPO_ROOT, "configs", "demo")
DESIGNS = ("parallel", "spatial")
SUMMARY_COLUMNS = ("design", "params_m", "gflops", "top1", "top5", "train_seconds")
# --quick: a smaller set and run for tests/e2e/test_demo.py (its own data folder: the synthetic set
# is a function of its settings, so it cannot share data/synthetic with the full demo). At 32 px a
# clip costs about a quarter as much, and batch 8 gives the ~600 updates the parallel model needs
# to get past its initial plateau (measured: ~90% top-1 after 4 epochs; spatial-only ~50%).
# After training, the parallel model predicts the first PREDICT_CLIPS validation clips (classes
# 0-3: moving left, right, up, down) and its modulators are drawn for clip VISUALIZE_CLIP
# (moving right) at VISUALIZE_STAGE (16x16 tokens at 64 px, 8x8 with --quick).
PREDICT_CLIPS = 4
VISUALIZE_CLIP = 1
VISUALIZE_STAGE = 0
QUICK_OPTS = ["DATA.SYNTHETIC.NUM_TRAIN", 1200, "DATA.SYNTHETIC.NUM_VAL", 200,
              "DATA.SYNTHETIC.SIZE", 32, "DATA.IMG_SIZE", 32, "DATA.INPUT_SIZE", 32,
              "DATA.BATCH_SIZE", 8, "TRAIN.EPOCHS", 4, "TEST.NUM_CLIP", 1, "TEST.NUM_CROP", 1]


def parse_args(argv=None):
    parser = new_parser(__doc__.split("\n")[0])
    parser.add_argument("--output", default="output/demo", help="runs, summary.csv, plots")
    parser.add_argument("--data-root", default=None,
                        help="synthetic set folder (default data/synthetic, data/synthetic_quick "
                             "with --quick)")
    parser.add_argument("--quick", action="store_true", help="small data and few epochs")
    parser.add_argument("--threads", type=int, default=0,
                        help="torch intra-op threads (0: leave torch's default)")
    parser.add_argument("--opts", nargs="*", default=[], help="KEY VALUE overrides for both runs")
    return parser.parse_args(argv)


def _say(message: str) -> None:
    print(message, flush=True)


def _prepare_data(cfg) -> None:
    from datasets.synthetic import MARKER, ensure_synthetic, synthetic_settings
    s = cfg.DATA.SYNTHETIC
    settings = synthetic_settings(s.NUM_TRAIN, s.NUM_VAL, s.NUM_FRAMES, s.SIZE, s.SEED)
    root = cfg.DATA.ROOT
    if os.path.isfile(os.path.join(root, MARKER)):
        _say(f"[1/4] synthetic data: reusing {root}")
    else:
        _say(f"[1/4] synthetic data: writing {s.NUM_TRAIN} train + {s.NUM_VAL} val clips "
             f"({s.NUM_FRAMES} frames, {s.SIZE}x{s.SIZE}) to {root}")
    t0 = time.perf_counter()
    ensure_synthetic(root, settings)
    _say(f"      ready ({time.perf_counter() - t0:.0f} s)")


def summary_table(rows: list[dict]) -> str:
    lines = [f"{'design':<10} {'params (M)':>10} {'GFLOPs':>8} {'top-1 (%)':>10} {'top-5 (%)':>10} "
             f"{'train (s)':>10}"]
    for r in rows:
        lines.append(f"{r['design']:<10} {r['params_m']:>10.3f} {r['gflops']:>8.3f} "
                     f"{r['top1']:>10.2f} {r['top5']:>10.2f} {r['train_seconds']:>10.0f}")
    return "\n".join(lines)


def run(args) -> None:
    from common.fileio import atomic_write_text
    from engine.config import load_cfg
    from tools.workflows.experiments import Variant, rows_csv, run_experiments

    if args.threads > 0:
        import torch
        torch.set_num_threads(args.threads)
    data_root = args.data_root or ("data/synthetic_quick" if args.quick else "data/synthetic")
    opts = (list(QUICK_OPTS) if args.quick else []) + ["DATA.ROOT", data_root] + list(args.opts)
    variants = [Variant(name=d, cfg=os.path.join(DEMO_DIR, f"{d}.yaml")) for d in DESIGNS]
    start = time.perf_counter()
    cfg = load_cfg(variants[0].cfg, opts)
    _say(f"Video-FocalNet demo{' (quick)' if args.quick else ''}: {cfg.MODEL.FOCAL.EMBED_DIM}-d "
         f"{list(cfg.MODEL.FOCAL.DEPTHS)} blocks, {cfg.DATA.NUM_FRAMES} frames at "
         f"{cfg.DATA.IMG_SIZE}px, {cfg.TRAIN.EPOCHS} epochs, batch {cfg.DATA.BATCH_SIZE}, "
         f"test {cfg.TEST.NUM_CLIP} clips x {cfg.TEST.NUM_CROP} crops, output {args.output}")
    _prepare_data(cfg)
    _say("[2/4] training and testing both designs (each step shows progress)")
    rows = run_experiments(variants, None, args.output, opts, log=_say,
                           title="Demo: parallel vs spatial-only focal modulation")
    summary = [{"design": r["variant"], "params_m": r["params_m"], "gflops": r["gflops"],
                "top1": r["top1"], "top5": r["top5"], "train_seconds": r["train_s"]}
               for r in rows]
    path = os.path.join(args.output, "summary.csv")
    atomic_write_text(path, rows_csv(summary, SUMMARY_COLUMNS))
    _say("[3/4] results (synthetic validation set, multi-view test)")
    _say(summary_table(summary))
    pictures = _use_the_model(cfg, opts, args.output)
    _say(f"\nsummary:      {path}")
    for d in DESIGNS:
        run_dir = os.path.join(args.output, d)
        _say(f"{d + ':':<13} checkpoints {run_dir}/latest.pth, results "
             f"{run_dir}/eval_results.json")
    _say(f"TensorBoard:  tensorboard --logdir {args.output}")
    _say(f"plot/table:   {args.output}/ablation.png, {args.output}/ablation.md")
    _say(f"predictions:  {pictures['json']}")
    _say(f"modulators:   {pictures['png']} (grid), {pictures['gif']} (animation)")
    _say(f"demo time:    {time.perf_counter() - start:.0f} s")


def _use_the_model(cfg, opts: list, output: str) -> dict:
    """[4/4] tools/predict.py on a few validation clips and tools/visualize.py on one, with the
    trained parallel model; returns where the JSON, PNG and GIF are."""
    from datasets.annotations import numbered_lines
    from tools.predict import main as predict
    from tools.visualize import main as visualize

    _say("[4/4] using the trained parallel model: tools/predict.py on a few validation clips, "
         "tools/visualize.py on one")
    videos = [os.path.join(cfg.DATA.ROOT, line.split(",")[0])
              for _, line in numbered_lines(os.path.join(cfg.DATA.ROOT, "val.csv"))]
    videos = videos[:PREDICT_CLIPS]
    model = ["--cfg", os.path.join(DEMO_DIR, "parallel.yaml"), "--checkpoint",
             os.path.join(output, "parallel", "latest.pth")]
    flat_opts = [str(v) for v in opts]
    out = {"json": os.path.join(output, "predict", "val_predictions.json")}
    if predict(model + videos + ["--topk", "3", "--json", out["json"], "--opts", *flat_opts]):
        raise RuntimeError("tools/predict.py failed on the demo's validation clips")
    stem = os.path.splitext(os.path.basename(videos[VISUALIZE_CLIP]))[0]
    vis_dir = os.path.join(output, "visualize")
    if visualize(model + [videos[VISUALIZE_CLIP], "--out", vis_dir, "--method", "modulator",
                          "--stage", str(VISUALIZE_STAGE), "--opts", *flat_opts]):
        raise RuntimeError("tools/visualize.py failed on a demo validation clip")
    out["png"] = os.path.join(vis_dir, f"{stem}_modulator.png")
    out["gif"] = os.path.join(vis_dir, f"{stem}_modulator.gif")
    return out


main = make_main(parse_args, run)


if __name__ == "__main__":
    sys.exit(main())
