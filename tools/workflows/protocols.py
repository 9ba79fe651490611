"""The training protocols of the CLIP-video literature, on the published split files that ship in
``datasets/protocols/`` (see its README.md):

- **few-shot** (``run_few_shot``): train on the K-shot list of split 1 (K = 2, 4, 8, 16) of
  HMDB51, UCF101 or SSv2 and test on the dataset's full split-1 test set (HMDB51, UCF101: the
  official split-1 test videos; SSv2: ``validation.json``), all classes. One table K -> top-1.
- **base-to-novel** (``run_base2novel``): train on each of the three 16-shot base-class sets
  s1, s2, s3 of HMDB51, UCF101, SSv2 or Kinetics-400, test on the base classes' list and, through
  the text side exactly as zero-shot does (``tools.workflows.zero_shot``, protocol ``custom``),
  on the novel classes' list. One table: base, novel and their harmonic mean per training set and
  averaged over the three.

Each training run is a variant of the experiment runner (``tools.workflows.experiments.run_variant``):
``<output>/<name>/`` holds it, a finished run is skipped and an interrupted one resumes when the
command is run again. What defines the protocol is set per run and wins over the config and
``--opts``: DATA.TRAIN_FILE (and, base-to-novel, VAL_FILE / TEST_FILE), DATA.LABEL_LIST,
DATA.FIND_BY_NAME (listed names are found anywhere under DATA.ROOT), DATA.SPLIT 1, and the class
count. The recipe (epochs, learning rate, frames, views) comes from the config.
"""
from __future__ import annotations

import csv
import io
import json
import logging
import math
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import datasets
from common.fileio import atomic_write_bytes, atomic_write_text
from engine.config import ConfigError, load_cfg
from tools.workflows.experiments import (Variant, VariantRunError, run_tool_with_torchrun,
                                         run_variant, variant_cfg, variant_cli_opts)
from tools.workflows.zero_shot import RESULTS_FILE, listed_videos, run_zero_shot

logger = logging.getLogger(__name__)

__all__ = ["SHOTS", "TRAIN_SETS", "FEW_SHOT_DATASETS", "BASE2NOVEL_DATASETS", "PROTOCOL_NAMES",
           "few_shot_variants", "base2novel_variants", "run_few_shot", "run_base2novel",
           "harmonic_mean", "few_shot_csv", "few_shot_markdown", "base2novel_csv",
           "base2novel_markdown"]

SHOTS = (2, 4, 8, 16)
TRAIN_SETS = (1, 2, 3)
PROTOCOL_NAMES = ("few_shot", "base2novel")


@dataclass(frozen=True)
class FewShotData:
    prefix: str  # file prefix in datasets/protocols/few_shot/
    labels: str  # the class list the K-shot labels index (datasets/protocols/labels/)
    num_classes: int
    test_set: str  # what the dataset's split-1 test set is, for the report


@dataclass(frozen=True)
class Base2NovelData:
    prefix: str  # file prefix in datasets/protocols/base_to_novel/
    labels: str  # stem of labels/<stem>_{base,novel}_labels.csv
    num_base: int
    num_novel: int


# DATA.DATASET -> the published files of that dataset
FEW_SHOT_DATASETS = {
    "hmdb51": FewShotData("hmdb", "hmdb_51_labels.csv", 51, "official split-1 test videos"),
    "ucf101": FewShotData("ucf", "ucf_101_labels.csv", 101, "testlist01.txt"),
    "ssv2": FewShotData("ssv2", "ssv2_labels.csv", 174, "validation.json"),
}
BASE2NOVEL_DATASETS = {
    "hmdb51": Base2NovelData("hmdb", "hmdb_51", 26, 25),
    "ucf101": Base2NovelData("ucf", "ucf_101", 51, 50),
    "ssv2": Base2NovelData("ssv2", "ssv2_174", 87, 87),
    "kinetics400": Base2NovelData("k400", "kinetics_400", 200, 200),
}


