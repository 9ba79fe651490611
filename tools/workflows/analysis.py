"""Analysis of evaluation runs: confusion, fusion of several runs, per-class comparison.

A run is a folder written by ``tools/test.py``: ``scores.npy`` (N, C) averaged probabilities,
``predictions.csv`` (one row per video, same order: index, path, label, ...) and
``eval_results.json`` (its ``per_class_acc`` is keyed by class name when the dataset has names).
Videos that the evaluation could not decode (empty predictions, NaN scores) are left out here
too, as they were of the run's metrics; ``Run.unreadable`` lists them.
"""
from __future__ import annotations

import csv
import io
import json
import math
import os
from dataclasses import dataclass, field
from typing import Callable, Sequence

import numpy as np
import torch

from common.fileio import atomic_write_bytes, atomic_write_text
from engine.evaluation import SCORES_FILE
from engine.guards import require_finite
from engine.metrics import classification_metrics, confusion_matrix, per_class_accuracy

__all__ = ["Run", "load_run", "confused_pairs", "confusion_report", "fuse_runs", "compare_runs",
           "MATRIX_MAX_CLASSES"]

MATRIX_MAX_CLASSES = 40  # more classes: the top confused pairs are drawn instead of the matrix


@dataclass
class Run:
    path: str
    scores: np.ndarray  # (N, C) float32
    labels: np.ndarray  # (N,) int64
    videos: list  # (N,) paths, predictions.csv order
    indices: list  # dataset indices (predictions.csv "index")
    class_names: list  # C names ("class i" when the run has none)
    unreadable: list = field(default_factory=list)  # videos the evaluation could not decode

    @property
    def num_classes(self) -> int:
        return self.scores.shape[1]


_COLUMNS = ("index", "path", "label", "correct")


def _read_scores(path: str) -> np.ndarray:
    try:
        scores = np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError) as err:
        raise ValueError(f"{path}: not a readable .npy array ({str(err).splitlines()[0]}); "
                         f"run tools/test.py again to write it") from None
    if scores.ndim != 2 or scores.shape[0] == 0 or scores.shape[1] == 0 or \
            not np.issubdtype(scores.dtype, np.floating):
        raise ValueError(f"{path}: expected probabilities of shape (videos, classes), got "
                         f"{scores.dtype} {scores.shape}; run tools/test.py again to write it")
    return scores


def _read_rows(path: str) -> list[dict]:
    try:
        with open(path, newline="", encoding="utf-8") as f:
            reader = csv.DictReader(f)
            rows = list(reader)
            columns = reader.fieldnames or []
    except (UnicodeDecodeError, csv.Error) as err:
        raise ValueError(f"{path}: not a readable CSV ({err})") from None
    missing = [c for c in _COLUMNS if c not in columns]
    if missing:
        raise ValueError(f"{path}: column {', '.join(missing)} missing (expected the header "
                         f"that tools/test.py writes: {', '.join(_COLUMNS)}, pred1, ...)")
    return rows


def _class_names(path: str, num_classes: int) -> list | None:
    results = os.path.join(path, "eval_results.json")
    if not os.path.isfile(results):
        return None
    try:
        with open(results, encoding="utf-8") as f:
            summary = json.load(f)
    except (OSError, ValueError) as err:
        raise ValueError(f"{results}: not readable JSON ({err}); run tools/test.py again, or "
                         f"delete it to analyse without class names") from None
    per_class = summary.get("per_class_acc") if isinstance(summary, dict) else None
    if isinstance(per_class, (dict, list)) and len(per_class) != num_classes:
        raise ValueError(f"{os.path.join(path, SCORES_FILE)} has {num_classes} columns but "
                         f"{results} has {len(per_class)} classes: the files come from different "
                         f"runs; run tools/test.py again")
    return list(per_class) if isinstance(per_class, dict) else None


def _labels(rows: list[dict], csv_path: str, num_classes: int) -> np.ndarray:
    labels = []
    for line, row in enumerate(rows, start=2):  # line 1 is the header
        text = (row.get("label") or "").strip()
        if not text.lstrip("-").isdigit() or not 0 <= int(text) < num_classes:
            raise ValueError(f"{csv_path} line {line}: label {text!r} is not a class index in "
                             f"[0, {num_classes - 1}] (scores.npy has {num_classes} classes)")
        labels.append(int(text))
    return np.array(labels, dtype=np.int64)


def _rows_match(scores: np.ndarray, rows: list[dict]) -> bool:
    """Whether each row's ``pred1`` is a top score of the scores.npy row in the same place."""
    for row, values in zip(rows, scores):
        pred = (row.get("pred1") or "").strip()
        if row.get("correct", "") == "" or not pred.isdigit() or not np.isfinite(values).all():
            continue  # unreadable, or NaN (reported once the rows are aligned)
        if int(pred) >= len(values) or not values[int(pred)] >= np.nanmax(values):
            return False
    return True


def _aligned_rows(scores: np.ndarray, rows: list[dict], csv_path: str) -> list[dict]:
    """``rows`` in scores.npy's order. tools/test.py writes both sorted by dataset index; a CSV
    re-sorted since (by path, by score) is put back in that order when its ``pred1`` column
    then agrees with the scores, and refused otherwise: scores must never be paired with
    another video's label."""
    if _rows_match(scores, rows):
        return rows
    try:
        by_index = sorted(rows, key=lambda r: int(r["index"]))
    except ValueError:
        by_index = None
    if by_index is not None and _rows_match(scores, by_index):
        return by_index
    raise ValueError(f"{csv_path}: its rows are not in the order of {SCORES_FILE} (the pred1 "
                     f"column disagrees with the scores, also when sorted by index); use the "
                     f"files as tools/test.py wrote them")


def load_run(path: str) -> Run:
    """Read a tools/test.py output folder; FileNotFoundError naming what is missing, ValueError
    naming the file and line of what is malformed."""
    scores_path = os.path.join(path, SCORES_FILE)
    csv_path = os.path.join(path, "predictions.csv")
    if os.path.isfile(path):
        raise NotADirectoryError(f"{path} is a file, not a run folder: give the OUTPUT folder "
                                 f"of tools/test.py ({os.path.dirname(path) or '.'} if this "
                                 f"file is in it)")
    if not os.path.isdir(path):
        raise FileNotFoundError(f"run folder {path} does not exist")
    for needed in (scores_path, csv_path):
        if not os.path.isfile(needed):
            raise FileNotFoundError(f"{needed} not found: point at the OUTPUT folder of "
                                    f"tools/test.py (it writes {SCORES_FILE} and "
                                    f"predictions.csv)")
    scores = _read_scores(scores_path)
    rows = _read_rows(csv_path)
    if scores.shape[0] != len(rows):
        raise ValueError(f"{path}: {SCORES_FILE} has shape {scores.shape} but predictions.csv "
                         f"has {len(rows)} rows")
    names = _class_names(path, scores.shape[1])
    rows = _aligned_rows(scores, rows, csv_path)
    labels = _labels(rows, csv_path, scores.shape[1])
    # an unreadable video has an empty `correct` field (and NaN scores): not scored, left out
    keep = [i for i, r in enumerate(rows) if r.get("correct", "") != ""]
    unreadable = [r["path"] for r in rows if r.get("correct", "") == ""]
    if not keep:
        raise ValueError(f"{path}: none of its {len(rows)} videos could be decoded by the "
                         f"evaluation, so there is nothing to analyse")
    require_finite(scores[keep], "scores", f"{scores_path} (videos the evaluation decoded)",
                   advice="the run's model gave NaN/inf; such a run has no accuracy to analyse")
    rows = [rows[i] for i in keep]
    return Run(path=path, scores=scores[keep].astype(np.float32), labels=labels[keep],
               videos=[r["path"] for r in rows], indices=[r["index"] for r in rows],
               class_names=names or [f"class {i}" for i in range(scores.shape[1])],
               unreadable=unreadable)


def _metrics(scores: np.ndarray, labels: np.ndarray) -> dict:
    return classification_metrics(torch.from_numpy(scores), torch.from_numpy(labels),
                                  scores.shape[1])


# ---------------------------------------------------------------------------------------------
# Confusion
# ---------------------------------------------------------------------------------------------
def confused_pairs(matrix: np.ndarray, names: Sequence[str]) -> list[dict]:
    """Off-diagonal cells with at least one video, most videos first (then the larger share of
    the true class): true, predicted, count, fraction of the true class's videos."""
    totals = matrix.sum(axis=1)
    pairs = [{"true": names[t], "predicted": names[p], "count": int(matrix[t, p]),
              "fraction": float(matrix[t, p] / totals[t])}
             for t, p in zip(*np.nonzero(matrix)) if t != p]
    return sorted(pairs, key=lambda r: (-r["count"], -r["fraction"], r["true"]))