def _file(relative: str, protocols_dir: str | os.PathLike | None) -> str:
    """How a run names a protocol file: ``protocols/<relative>`` (the bundled copy, found from
    any working directory and under torchrun), or the file under ``protocols_dir``."""
    if protocols_dir:
        path = Path(protocols_dir).resolve() / relative
        if not path.is_file():
            raise ConfigError(f"{path}: protocol file not found (--protocols-dir {protocols_dir})")
        return str(path)
    datasets.bundled_protocol_file(relative)  # raises when the package lacks it
    return f"protocols/{relative}"


def _dataset_of(cfg_file: str | None, base_opts: Sequence, table: dict, protocol: str) -> str:
    cfg = load_cfg(cfg_file, base_opts)
    if cfg.DATA.DATASET not in table:
        raise ConfigError(f"key DATA.DATASET: {protocol} has published files for "
                          f"{', '.join(table)}, not {cfg.DATA.DATASET!r}; use a config of "
                          f"configs/vita_clip/{protocol}/")
    return cfg.DATA.DATASET


def _check_choices(values: Sequence[int], allowed: Sequence[int], what: str) -> list[int]:
    values = list(dict.fromkeys(int(v) for v in values))
    bad = [v for v in values if v not in allowed]
    if bad or not values:
        raise ConfigError(f"{what} must be among {', '.join(map(str, allowed))}, got {values}")
    return values


# ---------------------------------------------------------------------------------------------
# The runs of a protocol
# ---------------------------------------------------------------------------------------------
def few_shot_variants(dataset: str, shots: Sequence[int] = SHOTS,
                      protocols_dir: str | os.PathLike | None = None) -> list[Variant]:
    """One run per K: the K-shot list of split 1, all classes, tested on split 1's test set."""
    data = FEW_SHOT_DATASETS[dataset]
    labels = _file(f"labels/{data.labels}", protocols_dir)
    return [Variant(name=f"{k}shot", opts={
        "DATA.TRAIN_FILE": _file(f"few_shot/{data.prefix}_train1_{k}shot.txt", protocols_dir),
        "DATA.LABEL_LIST": labels, "DATA.FIND_BY_NAME": True, "DATA.SPLIT": 1,
        "MODEL.NUM_CLASSES": data.num_classes, "DATA.NUM_CLASSES": data.num_classes})
        for k in _check_choices(shots, SHOTS, "few-shot K (--shots)")]


def base2novel_variants(dataset: str, train_sets: Sequence[int] = TRAIN_SETS,
                        protocols_dir: str | os.PathLike | None = None
                        ) -> list[tuple[Variant, dict]]:
    """(training run on base set s, the overrides of its novel-class evaluation) per set."""
    data = BASE2NOVEL_DATASETS[dataset]
    base_val = _file(f"base_to_novel/{data.prefix}_base_val.txt", protocols_dir)
    novel_val = _file(f"base_to_novel/{data.prefix}_novel_val.txt", protocols_dir)
    base_labels = _file(f"labels/{data.labels}_base_labels.csv", protocols_dir)
    novel_labels = _file(f"labels/{data.labels}_novel_labels.csv", protocols_dir)
    out = []
    for s in _check_choices(train_sets, TRAIN_SETS, "base-to-novel training sets"):
        train = _file(f"base_to_novel/{data.prefix}_fs_base_s{s}_train.txt", protocols_dir)
        variant = Variant(name=f"s{s}", opts={
            "DATA.TRAIN_FILE": train, "DATA.VAL_FILE": base_val, "DATA.TEST_FILE": base_val,
            "DATA.LABEL_LIST": base_labels, "DATA.FIND_BY_NAME": True, "DATA.SPLIT": 1,
            "MODEL.NUM_CLASSES": data.num_base, "DATA.NUM_CLASSES": data.num_base})
        novel = {"DATA.VAL_FILE": novel_val, "DATA.TEST_FILE": novel_val,
                 "DATA.LABEL_LIST": novel_labels, "MODEL.NUM_CLASSES": data.num_novel,
                 "DATA.NUM_CLASSES": data.num_novel}
        out.append((variant, novel))
    return out


def _train_videos(cfg) -> tuple[int, int | None]:
    """(videos found, videos listed) of a run's training list."""
    samples, _ = datasets.load_annotations(cfg, "train")
    return len(samples), listed_videos(cfg, "train")


def _check_all(variants: Sequence[Variant], cfg_file: str | None, output: str,
               base_opts: Sequence) -> None:
    for variant in variants:  # every run's config is valid before anything trains
        try:
            variant_cfg(variant, cfg_file, base_opts, output)
        except ConfigError as err:
            raise ConfigError(f"run {variant.name}: {err}") from err


# ---------------------------------------------------------------------------------------------
# Few-shot
# ---------------------------------------------------------------------------------------------
def run_few_shot(cfg_file: str | None, output: str, base_opts: Sequence = (),
                 shots: Sequence[int] = SHOTS, protocols_dir: str | os.PathLike | None = None,
                 nproc: int = 1, log: Callable[[str], None] = print) -> dict:
    """Train and test one run per K; writes OUTPUT/few_shot.{md,csv,json,png}; returns the
    summary (``rows``: shots, top1, top5, train_videos, train_listed, test_videos)."""
    dataset = _dataset_of(cfg_file, base_opts, FEW_SHOT_DATASETS, "few_shot")
    variants = few_shot_variants(dataset, shots, protocols_dir)
    _check_all(variants, cfg_file, output, base_opts)
    rows = []
    for index, variant in enumerate(variants):
        log(f"=== few-shot {dataset}: {variant.name} ({index + 1}/{len(variants)}) ===")
        row = run_variant(variant, cfg_file, output, base_opts, nproc, log)
        cfg = variant_cfg(variant, cfg_file, base_opts, output)
        found, listed = _train_videos(cfg)
        result = json.loads((Path(cfg.OUTPUT) / "eval_results.json").read_text())
        rows.append({"shots": int(variant.name[:-4]), "top1": row["top1"], "top5": row["top5"],
                     "train_videos": found, "train_listed": listed,
                     "test_videos": int(result["num_videos"])})
    data = FEW_SHOT_DATASETS[dataset]
    summary = {"protocol": "few_shot", "dataset": dataset, "test_set": data.test_set,
               "config": os.path.abspath(cfg_file) if cfg_file else None, "rows": rows}
    title = f"Few-shot {dataset}: K-shot training lists of split 1, tested on {data.test_set}"
    out = Path(output)
    atomic_write_text(out / "few_shot.md", few_shot_markdown(rows, title))
    atomic_write_text(out / "few_shot.csv", few_shot_csv(rows))
    atomic_write_text(out / "few_shot.json", json.dumps(summary, indent=2) + "\n")
    atomic_write_bytes(out / "few_shot.png", _few_shot_png(rows, f"Few-shot {dataset} "
                                                             f"({data.test_set})"))
    log(few_shot_markdown(rows, title))
    log(f"reports: {out / 'few_shot.md'}, few_shot.csv, few_shot.json, few_shot.png")
    return summary


def _count(found, listed) -> str:
    return f"{found}" if listed in (None, found) else f"{found} of {listed}"


def few_shot_markdown(rows: list[dict], title: str) -> str:
    lines = [f"# {title}", "", "| K | top-1 (%) | top-5 (%) | training videos | test videos |",
             "|---:|---:|---:|---:|---:|"]
    for r in rows:
        lines.append(f"| {r['shots']} | {r['top1']:.2f} | {r['top5']:.2f} | "
                     f"{_count(r['train_videos'], r['train_listed'])} | {r['test_videos']} |")
    return "\n".join(lines) + "\n"


def few_shot_csv(rows: list[dict]) -> str:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    columns = ("shots", "top1", "top5", "train_videos", "train_listed", "test_videos")
    writer.writerow(columns)
    for r in rows:
        writer.writerow([f"{r[c]:.4f}" if isinstance(r[c], float) else
                         ("" if r[c] is None else r[c]) for c in columns])
    return buf.getvalue()