def _plot_matrix(path: str, normalised: np.ndarray, names: Sequence[str], title: str) -> None:
    from tools._render import _save_figure, pyplot
    plt = pyplot()
    c = len(names)
    side = min(16.0, 2.5 + 0.32 * c)
    fig, ax = plt.subplots(figsize=(side + 1.2, side))
    image = ax.imshow(normalised, cmap="Blues", vmin=0, vmax=1)
    ax.set_xticks(range(c), names, rotation=90, fontsize=7)
    ax.set_yticks(range(c), names, fontsize=7)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title, fontsize=9)
    if c <= 15:
        for t in range(c):
            for p in range(c):
                if normalised[t, p] >= 0.005:
                    ax.text(p, t, f"{normalised[t, p]:.2f}", ha="center", va="center",
                            fontsize=6, color="white" if normalised[t, p] > 0.5 else "black")
    fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04, label="fraction of the true class")
    _save_figure(fig, path)


def _plot_pairs(path: str, pairs: list[dict], title: str, top: int = 30) -> None:
    from tools._render import _save_figure, pyplot
    plt = pyplot()
    shown = pairs[:top][::-1]
    fig, ax = plt.subplots(figsize=(8, 1.5 + 0.28 * max(1, len(shown))))
    ax.barh(range(len(shown)), [p["fraction"] for p in shown], color="tab:red")
    ax.set_yticks(range(len(shown)), [f"{p['true']} -> {p['predicted']} ({p['count']})"
                                      for p in shown], fontsize=7)
    ax.set_xlabel("fraction of the true class predicted as the other")
    ax.set_title(title, fontsize=9)
    _save_figure(fig, path)


def _plot_per_class(path: str, accuracy: np.ndarray, names: Sequence[str], title: str) -> None:
    from tools._render import _save_figure, pyplot
    plt = pyplot()
    present = ~np.isnan(accuracy)
    order = [i for i in np.argsort(-np.nan_to_num(accuracy, nan=-1.0), kind="stable")
             if present[i]]
    labelled = len(order) <= 60
    fig, ax = plt.subplots(figsize=(min(20.0, 3 + 0.22 * len(order)), 4.2))
    ax.bar(range(len(order)), accuracy[order], color="tab:blue")
    ax.axhline(float(np.nanmean(accuracy)), color="black", linestyle="--", linewidth=0.8,
               label=f"mean class accuracy {np.nanmean(accuracy):.1f}%")
    if labelled:
        ax.set_xticks(range(len(order)), [names[i] for i in order], rotation=90, fontsize=7)
    else:
        ax.set_xticks([])
        ax.set_xlabel(f"{len(order)} classes, best to worst")
    ax.set_ylim(0, 100)
    ax.set_ylabel("top-1 accuracy (%)")
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=8, loc="best")
    _save_figure(fig, path)


def confusion_report(run: Run, out_dir: str, log: Callable[[str], None] = print,
                     shown: int = 10) -> dict:
    """confusion.png (row-normalised matrix; more than MATRIX_MAX_CLASSES classes: the most
    confused pairs, confused_pairs.png), confused_pairs.csv and per_class_accuracy.png."""
    if run.unreadable:
        log(f"{len(run.unreadable)} videos that the evaluation could not decode are left out, "
            f"as they were of its metrics")
    matrix = confusion_matrix(torch.from_numpy(run.scores), torch.from_numpy(run.labels),
                              run.num_classes).numpy()
    totals = matrix.sum(axis=1, keepdims=True)
    normalised = np.divide(matrix, totals, out=np.zeros(matrix.shape), where=totals > 0)
    pairs = confused_pairs(matrix, run.class_names)
    metrics = _metrics(run.scores, run.labels)
    title = (f"{os.path.basename(os.path.normpath(run.path))}: top-1 {metrics['top1']:.2f}%, "
             f"{len(run.labels)} videos")
    os.makedirs(out_dir, exist_ok=True)
    written = {}
    if run.num_classes <= MATRIX_MAX_CLASSES:
        written["matrix"] = os.path.join(out_dir, "confusion.png")
        _plot_matrix(written["matrix"], normalised, run.class_names, title)
    else:
        written["pairs_plot"] = os.path.join(out_dir, "confused_pairs.png")
        _plot_pairs(written["pairs_plot"], pairs, title)
    text = io.StringIO()
    writer = csv.writer(text, lineterminator="\n")
    writer.writerow(["true", "predicted", "count", "fraction_of_true"])
    writer.writerows([p["true"], p["predicted"], p["count"], f"{p['fraction']:.4f}"]
                     for p in pairs)
    written["pairs_csv"] = os.path.join(out_dir, "confused_pairs.csv")
    atomic_write_text(written["pairs_csv"], text.getvalue())
    accuracy = per_class_accuracy(torch.from_numpy(run.scores), torch.from_numpy(run.labels),
                                  run.num_classes).numpy()
    written["per_class"] = os.path.join(out_dir, "per_class_accuracy.png")
    _plot_per_class(written["per_class"], accuracy, run.class_names, title)

    log(f"{run.path}: {len(run.labels)} videos, {run.num_classes} classes; top-1 "
        f"{metrics['top1']:.2f}  top-5 {metrics['top5']:.2f}  mean class "
        f"{metrics['mean_class_acc']:.2f}")
    if pairs:
        width = max(len(p["true"]) for p in pairs[:shown]) + 2
        log(f"most confused pairs (of {len(pairs)}):")
        log(f"  {'true':<{width}}{'predicted as':<{width + 2}}{'videos':>6}  {'share':>6}")
        for p in pairs[:shown]:
            log(f"  {p['true']:<{width}}{p['predicted']:<{width + 2}}{p['count']:>6}  "
                f"{100 * p['fraction']:>5.1f}%")
    else:
        log("no confusions: every video's top-1 is its label")
    for key in ("matrix", "pairs_plot", "pairs_csv", "per_class"):
        if key in written:
            log(f"wrote {written[key]}")
    return {"matrix": matrix, "pairs": pairs, "files": written}