def _few_shot_png(rows: list[dict], title: str) -> bytes:
    import matplotlib
    matplotlib.use("Agg")  # files only: never needs a display
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4), dpi=120)
    shots = [r["shots"] for r in rows]
    ax.plot(shots, [r["top1"] for r in rows], marker="o")
    ax.set_xscale("log", base=2)
    ax.set_xticks(shots)
    ax.set_xticklabels([str(k) for k in shots])
    ax.set_xlabel("K (training videos per class)")
    ax.set_ylabel("top-1 accuracy (%)")
    ax.set_ylim(0, 100)
    ax.set_title(title, fontsize=10)
    ax.grid(True, alpha=0.3)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    plt.close(fig)
    return buf.getvalue()


# ---------------------------------------------------------------------------------------------
# Base-to-novel
# ---------------------------------------------------------------------------------------------
def harmonic_mean(base: float, novel: float) -> float:
    """HM = 2 B N / (B + N); 0 when both are 0."""
    return 2.0 * base * novel / (base + novel) if base + novel > 0 else 0.0


def _novel_eval(variant: Variant, novel_opts: dict, cfg_file: str | None, output: str,
                base_opts: Sequence, nproc: int, log: Callable[[str], None]) -> dict:
    """The zero-shot workflow's ``custom`` protocol on the novel classes, for the run's final
    checkpoint; kept in OUTPUT/<run>/novel/ and reused while the checkpoint is unchanged."""
    novel = Variant(name=variant.name, opts={**variant.opts, **novel_opts}, cfg=variant.cfg)
    run_dir = Path(output) / variant.name
    checkpoint = run_dir / "latest.pth"
    if not checkpoint.is_file():
        raise VariantRunError(f"[{variant.name}] training left no {checkpoint}")
    stamp = checkpoint.stat().st_mtime_ns
    novel_dir = run_dir / "novel"
    state_path = novel_dir / "novel_state.json"
    results_path = novel_dir / RESULTS_FILE
    if state_path.is_file() and results_path.is_file():
        state = json.loads(state_path.read_text())
        if state.get("checkpoint_mtime_ns") == stamp:
            log(f"[{variant.name}] novel classes: evaluated earlier (results: {results_path})")
            return json.loads(results_path.read_text())
    opts = variant_cli_opts(novel, base_opts, output)[:-2] + ["OUTPUT", str(novel_dir)]
    cfg = load_cfg(novel.cfg or cfg_file, opts)
    log(f"[{variant.name}] novel classes: {checkpoint.name} scored against the novel class "
        f"names ({cfg.TEST.NUM_CLIP} clips x {cfg.TEST.NUM_CROP} crops per video)")
    if nproc > 1:
        run_tool_with_torchrun("zero_shot.py", novel.cfg or cfg_file, opts, nproc,
                               ["--checkpoint", str(checkpoint), "--protocol", "custom"], log=log)
        summary = json.loads(results_path.read_text())
    else:
        summary = run_zero_shot(cfg, str(checkpoint), "custom", user_opts=opts, log=log)
    atomic_write_text(state_path, json.dumps({"checkpoint_mtime_ns": stamp}) + "\n")
    return summary