# ---------------------------------------------------------------------------------------------
# Fusion and comparison
# ---------------------------------------------------------------------------------------------
def _aligned(runs: Sequence[Run]) -> list[np.ndarray]:
    """Each run's scores in the first run's video order; an error when the videos, labels or
    classes differ."""
    first = runs[0]
    position = {video: i for i, video in enumerate(first.videos)}
    out = [first.scores]
    for run in runs[1:]:
        if run.num_classes != first.num_classes or run.class_names != first.class_names:
            raise ValueError(f"{run.path} scores {run.num_classes} classes "
                             f"({run.class_names[:3]}...) but {first.path} scores "
                             f"{first.num_classes} ({first.class_names[:3]}...): runs over "
                             f"different class lists cannot be fused or compared")
        if sorted(run.videos) != sorted(first.videos) or len(set(run.videos)) != len(run.videos):
            extra = len(set(run.videos) ^ set(first.videos))
            raise ValueError(f"{run.path} and {first.path} scored different videos ({extra} "
                             f"appear in only one): test both on the same split")
        order = np.array([position[v] for v in run.videos])
        scores = np.empty_like(run.scores)
        scores[order] = run.scores
        labels = np.empty_like(run.labels)
        labels[order] = run.labels
        if not np.array_equal(labels, first.labels):
            raise ValueError(f"{run.path} and {first.path} give the same videos other labels")
        out.append(scores)
    return out


def fuse_runs(runs: Sequence[Run], weights: Sequence[float] | None = None,
              out_dir: str | None = None, log: Callable[[str], None] = print) -> dict:
    """Top-1/top-5 of the weighted average of the runs' probabilities (weights normalised to
    sum 1; default equal). With ``out_dir``: the fused run (scores.npy, predictions.csv,
    eval_results.json) that ``confusion`` reads like any other."""
    if len(runs) < 2:
        raise ValueError("fuse needs at least two runs")
    weights = [1.0] * len(runs) if weights is None else [float(w) for w in weights]
    if len(weights) != len(runs):
        raise ValueError(f"--weights has {len(weights)} values for {len(runs)} runs")
    if not all(math.isfinite(w) for w in weights):
        raise ValueError(f"--weights {' '.join(f'{w:g}' for w in weights)}: give finite "
                         f"numbers (no nan or inf)")
    if any(w < 0 for w in weights) or sum(weights) <= 0:
        raise ValueError("--weights must be non-negative and not all zero")
    weights = [w / sum(weights) for w in weights]
    aligned = _aligned(runs)
    fused = sum(w * s.astype(np.float64) for w, s in zip(weights, aligned)).astype(np.float32)
    labels = runs[0].labels
    width = max(len(r.path) for r in runs) + 2
    log(f"{'run':<{width}}{'weight':>7}  {'top-1':>6}  {'top-5':>6}")
    for run, w, scores in zip(runs, weights, aligned):
        m = _metrics(scores, labels)
        log(f"{run.path:<{width}}{w:>7.3f}  {m['top1']:>6.2f}  {m['top5']:>6.2f}")
    m = _metrics(fused, labels)
    log(f"{'fused':<{width}}{'':>7}  {m['top1']:>6.2f}  {m['top5']:>6.2f}")
    if out_dir:
        _write_run(out_dir, runs[0], fused, m, {"fused": [r.path for r in runs],
                                                 "weights": weights})
        log(f"fused run: {out_dir} (scores.npy, predictions.csv, eval_results.json)")
    return {"top1": m["top1"], "top5": m["top5"], "scores": fused, "weights": weights}