def run_base2novel(cfg_file: str | None, output: str, base_opts: Sequence = (),
                   train_sets: Sequence[int] = TRAIN_SETS,
                   protocols_dir: str | os.PathLike | None = None, nproc: int = 1,
                   log: Callable[[str], None] = print) -> dict:
    """Train on each 16-shot base set, test on base and novel classes; writes
    OUTPUT/base2novel.{md,csv,json}; returns the summary (per-set rows and their mean)."""
    dataset = _dataset_of(cfg_file, base_opts, BASE2NOVEL_DATASETS, "base2novel")
    runs = base2novel_variants(dataset, train_sets, protocols_dir)
    _check_all([v for v, _ in runs], cfg_file, output, base_opts)
    rows = []
    for index, (variant, novel_opts) in enumerate(runs):
        log(f"=== base-to-novel {dataset}: {variant.name} ({index + 1}/{len(runs)}) ===")
        t0 = time.perf_counter()
        row = run_variant(variant, cfg_file, output, base_opts, nproc, log)
        cfg = variant_cfg(variant, cfg_file, base_opts, output)
        base = json.loads((Path(cfg.OUTPUT) / "eval_results.json").read_text())
        novel = _novel_eval(variant, novel_opts, cfg_file, output, base_opts, nproc, log)
        (novel_split,) = novel["splits"]
        found, listed = _train_videos(cfg)
        rows.append({"train_set": variant.name, "base": row["top1"],
                     "novel": float(novel["mean_top1"]),
                     "hm": harmonic_mean(row["top1"], float(novel["mean_top1"])),
                     "train_videos": found, "train_listed": listed,
                     "base_videos": int(base["num_videos"]),
                     "novel_videos": int(novel_split["num_videos"]),
                     "novel_listed": novel_split.get("num_listed"),
                     "novel_text_prompts": novel.get("text_prompts", [])})
        log(f"[{variant.name}] base {rows[-1]['base']:.2f}  novel {rows[-1]['novel']:.2f}  "
            f"HM {rows[-1]['hm']:.2f}  ({time.perf_counter() - t0:.0f} s)")
    mean_base = sum(r["base"] for r in rows) / len(rows)
    mean_novel = sum(r["novel"] for r in rows) / len(rows)
    mean = {"train_set": "mean", "base": mean_base, "novel": mean_novel,
            "hm": harmonic_mean(mean_base, mean_novel),
            "hm_of_sets": sum(r["hm"] for r in rows) / len(rows)}
    summary = {"protocol": "base2novel", "dataset": dataset,
               "config": os.path.abspath(cfg_file) if cfg_file else None, "rows": rows,
               "mean": mean,
               "hm": "mean row: HM of the mean base and mean novel accuracies; hm_of_sets: the "
                     "mean of the per-set HMs"}
    title = (f"Base-to-novel {dataset}: 16-shot base sets {', '.join(r['train_set'] for r in rows)}"
             f", top-1 (%) on base and novel classes")
    out = Path(output)
    atomic_write_text(out / "base2novel.md", base2novel_markdown(rows, mean, title))
    atomic_write_text(out / "base2novel.csv", base2novel_csv(rows, mean))
    atomic_write_text(out / "base2novel.json", json.dumps(summary, indent=2) + "\n")
    log(base2novel_markdown(rows, mean, title))
    log(f"reports: {out / 'base2novel.md'}, base2novel.csv, base2novel.json")
    return summary


def base2novel_markdown(rows: list[dict], mean: dict, title: str) -> str:
    lines = [f"# {title}", "",
             "| training set | base | novel | HM | training videos | base videos | novel videos |",
             "|---|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        lines.append(f"| {r['train_set']} | {r['base']:.2f} | {r['novel']:.2f} | {r['hm']:.2f} | "
                     f"{_count(r['train_videos'], r['train_listed'])} | {r['base_videos']} | "
                     f"{_count(r['novel_videos'], r['novel_listed'])} |")
    lines.append(f"| **mean** | **{mean['base']:.2f}** | **{mean['novel']:.2f}** | "
                 f"**{mean['hm']:.2f}** | | | |")
    prompts = sorted({p for r in rows for p in r.get("novel_text_prompts", [])})
    lines += ["", "HM = 2·B·N/(B+N); the mean row's HM is that of the mean base and novel "
              f"accuracies (the mean of the per-set HMs is {mean['hm_of_sets']:.2f})."]
    if prompts:
        lines.append(f"Novel classes scored with {', '.join(prompts)} text features.")
    return "\n".join(lines) + "\n"


def base2novel_csv(rows: list[dict], mean: dict) -> str:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    columns = ("train_set", "base", "novel", "hm", "train_videos", "base_videos", "novel_videos")
    writer.writerow(columns)
    for r in rows + [mean]:
        writer.writerow([f"{r[c]:.4f}" if isinstance(r.get(c), float) and math.isfinite(r[c])
                         else r.get(c, "") for c in columns])
    return buf.getvalue()