def _write_run(out_dir: str, like: Run, scores: np.ndarray, metrics: dict, extra: dict) -> None:
    k = min(5, scores.shape[1])
    top = np.argsort(-scores, axis=1, kind="stable")[:, :k]
    text = io.StringIO()
    writer = csv.writer(text, lineterminator="\n")
    writer.writerow(["index", "path", "label", "correct"] + [f"pred{i + 1}" for i in range(k)]
                    + [f"score{i + 1}" for i in range(k)])
    for row in range(len(like.labels)):
        preds = top[row].tolist()
        writer.writerow([like.indices[row], like.videos[row], int(like.labels[row]),
                         int(preds[0] == like.labels[row])] + preds
                        + [f"{scores[row, p]:.6f}" for p in preds])
    per_class = dict(zip(like.class_names, metrics["per_class_acc"]))
    summary = {"top1": metrics["top1"], "top5": metrics["top5"],
               "mean_class_acc": metrics["mean_class_acc"], "num_videos": len(like.labels),
               **extra, "per_class_acc": per_class}
    atomic_write_text(os.path.join(out_dir, "predictions.csv"), text.getvalue())
    atomic_write_text(os.path.join(out_dir, "eval_results.json"),
                      json.dumps(summary, indent=2) + "\n")
    buffer = io.BytesIO()
    np.save(buffer, scores, allow_pickle=False)
    atomic_write_bytes(os.path.join(out_dir, SCORES_FILE), buffer.getvalue())


def compare_runs(a: Run, b: Run, out_dir: str | None = None,
                 log: Callable[[str], None] = print, shown: int = 20) -> list[dict]:
    """Per-class top-1 accuracy of both runs and B - A, sorted from B's largest gain to its
    largest loss; with ``out_dir`` also compare.csv."""
    scores_a, scores_b = _aligned([a, b])
    labels = torch.from_numpy(a.labels)
    acc_a = per_class_accuracy(torch.from_numpy(scores_a), labels, a.num_classes).numpy()
    acc_b = per_class_accuracy(torch.from_numpy(scores_b), labels, a.num_classes).numpy()
    counts = np.bincount(a.labels, minlength=a.num_classes)
    rows = [{"class": a.class_names[c], "videos": int(counts[c]), "acc_a": float(acc_a[c]),
             "acc_b": float(acc_b[c]), "diff": float(acc_b[c] - acc_a[c])}
            for c in range(a.num_classes) if counts[c] > 0]
    rows.sort(key=lambda r: (-r["diff"], r["class"]))
    ma, mb = _metrics(scores_a, a.labels), _metrics(scores_b, a.labels)
    log(f"A = {a.path}: top-1 {ma['top1']:.2f}, mean class {ma['mean_class_acc']:.2f}")
    log(f"B = {b.path}: top-1 {mb['top1']:.2f}, mean class {mb['mean_class_acc']:.2f}")
    width = max([len(r["class"]) for r in rows] + [5]) + 2
    log(f"{'class':<{width}}{'videos':>6}  {'A (%)':>6}  {'B (%)':>6}  {'B - A':>7}")
    listed = rows if len(rows) <= 2 * shown else rows[:shown] + [None] + rows[-shown:]
    for r in listed:
        if r is None:
            log(f"  ... {len(rows) - 2 * shown} classes ...")
            continue
        log(f"{r['class']:<{width}}{r['videos']:>6}  {r['acc_a']:>6.1f}  {r['acc_b']:>6.1f}  "
            f"{r['diff']:>+7.1f}")
    if out_dir:
        text = io.StringIO()
        writer = csv.writer(text, lineterminator="\n")
        writer.writerow(["class", "videos", "acc_a", "acc_b", "diff"])
        writer.writerows([r["class"], r["videos"], f"{r['acc_a']:.4f}", f"{r['acc_b']:.4f}",
                          f"{r['diff']:.4f}"] for r in rows)
        path = os.path.join(out_dir, "compare.csv")
        atomic_write_text(path, text.getvalue())
        log(f"wrote {path}")
    return rows
